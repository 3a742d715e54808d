//! A client that offers RESUME keeps its session at the relay when its connection drops
//! (spec 12.9): the browser console's reconnect, tested here without a browser, and the CLI's.

use session_client::Connection;
use session_test_kit::System;
use session_test_kit::raw::Raw;
use session_test_kit::run::{exec, pipes};
use session_test_kit::system::Proxy;
use tokio::io::AsyncReadExt;

/// What `LINES` prints.
fn expected() -> Vec<u8> {
    (1..=LINES).flat_map(|i| format!("line-{i}\n").into_bytes()).collect()
}

const LINES: usize = 40_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reattaches_gets_the_output_produced_meanwhile_once() {
    let mut system = System::start(None).await;
    system.agent("i-001").await;
    let mut raw = Raw::connect_resumable(&system.url, system.token(), "i-001").await;
    let command = format!("seq 1 {LINES} | sed 's/^/line-/'");
    let channel = raw.conn.open(&exec(&command).as_open_kind()).unwrap();
    raw.flush().await;
    raw.until(|e| e.starts_with("Data"), 10).await;

    // The connection drops with output unread in its socket and in flight: the relay must
    // send again exactly what this side did not take.
    raw.ws.close(None).await.unwrap();
    let events = raw.reattach(&system.url, system.token(), "i-001").await;
    assert!(events.iter().all(|e| !e.contains("Error")), "{events:?}");
    raw.until(|e| e.starts_with("Resumed"), 10).await;
    raw.until(|e| e.starts_with("Exit"), 30).await;
    let _ = channel;

    assert!(raw.output == expected(), "got {} bytes, wanted {}", raw.output.len(), expected().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sessions_own_user_may_reattach_to_it() {
    let mut system = System::start(None).await;
    system.agent("i-001").await;
    let everything =
        r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:*", "Resource": "*"}}"#;
    let bob = system.user("bob", everything);
    let mut raw = Raw::connect_resumable(&system.url, system.token(), "i-001").await;
    raw.ws.close(None).await.unwrap();

    // Bob holds the session's token (say he read it off the wire): he is still not its user.
    raw.reattach(&system.url, &bob.token, "i-001").await;
    let refused = raw.until(|e| e.contains("RESUME_REJECTED") || e.contains("Resumed"), 10).await;
    assert!(refused.contains("RESUME_REJECTED"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_reattaches_after_its_connection_is_cut_and_loses_no_output() {
    let mut system = System::start(None).await;
    system.agent("i-001").await;
    let proxy = Proxy::start(system.relay.addr).await;
    let relay = session_client::Relay::new(&format!("ws://{}", proxy.addr), system.token());
    let connection = Connection::connect(&relay, "i-001").await.unwrap();
    let (io, input, mut stdout, _stderr) = pipes();
    drop(input);
    let lines = 10 * LINES;
    let command = format!("seq 1 {lines} | sed 's/^/line-/'");
    let reading = async {
        let mut output = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut cut = false;
        loop {
            let n = stdout.read(&mut buf).await.unwrap();
            if n == 0 {
                return (output, cut);
            }
            output.extend_from_slice(&buf[..n]);
            if !cut && output.len() > 64 * 1024 {
                // Mid-stream, as a network change would.
                cut = proxy.cut() > 0;
            }
        }
    };
    let (outcome, (output, cut)) = tokio::join!(connection.open(exec(&command), io), reading);
    assert!(cut, "the connection was cut while output flowed");
    assert_eq!(outcome.unwrap().exit_code(), 0);
    let wanted: Vec<u8> = (1..=lines).flat_map(|i| format!("line-{i}\n").into_bytes()).collect();
    assert!(output == wanted, "got {} bytes, wanted {}", output.len(), wanted.len());
}
