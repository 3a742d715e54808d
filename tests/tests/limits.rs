//! One user cannot take an instance from everyone else: connections and sessions per user and
//! instance are limited, the refusal says which limit, and another user's sessions still start.

use core::time::Duration;

use session_client::{Connection, Error};
use session_proto::RefuseReason;
use session_relay::{Limits, Store};
use session_test_kit::{System, exec, pipes, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_connections_and_sessions_are_limited_and_another_user_still_gets_in() {
    let mut system = System::configured(Store::in_memory().unwrap(), None, |config| {
        config.limits = Limits { connections_per_user: 2, channels_per_user: 3 };
    })
    .await;
    system.agent("i-shared").await;

    let first = system.connect("i-shared").await;
    let second = system.connect("i-shared").await;
    let third = Connection::connect(&system.client, "i-shared").await.unwrap_err();
    let expected = "tester holds 2 connections to instance i-shared, the relay's limit per user (--max-connections-per-user)";
    assert!(matches!(&third, Error::Refused { status: 429, reason, .. } if reason == expected), "{third}");

    // Three sessions over the two connections: the fourth is refused, saying which limit.
    let mut running = Vec::new();
    for connection in [&first, &second, &first] {
        let (io, input, _out, _err) = pipes();
        let connection = connection.clone();
        running.push((tokio::spawn(async move { connection.open(exec("cat"), io).await }), input));
    }
    for _ in 0..200 {
        if system.client.sessions().await.unwrap()["sessions"].as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (io, _input, _out, _err) = pipes();
    let refused = second.open(exec("true"), io).await.unwrap_err();
    let expected =
        "tester holds 3 sessions on instance i-shared, the relay's limit per user (--max-channels-per-user)";
    assert!(
        matches!(&refused, Error::OpenRefused { reason: RefuseReason::RESOURCE_SHORTAGE, message } if message == expected),
        "{refused}"
    );

    // Another user's share is theirs.
    let bob = system.user("bob", session_relay::dev::FULL_ACCESS);
    assert_eq!(run(&bob, "i-shared", "echo mine").await.unwrap().stdout, "mine\n");

    // A session that ends (its input closed, cat exits) gives its place back: on the same
    // connection, whose frames the relay takes in order, the next Open finds it free.
    let (ended, input) = running.pop().unwrap();
    drop(input);
    assert_eq!(ended.await.unwrap().unwrap().exit_code(), 0);
    assert_eq!(session_test_kit::run_on(&first, "echo again").await.unwrap().stdout, "again\n");
    drop(second);
}

/// A caller that gives up an open (drops its future: a timeout, a cancelled task) closes the
/// session: the process ends at the instance and the user's place is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_open_closes_its_session_and_its_process_ends() {
    let mut system = System::start(None).await;
    system.agent("i-abandon").await;
    let connection = system.connect("i-abandon").await;
    let marker = format!("sleep {}", 700 + std::process::id() % 200);
    let (io, _input, _out, _err) = pipes();
    let command = marker.clone();
    let waiting = tokio::spawn(async move { connection.open(exec(&command), io).await });
    for _ in 0..200 {
        if session_test_kit::raw::running(&marker) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(session_test_kit::raw::running(&marker), "the session started");
    waiting.abort();
    for _ in 0..300 {
        let sessions = system.client.sessions().await.unwrap();
        if !session_test_kit::raw::running(&marker) && sessions["sessions"].as_array().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the abandoned session went on");
}
