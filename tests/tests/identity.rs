//! Identity and least privilege at the relay, end to end over real sockets: every way in
//! without the right key, code, token, policy or switch is refused with a clear error, and
//! none of them reaches a shell.

#![allow(clippy::std_instead_of_core, reason = "files and processes")]

use core::time::Duration;
use std::path::PathBuf;

use session_agent::{AgentConfig, AgentKey, LoginUser};
use session_client::{Connection, Error, Relay};
use session_link::dial::Trust;
use session_link::identity::AGENT_KEY_HEADER;
use session_proto::RefuseReason;
use session_relay::store::{ActivationTerms, Store};
use session_test_kit::agent_by_hand::{agent_handshake, answer};
use session_test_kit::{Echo, Ran, System, exec, forward_echo, forward_to, nothing, pipes, run};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A file a refused command would have made: its absence shows no process ran.
fn marker(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("identity-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Opens a port forward to `127.0.0.1:port` at the connection's instance, with nothing to send.
async fn forward(connection: &Connection, port: u16) -> Result<(), Error> {
    connection.open(forward_to("127.0.0.1", port), nothing()).await.map(drop)
}

/// Tries `command` on `instance`, expecting a refusal (of the handshake or of the Open); asserts
/// it says `reason` and that the command never ran.
async fn refused(relay: &Relay, instance: &str, reason: &str) {
    let marker = marker(&format!("{instance}-{}", reason.len()));
    let error = run(relay, instance, &format!("touch {}", marker.display())).await.unwrap_err();
    assert!(error.is_refusal() && error.to_string().contains(reason), "expected {reason:?}, got {error:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!marker.exists(), "a refused request ran its command");
}

fn ran(stdout: &str) -> Ran {
    Ran { stdout: stdout.to_owned(), code: 0 }
}

/// Whether `error` is the refusal of an Open its owner terminated before the agent accepted it.
fn terminated(error: &Error) -> bool {
    matches!(error, Error::OpenRefused { message, .. } if message.starts_with("the session was terminated by "))
}

fn terms(uses: u32, ttl: Duration) -> ActivationTerms {
    ActivationTerms { account: "test".into(), label: None, ttl, uses }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_agent_key_is_refused_and_the_registered_agent_keeps_its_instance() {
    let mut system = System::start(None).await;
    system.agent("i-owned").await;

    // Another key claims the registered instance, with or without a code.
    let impostor = AgentKey::generate().unwrap();
    let code = system.activation("test");
    for code in [None, Some(code.as_str())] {
        let refusal = agent_handshake(&system.url, "i-owned", &impostor, code).await.unwrap_err().to_string();
        assert!(refusal.contains("401 Unauthorized: unknown agent key for this instance"), "{refusal}");
    }
    // A key the relay never saw, for an instance nobody registered, without a code.
    let refusal = agent_handshake(&system.url, "i-new", &impostor, None).await.unwrap_err().to_string();
    assert!(
        refusal.contains("instance i-new is not registered: give its agent an activation code"),
        "{refusal}"
    );
    // A key without the private half: the public key of the owner, with a made-up proof.
    let owner = system.store.instance("i-owned").unwrap().unwrap();
    let mut request = format!("{}/v1/agent/i-owned", system.url).into_client_request().unwrap();
    request
        .headers_mut()
        .insert(AGENT_KEY_HEADER, HeaderValue::from_str(&hex::encode(&owner.public_key)).unwrap());
    let (mut ws, _) = Trust::system().dial(request, 1 << 16).await.unwrap();
    let refusal = answer(&mut ws, hex::encode([0u8; 64])).await.unwrap_err();
    assert_eq!(refusal, "the agent's proof of its key is wrong");

    assert!(system.relay.registry.is_online("i-owned"), "the owner's connection is untouched");
    assert_eq!(run(&system.client, "i-owned", "echo still-mine").await.unwrap(), ran("still-mine\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_or_expired_activation_code_is_refused() {
    let system = System::start(None).await;
    let (code, _) = system.store.create_activation(&terms(1, Duration::from_secs(600))).unwrap();
    let first = AgentKey::generate().unwrap();
    let (mut ws, challenge) = agent_handshake(&system.url, "i-first", &first, Some(&code)).await.unwrap();
    answer(&mut ws, first.prove("i-first", &challenge)).await.unwrap();

    // The code, stolen after its one use, registers nothing more.
    let thief = AgentKey::generate().unwrap();
    let refusal =
        agent_handshake(&system.url, "i-stolen", &thief, Some(&code)).await.unwrap_err().to_string();
    assert!(refusal.contains("401 Unauthorized: activation code has already been used"), "{refusal}");

    let (expired, _) = system.store.create_activation(&terms(5, Duration::ZERO)).unwrap();
    let refusal =
        agent_handshake(&system.url, "i-late", &thief, Some(&expired)).await.unwrap_err().to_string();
    assert!(refusal.contains("activation code has expired"), "{refusal}");
    let refusal =
        agent_handshake(&system.url, "i-late", &thief, Some("sra_nonsense")).await.unwrap_err().to_string();
    assert!(refusal.contains("malformed activation code"), "{refusal}");
    assert!(
        system.store.instance("i-stolen").unwrap().is_none()
            && system.store.instance("i-late").unwrap().is_none()
    );

    // A code of two uses registers two agents, then no third.
    let (two, _) = system.store.create_activation(&terms(2, Duration::from_secs(600))).unwrap();
    for instance in ["i-a", "i-b"] {
        let key = AgentKey::generate().unwrap();
        let (mut ws, challenge) = agent_handshake(&system.url, instance, &key, Some(&two)).await.unwrap();
        answer(&mut ws, key.prove(instance, &challenge)).await.unwrap();
    }
    let refusal = agent_handshake(&system.url, "i-c", &thief, Some(&two)).await.unwrap_err().to_string();
    assert!(refusal.contains("already been used"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_proof_is_refused() {
    let system = System::start(None).await;
    let key = AgentKey::generate().unwrap();
    let code = system.activation("test");
    let (mut ws, challenge) = agent_handshake(&system.url, "i-replay", &key, Some(&code)).await.unwrap();
    let recorded = key.prove("i-replay", &challenge);
    answer(&mut ws, recorded.clone()).await.unwrap();
    drop(ws);

    // Someone who recorded that exchange replays it on a new connection.
    let (mut ws, fresh) = agent_handshake(&system.url, "i-replay", &key, None).await.unwrap();
    assert_ne!(fresh, challenge, "every connection gets a fresh challenge");
    let refusal = answer(&mut ws, recorded).await.unwrap_err();
    assert_eq!(refusal, "the agent's proof of its key is wrong");
    // The proof for one instance is no proof for another, even with the same key and challenge.
    let (mut ws, challenge) = agent_handshake(&system.url, "i-replay", &key, None).await.unwrap();
    let refusal = answer(&mut ws, key.prove("i-other", &challenge)).await.unwrap_err();
    assert_eq!(refusal, "the agent's proof of its key is wrong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_malformed_unknown_expired_and_revoked_tokens_are_refused() {
    let mut system = System::start(None).await;
    system.agent("i-tok").await;
    let refusals = [
        ("", "no bearer token was presented"),
        ("not-a-token", "malformed token"),
        (
            "srt_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
            "unknown token",
        ),
    ];
    for (token, reason) in refusals {
        let mut relay = Relay::new(&system.url, token);
        if token.is_empty() {
            // No Authorization header at all.
            relay.token = String::new();
        }
        refused(&relay, "i-tok", reason).await;
    }
    // A real token's id with a wrong key.
    let mut forged = system.token().to_owned();
    forged.replace_range(forged.len() - 4.., "0000");
    refused(&Relay::new(&system.url, &forged), "i-tok", "unknown token").await;

    let (expired, _) = system.store.create_token("tester", Duration::ZERO).unwrap();
    refused(&Relay::new(&system.url, &expired), "i-tok", "401 Unauthorized: token has expired").await;

    let (token, id) = system.store.create_token("tester", Duration::from_secs(600)).unwrap();
    let relay = Relay::new(&system.url, &token);
    assert_eq!(run(&relay, "i-tok", "echo before").await.unwrap(), ran("before\n"));
    // Revoked while a connection is open: that connection starts nothing more either.
    let open = Connection::connect(&relay, "i-tok").await.unwrap();
    system.store.revoke_token(&id).unwrap();
    refused(&relay, "i-tok", "401 Unauthorized: token has been revoked").await;
    let marker = marker("revoked-open");
    let (io, _, _, _) = pipes();
    let error = open.open(exec(&format!("touch {}", marker.display())), io).await.unwrap_err();
    assert!(
        matches!(&error, Error::OpenRefused { message, .. } if message.contains("token has been revoked")),
        "{error}"
    );
    assert!(!marker.exists());
}

const I001_ONLY: &str = r#"{"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": ["session:StartSession", "session:DescribeInstanceStatus"],
     "Resource": "srn:session:test:test:instance/i-001*"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_allowed_on_i_001_star_reaches_i_0017_and_not_i_002() {
    let mut system = System::start(None).await;
    for instance in ["i-0017", "i-002"] {
        system.agent(instance).await;
    }
    let alice = system.user("alice", I001_ONLY);
    assert_eq!(run(&alice, "i-0017", "echo reached; whoami >/dev/null").await.unwrap(), ran("reached\n"));
    refused(
        &alice,
        "i-002",
        "403 Forbidden: alice may not session:StartSession on srn:session:test:test:instance/i-002: no policy allows it",
    )
    .await;

    // Allowed sessions, not port forwards: the Open of a forward is refused by kind.
    let connection = Connection::connect(&alice, "i-0017").await.unwrap();
    let error = forward(&connection, 9).await.unwrap_err();
    assert!(error.to_string().contains("alice may not session:StartPortForward"), "{error}");

    // An explicit Deny beats the Allow that covers it.
    let deny = r#"{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "session:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "session:StartSession", "Resource": "*:instance/i-0017"}]}"#;
    let bob = system.user("bob", deny);
    refused(
        &bob,
        "i-0017",
        "bob may not session:StartSession on srn:session:test:test:instance/i-0017: a policy denies it",
    )
    .await;
    assert_eq!(run(&bob, "i-002", "echo ok").await.unwrap(), ran("ok\n"));

    // A policy detached takes effect at the next Open of a connection already open.
    let connection = Connection::connect(&alice, "i-0017").await.unwrap();
    system.store.detach("alice", "alice").unwrap();
    let (io, _, _, _) = pipes();
    let error = connection.open(exec("true"), io).await.unwrap_err();
    assert!(error.is_refusal() && error.to_string().contains("no policy allows it"), "{error}");
}

/// Whether `error` is a Refuse PROHIBITED saying exactly `message`.
fn prohibited(error: &Error, message: &str) -> bool {
    matches!(error, Error::OpenRefused { reason: RefuseReason::PROHIBITED, message: m } if m == message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_condition_lets_a_user_reach_one_port_and_is_audited_when_it_refuses() {
    let mut system = System::start(None).await;
    system.agent("i-fwd").await;
    let (allowed, elsewhere) = (Echo::start().await, Echo::start().await);
    let port = allowed.port;
    let policy = format!(
        r#"{{"Version": "1", "Statement": {{"Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*",
            "Condition": {{"StringEquals": {{"session:ForwardHost": "127.0.0.1"}},
                          "NumericEquals": {{"session:ForwardPort": {port}}}}}}}}}"#
    );
    let alice = system.user("alice", &policy);

    // Admitted, though no target is named yet; then the one target the condition names works.
    let connection = Connection::connect(&alice, "i-fwd").await.unwrap();
    let back = forward_echo(&connection, "127.0.0.1", port, b"through the condition").await.unwrap();
    assert_eq!(back, b"through the condition");

    // Another port, another spelling of the host: refused at the relay, naming the condition.
    let resource = "srn:session:test:test:instance/i-fwd";
    let other = elsewhere.port;
    let error = forward_echo(&connection, "127.0.0.1", other, b"x").await.unwrap_err();
    let expected = format!(
        "alice may not session:StartPortForward on {resource} for 127.0.0.1:{other}: no policy allows it \
         (condition NumericEquals session:ForwardPort {port} does not hold)"
    );
    assert!(prohibited(&error, &expected), "{error:?}");
    let error = forward_echo(&connection, "localhost", port, b"x").await.unwrap_err();
    let expected = format!(
        "alice may not session:StartPortForward on {resource} for localhost:{port}: no policy allows it \
         (condition StringEquals session:ForwardHost 127.0.0.1 does not hold)"
    );
    assert!(prohibited(&error, &expected), "{error:?}");
    assert_eq!(elsewhere.accepted(), 0, "a refused forward reaches nothing");
    // A grant with a forward condition grants no shell.
    let (io, _, _, _) = pipes();
    let error = connection.open(exec("true"), io).await.unwrap_err();
    let expected = format!("alice may not session:StartSession on {resource}: no policy allows it");
    assert!(prohibited(&error, &expected), "{error:?}");

    let kind = format!("forward: 127.0.0.1:{other}");
    let audit = system.audit_until(|a| a.contains(&kind)).await;
    let records: Vec<serde_json::Value> = audit.lines().map(|r| serde_json::from_str(r).unwrap()).collect();
    let refusal = records.iter().find(|r| r["kind"] == kind.as_str()).expect("the refusal is audited");
    assert_eq!(
        (&refusal["event"], &refusal["actor"], &refusal["action"], &refusal["resource"]),
        (
            &serde_json::json!("refused"),
            &serde_json::json!("alice"),
            &serde_json::json!("session:StartPortForward"),
            &serde_json::json!(resource)
        ),
        "{refusal}"
    );
    assert!(
        refusal["reason"].as_str().unwrap().contains("condition NumericEquals session:ForwardPort"),
        "{refusal}"
    );

    // A Deny with a condition: everything else, but not that port, and no connection refused.
    let bob = system.user(
        "bob",
        &format!(
            r#"{{"Version": "1", "Statement": [
                {{"Effect": "Allow", "Action": "session:*", "Resource": "*"}},
                {{"Effect": "Deny", "Action": "session:StartPortForward", "Resource": "*",
                  "Condition": {{"NumericEquals": {{"session:ForwardPort": [{port}, 22]}}}}}}]}}"#
        ),
    );
    let connection = Connection::connect(&bob, "i-fwd").await.unwrap();
    let error = forward_echo(&connection, "127.0.0.1", port, b"x").await.unwrap_err();
    let expected = format!(
        "bob may not session:StartPortForward on {resource} for 127.0.0.1:{port}: a policy denies it \
         (condition NumericEquals session:ForwardPort [{port}, 22])"
    );
    assert!(prohibited(&error, &expected), "{error:?}");
    assert_eq!(forward_echo(&connection, "127.0.0.1", other, b"elsewhere").await.unwrap(), b"elsewhere");
    assert_eq!(run(&bob, "i-fwd", "echo shell").await.unwrap(), ran("shell\n"), "shells are not forwards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleets_listing_arrives_whole_though_longer_than_any_frame() {
    let system = System::start(None).await;
    let terms =
        ActivationTerms { account: "test".into(), label: None, ttl: Duration::from_secs(600), uses: 2000 };
    let code = system.store.create_activation(&terms).unwrap().0;
    for i in 0..2000u32 {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        system.store.register(&format!("web-{i:04}"), &key, &code).unwrap();
    }
    // About 300 KB of JSON: more than the 131,078 bytes a message of frames may take.
    let listing = system.client.list().await.unwrap();
    let instances = listing["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2000);
    assert_eq!(
        (instances[0]["name"].as_str(), instances[1999]["status"].as_str()),
        (Some("web-0000"), Some("offline"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_only_what_a_policy_lets_a_user_describe() {
    let mut system = System::start(None).await;
    for instance in ["i-0017", "i-002"] {
        system.agent(instance).await;
    }
    let everything = system.client.list().await.unwrap();
    let names: Vec<&str> =
        everything["instances"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["i-0017", "i-002"]);
    let first = &everything["instances"][0];
    assert_eq!(first["status"], "online");
    let version = first["agent_version"].as_str().unwrap();
    assert!(
        version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{version}"
    );
    assert!(first["last_seen"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(first["labels"], serde_json::json!({ "region": "test", "account": "test", "name": "i-0017" }));

    let alice = system.user("alice", I001_ONLY);
    let listing = alice.list().await.unwrap();
    assert_eq!(listing["instances"].as_array().unwrap().len(), 1);
    assert_eq!(listing["instances"][0]["name"], "i-0017");

    let only_sessions = r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:StartSession", "Resource": "*"}}"#;
    let carol = system.user("carol", only_sessions);
    assert_eq!(carol.list().await.unwrap(), serde_json::json!({ "instances": [] }), "others see nothing");
    let anonymous = Relay::new(&system.url, "");
    assert!(matches!(anonymous.list().await.unwrap_err(), Error::Refused { status: 401, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_switch_off_every_session_start_is_refused_and_only_modify_settings_flips_it() {
    let mut system = System::start(None).await;
    system.agent("i-sw").await;
    let alice = system.user(
        "alice",
        r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:Start*", "Resource": "*"}}"#,
    );

    let error = alice.switch("test", false).await.unwrap_err();
    assert!(
        error.to_string().contains(
            "403 Forbidden: alice may not session:ModifySettings on srn:session:test:test:settings"
        ),
        "{error}"
    );
    assert_eq!(run(&alice, "i-sw", "echo on").await.unwrap(), ran("on\n"));

    system.client.switch("test", false).await.unwrap();
    for who in [&alice, &system.client] {
        refused(who, "i-sw", "session management is turned off for account test").await;
    }
    let connection = Connection::connect(&alice, "i-sw").await.unwrap();
    let error = forward(&connection, 9).await.unwrap_err();
    assert!(error.to_string().contains("turned off for account test"), "port forwards too: {error}");

    system.client.switch("test", true).await.unwrap();
    assert_eq!(run(&alice, "i-sw", "echo on-again").await.unwrap(), ran("on-again\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_session_id_is_refused_and_an_owner_ends_their_own() {
    let mut system = System::start(None).await;
    system.agent("i-sess").await;
    let alice = system.user("alice", session_relay::dev::FULL_ACCESS);

    // A start the agent refuses (nothing listens on the port) leaves no session behind.
    let closed = session_test_kit::ClosedPort::new();
    let port = closed.port;
    let connection = system.connect("i-sess").await;
    let refused_by_agent = forward(&connection, port).await.unwrap_err();
    assert!(
        matches!(
            refused_by_agent,
            Error::OpenRefused { reason: session_proto::RefuseReason::CONNECT_FAILED, .. }
        ),
        "{refused_by_agent}"
    );
    assert_eq!(system.client.sessions().await.unwrap(), serde_json::json!({ "sessions": [] }));

    let connection = system.connect("i-sess").await;
    let (io, _input, _out, _err) = pipes();
    let running = tokio::spawn(async move { connection.open(exec("sleep 60"), io).await });
    let mut id = String::new();
    for _ in 0..100 {
        let mine = system.client.sessions().await.unwrap();
        if let Some(found) = mine["sessions"][0]["id"].as_str() {
            id = found.to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(id.starts_with("tester-"), "{id}");
    assert_eq!(
        alice.sessions().await.unwrap(),
        serde_json::json!({ "sessions": [] }),
        "alice sees only hers"
    );

    let error = alice.terminate(&id).await.unwrap_err();
    let belongs = format!("session {id} belongs to another user");
    assert!(matches!(&error, Error::Refused { status: 403, reason, .. } if *reason == belongs), "{error}");
    let error = alice.terminate("tester-0000000000000000").await.unwrap_err();
    assert!(
        matches!(&error, Error::Refused { status: 404, reason, .. } if reason == "no session tester-0000000000000000 in progress"),
        "{error}"
    );
    assert!(!running.is_finished(), "the session survives the attempts");

    system.client.terminate(&id).await.unwrap();
    // Ended by its owner, not by its process: closed, or refused if its agent had yet to accept it.
    match tokio::time::timeout(Duration::from_secs(10), running).await.expect("the session ends").unwrap() {
        Ok(outcome) => assert_eq!(outcome.exit, None),
        Err(refused) => assert!(terminated(&refused), "{refused}"),
    }
    let audit = system.audit_until(|a| a.contains(r#""kind":"exec: sleep 60""#)).await;
    let records: Vec<serde_json::Value> = audit.lines().map(|r| serde_json::from_str(r).unwrap()).collect();
    let ended = records.iter().find(|r| r["kind"] == "exec: sleep 60").unwrap();
    assert_eq!(
        (&ended["event"], &ended["outcome"], &ended["session"], &ended["exit"]),
        (
            &serde_json::json!("session"),
            &serde_json::json!("ended"),
            &serde_json::json!(id),
            &serde_json::Value::Null
        ),
        "{ended}"
    );
    assert!(records.iter().any(|r| r["reason"] == belongs.as_str() && r["actor"] == "alice"), "{audit}");
    let refused_start = records.iter().find(|r| r["event"] == "session" && r["outcome"] == "refused");
    assert!(
        refused_start.is_some_and(|r| r["reason"].as_str().unwrap().starts_with("CONNECT_FAILED")),
        "a start the agent refused is audited: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_tokens_and_policies_survive_a_relay_restart() {
    let dir = std::env::temp_dir().join(format!("identity-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("relay.db");
    let key = AgentKey::generate().unwrap();
    let (alice_token, url) = {
        let system = System::with_store(Store::open(&db).unwrap(), None).await;
        let code = system.activation("test");
        let (mut ws, challenge) = agent_handshake(&system.url, "i-kept", &key, Some(&code)).await.unwrap();
        answer(&mut ws, key.prove("i-kept", &challenge)).await.unwrap();
        // An account exists once something names it (spec 11.4).
        system.activation("other");
        system.client.switch("other", false).await.unwrap();
        (system.user("alice", I001_ONLY).token, system.url.clone())
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        matches!(
            Connection::connect(&Relay::new(&url, &alice_token), "i-kept").await,
            Err(Error::Unreachable { .. })
        ),
        "the first relay is gone"
    );

    let system = System::with_store(Store::open(&db).unwrap(), None).await;
    let user = LoginUser::resolve(None, true).unwrap();
    // The same key, with no activation code: the relay still knows it.
    let mut config = AgentConfig::new(&system.url, "i-kept", key, user);
    config.max_backoff = Duration::from_millis(200);
    let agent = tokio::spawn(session_agent::run(config));
    system.wait_online("i-kept").await;
    let alice = Relay::new(&system.url, &alice_token);
    refused(&alice, "i-kept", "alice may not session:StartSession").await;
    assert!(!system.store.sessions_enabled("other").unwrap());
    system.store.put_policy("alice", session_relay::dev::FULL_ACCESS).unwrap();
    assert_eq!(run(&alice, "i-kept", "echo kept").await.unwrap(), ran("kept\n"));
    agent.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_names_still_get_their_refusal_and_their_session_ids() {
    let system = System::start(None).await;
    let instance = format!("i-{}", "7".repeat(62));
    let user = LoginUser::resolve(None, true).unwrap();
    let mut config = AgentConfig::new(&system.url, &instance, AgentKey::generate().unwrap(), user);
    config.activation = Some(system.activation(&"a".repeat(64)));
    let agent = tokio::spawn(session_agent::run(config));
    system.wait_online(&instance).await;
    // A refusal naming a 64-byte user, account-long resource and action exceeds a Refuse's 256
    // bytes: it arrives cut, never lost (a lost one would leave the Open unanswered).
    let forwards_only = r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:StartPortForward", "Resource": "*"}}"#;
    let long = system.user(&"u".repeat(64), forwards_only);
    let connection = Connection::connect(&long, &instance).await.unwrap();
    let (io, _, _, _) = pipes();
    let refusal = tokio::time::timeout(Duration::from_secs(5), connection.open(exec("true"), io))
        .await
        .expect("the Open is answered")
        .unwrap_err();
    assert!(
        refusal.is_refusal() && refusal.to_string().contains("may not session:StartSession"),
        "{refusal}"
    );

    // A 64-byte user's session id is 81 bytes, and still theirs to end.
    let owner = system.user(&"o".repeat(64), session_relay::dev::FULL_ACCESS);
    let connection = Connection::connect(&owner, &instance).await.unwrap();
    let (io, _input, _out, _err) = pipes();
    let running = tokio::spawn(async move { connection.open(exec("sleep 60"), io).await });
    let mut id = String::new();
    for _ in 0..100 {
        if let Some(found) = owner.sessions().await.unwrap()["sessions"][0]["id"].as_str() {
            id = found.to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(id.len(), 81);
    owner.terminate(&id).await.unwrap();
    // Ended before or after its agent accepted it: refused as terminated, or closed.
    match tokio::time::timeout(Duration::from_secs(10), running).await.expect("ended").unwrap() {
        Ok(outcome) => assert_eq!(outcome.exit, None),
        Err(refused) => assert!(terminated(&refused), "{refused}"),
    }
    agent.abort();
}
