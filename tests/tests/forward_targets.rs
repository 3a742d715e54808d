//! What a port forward may reach, as the agent decides (spec 12.8), end to end: whatever the
//! relay's policies allow, the agent refuses link-local and metadata addresses unless told
//! otherwise, and with an allow list reaches only what it names. A refusal is PROHIBITED with
//! the rule that made it, comes before any connection, and is audited by the relay.
//!
//! Every target connected to is on 127.0.0.1; the others are refused before a connection is
//! tried, which is what these tests show.

use core::time::Duration;

use session_agent::forward_rules::{ForwardRules, Rule};
use session_client::{Connection, Error};
use session_proto::{MAX_MESSAGE_LEN, RefuseReason};
use session_test_kit::{Echo, System, forward_echo};

/// The agent's answer to a forward to `host:port`: the echo of a payload, or the refusal's
/// reason and message. Bounded, since an Open left unanswered is a failure of its own.
async fn forward(connection: &Connection, host: &str, port: u16) -> Result<Vec<u8>, (RefuseReason, String)> {
    let outcome =
        tokio::time::timeout(Duration::from_secs(30), forward_echo(connection, host, port, b"ping"))
            .await
            .unwrap_or_else(|_| panic!("the forward to {host}:{port} was never answered"));
    match outcome {
        Ok(back) => Ok(back),
        Err(Error::OpenRefused { reason, message }) => Err((reason, message)),
        Err(other) => panic!("{host}:{port}: {other:?}"),
    }
}

fn rules(allow: &[String], deny: &[String]) -> ForwardRules {
    let parse = |list: &[String]| list.iter().map(|r| r.parse::<Rule>().unwrap()).collect();
    ForwardRules::new(parse(allow), parse(deny))
}

const GUARDED: &str = "is not allowed by this agent: link-local and metadata addresses are refused unless \
                       --forward-allow names them";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_metadata_address_is_refused_and_loopback_is_reached() {
    let mut system = System::start(None).await;
    system.agent("i-default").await;
    let echo = Echo::start().await;
    // The tester may do anything: the relay lets every one of these through to the agent.
    let connection = system.connect("i-default").await;

    assert_eq!(forward(&connection, "127.0.0.1", echo.port).await, Ok(b"ping".to_vec()));
    for (host, target) in [
        ("169.254.169.254", "169.254.169.254:80"),
        // The same address, written as IPv6: a connection to it would reach the IPv4 one.
        ("::ffff:169.254.169.254", "[::ffff:169.254.169.254]:80"),
        ("fe80::1", "[fe80::1]:80"),
        ("fd00:ec2::254", "[fd00:ec2::254]:80"),
    ] {
        let refused = forward(&connection, host, 80).await.unwrap_err();
        assert_eq!(refused, (RefuseReason::PROHIBITED, format!("{target} {GUARDED}")), "{host}");
    }

    let audit = system.audit_until(|a| a.contains("forward: 169.254.169.254:80")).await;
    let records: Vec<serde_json::Value> = audit.lines().map(|r| serde_json::from_str(r).unwrap()).collect();
    let refused = records.iter().find(|r| r["kind"] == "forward: 169.254.169.254:80").expect("audited");
    assert_eq!((&refused["event"], &refused["outcome"]), (&"session".into(), &"refused".into()), "{refused}");
    assert_eq!(
        refused["reason"],
        format!("PROHIBITED: 169.254.169.254:80 {GUARDED}").as_str(),
        "the relay audits the agent's refusal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_allow_list_only_the_port_it_names_is_reached() {
    let mut system = System::start(None).await;
    let (allowed, other) = (Echo::start().await, Echo::start().await);
    let only = format!("127.0.0.1:{}", allowed.port);
    system.agent_with("i-allow", |config| config.forward = rules(&[only], &[])).await;
    let connection = system.connect("i-allow").await;

    assert_eq!(forward(&connection, "127.0.0.1", allowed.port).await, Ok(b"ping".to_vec()));
    // A name is reached at the allowed address it resolves to, whatever else it resolves to.
    assert_eq!(forward(&connection, "localhost", allowed.port).await, Ok(b"ping".to_vec()));
    let refused = forward(&connection, "127.0.0.1", other.port).await.unwrap_err();
    let message =
        format!("127.0.0.1:{} is not allowed by this agent: no --forward-allow rule names it", other.port);
    assert_eq!(refused, (RefuseReason::PROHIBITED, message));
    // The rules decided before any connection: the other port never saw one.
    assert_eq!(other.accepted(), 0);
    assert_eq!(allowed.accepted(), 2);
    // Still guarded: an allow list does not name the metadata address unless it says so.
    let refused = forward(&connection, "169.254.169.254", 80).await.unwrap_err();
    assert_eq!(refused, (RefuseReason::PROHIBITED, format!("169.254.169.254:80 {GUARDED}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_rule_wins_and_a_refusal_naming_a_long_host_still_answers_the_open() {
    let mut system = System::start(None).await;
    let (open, closed) = (Echo::start().await, Echo::start().await);
    let deny = [format!("127.0.0.1:{}", closed.port), "*.invalid".to_owned()];
    let allow = ["127.0.0.0/8".to_owned()];
    system.agent_with("i-deny", |config| config.forward = rules(&allow, &deny)).await;
    let connection = system.connect("i-deny").await;

    assert_eq!(forward(&connection, "127.0.0.1", open.port).await, Ok(b"ping".to_vec()));
    let refused = forward(&connection, "127.0.0.1", closed.port).await.unwrap_err();
    let port = closed.port;
    let message =
        format!("127.0.0.1:{port} is not allowed by this agent: --forward-deny 127.0.0.1:{port} refuses it");
    assert_eq!(refused, (RefuseReason::PROHIBITED, message));
    assert_eq!(closed.accepted(), 0);

    // A name that a deny rule names is refused without a lookup. Its refusal, with a host of
    // 208 bytes, is longer than a Refuse carries: it arrives cut, rather than never.
    let host = format!("{}.invalid", "a".repeat(200));
    let (reason, message) = forward(&connection, &host, 443).await.unwrap_err();
    assert_eq!(reason, RefuseReason::PROHIBITED);
    assert_eq!(message.len(), MAX_MESSAGE_LEN);
    assert!(
        format!("{host}:443 is not allowed by this agent: --forward-deny *.invalid refuses it")
            .starts_with(&message)
    );
}
