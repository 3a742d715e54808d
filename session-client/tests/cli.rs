//! The `session-client` binary against a real relay and agent: exec is usable in a shell
//! pipeline (stdin in, only the remote stdout out, stderr apart, the exit code passed through),
//! and list shows the instance.

use core::net::SocketAddr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn client(relay: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-client"))
        .arg("--relay")
        .arg(relay)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client binary runs");
    child.stdin.take().expect("stdin").write_all(stdin).expect("input written");
    child.wait_with_output().expect("the client ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_list_and_errors_through_the_binary() {
    let relay = session_relay::Relay::start(SocketAddr::from(([127, 0, 0, 1], 0)), Default::default())
        .await
        .expect("relay");
    let url = format!("ws://{}", relay.addr);
    let user = session_agent::LoginUser::resolve(None, true).expect("the test's user");
    let agent = tokio::spawn(session_agent::run(session_agent::AgentConfig::new(&url, "cli-1", user)));
    for _ in 0..500 {
        if relay.registry.status().to_string().contains("\"online\"") {
            break;
        }
        tokio::time::sleep(core::time::Duration::from_millis(10)).await;
    }

    let run = |args: &'static [&'static str], stdin: &'static [u8]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || client(&url, args, stdin))
    };
    let out = run(&["exec", "cli-1", "--", "tr a-z A-Z; echo oops >&2; exit 4"], b"hello pipeline\n")
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO PIPELINE\n", "only the remote output on stdout");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n", "the remote stderr on stderr, nothing else");
    assert_eq!(out.status.code(), Some(4));

    let out = run(&["list"], b"").await.unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(listing.lines().any(|l| l.starts_with("cli-1") && l.contains("online")), "{listing}");

    let out = run(&["exec", "nowhere", "--", "true"], b"").await.unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere is not connected"), "a clear refusal");
    agent.abort();
}
