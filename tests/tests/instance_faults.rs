//! What a client is told when its instance goes (spec 12.5, 12.6): an agent killed in the
//! middle of a session and started again, one that never comes back, and a session its owner
//! terminates. Never a silent hang: each ends the client's channel with a Reason that says why.

use core::time::Duration;

use session_client::Connection;
use session_client::{Error, Outcome};
use session_proto::EndReason;
use session_relay::Store;
use session_test_kit::{Proxy, System, agent_config, exec, pipes};

/// Runs a `sleep` of its own on `instance` in the background, and waits until it runs (the
/// agent accepted the session); its outcome when it ends.
async fn sleeping(system: &System, instance: &str) -> tokio::task::JoinHandle<Result<Outcome, Error>> {
    use core::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let marker =
        format!("sleep {}", 60_000 + std::process::id() % 10_000 * 10 + NEXT.fetch_add(1, Ordering::Relaxed));
    let client = system.client.clone();
    let (instance, command) = (instance.to_owned(), marker.clone());
    let running = tokio::spawn(async move {
        let connection = session_client::Connection::connect(&client, &instance).await?;
        let (io, _input, _out, _err) = pipes();
        connection.open(exec(&command), io).await
    });
    for _ in 0..300 {
        if session_test_kit::raw::running(&marker) {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the session never started");
}

/// The reason an outcome ends with.
async fn reason(running: tokio::task::JoinHandle<Result<Outcome, Error>>) -> (EndReason, String) {
    let outcome = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the client is told")
        .unwrap()
        .expect("the channel ends");
    assert_eq!(outcome.exit, None, "no exit status came");
    outcome.reason.expect("a reason came")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_and_started_again_ends_its_old_sessions_with_a_reason() {
    let system = System::start(None).await;
    let config = agent_config(&system.url, "i-restart", &system.activation("test"));
    let first = tokio::spawn(session_agent::run(config.clone()));
    system.wait_online("i-restart").await;
    let running = sleeping(&system, "i-restart").await;

    // kill -9: the agent's process and its connection vanish at once.
    first.abort();
    // The same key, started again: a fresh connection, not a resume.
    let mut again = config;
    again.activation = None;
    let _second = tokio::spawn(session_agent::run(again));

    let (code, message) = reason(running).await;
    assert_eq!(code, EndReason::INSTANCE_REPLACED, "{message}");
    assert!(message.contains("i-restart") && message.contains("connected anew"), "{message}");
    system.wait_online("i-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_does_not_come_back_ends_its_sessions_after_the_detach_timeout() {
    let system = System::configured(Store::in_memory().unwrap(), None, |config| {
        config.detach_timeout = Duration::from_secs(2);
    })
    .await;
    let config = agent_config(&system.url, "i-gone", &system.activation("test"));
    let agent = tokio::spawn(session_agent::run(config));
    system.wait_online("i-gone").await;
    let running = sleeping(&system, "i-gone").await;

    agent.abort();
    let (code, message) = reason(running).await;
    assert_eq!(code, EndReason::INSTANCE_LOST, "{message}");
    assert!(message.contains("did not come back within 2 s"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_session_says_who_ended_it() {
    let mut system = System::start(None).await;
    system.agent("i-term").await;
    let running = sleeping(&system, "i-term").await;
    let id = system.client.sessions().await.unwrap()["sessions"][0]["id"].as_str().unwrap().to_owned();
    system.client.terminate(&id).await.unwrap();
    // Ended after its agent accepted it (a Reason, then Close), or before (a Refuse): either
    // way the client is told who ended it.
    let ended =
        tokio::time::timeout(Duration::from_secs(30), running).await.expect("the client is told").unwrap();
    let message = match ended {
        Ok(outcome) => {
            let (code, message) = outcome.reason.expect("a reason came");
            assert_eq!(code, EndReason::TERMINATED);
            message
        }
        Err(Error::OpenRefused { message, .. }) => message,
        Err(other) => panic!("{other}"),
    };
    assert_eq!(message, "the session was terminated by tester");
}

/// A request made through a live handle after the relay's connection was lost is told so
/// (`ConnectionLost`), not that this client closed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_after_the_connection_was_lost_says_it_was_lost() {
    let mut system = System::start(None).await;
    system.agent("i-lost").await;
    let proxy = Proxy::start(system.relay.addr).await;
    let mut relay = session_client::Relay::new(&format!("ws://{}", proxy.addr), system.token());
    // A client that does not re-attach (a re-attaching one is in client_resume.rs).
    relay.reattach_for = Duration::ZERO;
    let connection = Connection::connect(&relay, "i-lost").await.unwrap();
    // The network between the client and the relay fails.
    assert_eq!(proxy.cut(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (io, _input, _out, _err) = pipes();
    let error = connection.open(exec("true"), io).await.unwrap_err();
    assert!(
        matches!(error, Error::ConnectionLost(_)),
        "the handle is alive and the relay's connection was lost, yet: {error:?} ({error})"
    );
}

/// Two live agents with one key and name: the relay keeps the newer connection and tells the
/// older SUPERSEDED, which stops instead of replacing the other back (spec 12.5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_agent_replaces_the_first_which_stops() {
    let system = System::start(None).await;
    let config = agent_config(&system.url, "i-twice", &system.activation("test"));
    let first = tokio::spawn(session_agent::run_until(config.clone(), core::future::pending()));
    system.wait_online("i-twice").await;
    let mut again = config;
    again.activation = None;
    let _second = tokio::spawn(session_agent::run_until(again, core::future::pending()));
    let stopped =
        tokio::time::timeout(Duration::from_secs(20), first).await.expect("the first stops").unwrap();
    assert!(matches!(stopped, Err(session_agent::AgentError::Superseded { .. })), "{stopped:?}");
    system.wait_online("i-twice").await;
}
