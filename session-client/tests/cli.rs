//! The `session-client` binary against a real relay and agent: exec is usable in a shell
//! pipeline (stdin in, only the remote stdout out, stderr apart, the exit code passed through),
//! and list shows the instance.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use session_test_kit::{System, read_until};

fn client(relay: &str, token: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-client"))
        .arg("--relay")
        .arg(relay)
        .args(args)
        .env("SESSION_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client binary runs");
    child.stdin.take().expect("stdin").write_all(stdin).expect("input written");
    child.wait_with_output().expect("the client ends")
}

/// A relay on a free loopback port and an agent named `name` online at it, with the token of
/// a user allowed everything for the client binary's `SESSION_TOKEN`.
async fn relay_and_agent(name: &str) -> (System, String, String) {
    let mut system = System::start(None).await;
    system.agent(name).await;
    let (url, token) = (system.url.clone(), system.token().to_owned());
    (system, url, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_list_and_errors_through_the_binary() {
    let (_system, url, token) = relay_and_agent("cli-1").await;

    let run = |args: &'static [&'static str], stdin: &'static [u8]| {
        let (url, token) = (url.clone(), token.clone());
        tokio::task::spawn_blocking(move || client(&url, &token, args, stdin))
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown instance nowhere"), "a clear refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_on_a_real_terminal_follows_resizes_restores_the_terminal_and_passes_the_exit_code() {
    use tokio::io::AsyncWriteExt;
    let (_system, url, token) = relay_and_agent("tty-1").await;

    // The client runs on a terminal of its own, as a user's would.
    let (mut pty, pts) = pty_process::open().expect("a pty");
    pty.resize(pty_process::Size::new(24, 80)).expect("size");
    let cooked = rustix::termios::tcgetattr(&pty).expect("terminal settings");
    let mut client = pty_process::Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(["--relay", &url, "connect", "tty-1"])
        .env("SESSION_TOKEN", &token)
        .env("TERM", "xterm")
        .spawn(pts)
        .expect("the client runs");
    let mut seen = String::new();
    pty.write_all(b"stty size\r").await.unwrap();
    read_until(&mut pty, &mut seen, "24 80").await;
    let raw = rustix::termios::tcgetattr(&pty).expect("terminal settings");
    assert!(!raw.local_modes.contains(rustix::termios::LocalModes::ICANON), "raw mode while connected");

    // The window changes: the kernel tells the client (SIGWINCH), the client tells the remote.
    pty.resize(pty_process::Size::new(40, 100)).expect("resize");
    tokio::time::sleep(core::time::Duration::from_millis(300)).await;
    pty.write_all(b"stty size\r").await.unwrap();
    read_until(&mut pty, &mut seen, "40 100").await;

    pty.write_all(b"exit 5\r").await.unwrap();
    let status = tokio::time::timeout(core::time::Duration::from_secs(10), client.wait())
        .await
        .expect("the client ends with the shell")
        .expect("an exit status");
    assert_eq!(status.code(), Some(5), "the remote exit code is the client's");
    let after = rustix::termios::tcgetattr(&pty).expect("terminal settings");
    assert_eq!(after.local_modes, cooked.local_modes, "the terminal is restored");
    assert_eq!(after.input_modes, cooked.input_modes, "the terminal is restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_killed_by_a_signal_restores_the_terminal() {
    use tokio::io::AsyncWriteExt;
    let (_system, url, token) = relay_and_agent("tty-2").await;
    let (mut pty, pts) = pty_process::open().expect("a pty");
    let cooked = rustix::termios::tcgetattr(&pty).expect("terminal settings");
    let mut client = pty_process::Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(["--relay", &url, "connect", "tty-2"])
        .env("SESSION_TOKEN", &token)
        .spawn(pts)
        .expect("the client runs");
    let mut seen = String::new();
    pty.write_all(b"echo up-$((2*3))\r").await.unwrap();
    read_until(&mut pty, &mut seen, "up-6").await;

    let pid = rustix::process::Pid::from_raw(client.id().expect("a pid") as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("signalled");
    let status = tokio::time::timeout(core::time::Duration::from_secs(10), client.wait())
        .await
        .expect("the client ends")
        .expect("an exit status");
    assert_eq!(status.code(), Some(143), "ended as a TERM would, by its own hand");
    let after = rustix::termios::tcgetattr(&pty).expect("terminal settings");
    assert_eq!(after.local_modes, cooked.local_modes, "the terminal is restored");
}

/// `exec ... | head`: once the reader of its stdout goes, the client closes the session and
/// exits 141, as a process killed by SIGPIPE would, and the remote process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_pipe_whose_reader_leaves_exits_141_and_ends_the_remote_process() {
    use std::io::{BufRead, BufReader};
    let (_system, url, token) = relay_and_agent("cli-pipe").await;
    let marker = format!("yes pipe-{}", std::process::id());
    let command = ["exec", "cli-pipe", "--", &format!("exec {marker}")];
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(["--relay", &url])
        .args(command)
        .env("SESSION_TOKEN", &token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client binary runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for _ in 0..2 {
        assert!(lines.next().expect("a line").expect("text").starts_with("pipe-"));
    }
    drop(lines);
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    let status = tokio::time::timeout(core::time::Duration::from_secs(20), waited)
        .await
        .expect("the client ends once its output is closed")
        .unwrap()
        .unwrap();
    assert_eq!(status.status.code(), Some(141), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(status.stderr.is_empty(), "quietly: {}", String::from_utf8_lossy(&status.stderr));
    for _ in 0..100 {
        if !session_test_kit::raw::running(&marker) {
            return;
        }
        tokio::time::sleep(core::time::Duration::from_millis(50)).await;
    }
    panic!("the remote process outlived its session");
}

/// A forward says why each connection failed, and exits 255 saying why once its connection
/// to the relay is gone, instead of accepting connections it cannot carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_reports_each_failure_and_ends_with_its_relay_connection() {
    use std::io::{BufRead, Read};
    let (system, _, token) = relay_and_agent("cli-fwd").await;
    // The client reaches the relay through a proxy, whose cut stands for the relay's end.
    let proxy = session_test_kit::Proxy::start(system.relay.addr).await;
    let url = format!("ws://{}", proxy.addr);
    let closed = session_test_kit::ClosedPort::new();
    let target = closed.port;
    let (mut child, mut stderr, local) =
        spawn_forward(&url, &token, "cli-fwd", target, &["--reattach-for", "0"]);
    let mut line = String::new();
    let mut refused = std::net::TcpStream::connect(local).unwrap();
    let mut nothing = Vec::new();
    refused.read_to_end(&mut nothing).unwrap();
    line.clear();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("forward from 127.0.0.1:") && line.contains("CONNECT_FAILED"), "{line}");

    assert_eq!(proxy.cut(), 1, "the forward's one connection to the relay");
    let ended = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        (child.wait().unwrap(), rest)
    });
    let (status, rest) =
        tokio::time::timeout(core::time::Duration::from_secs(20), ended).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(255), "{rest}");
    assert!(rest.contains("relay"), "says why: {rest}");
}

/// By default a forward outlives a cut connection to the relay: it dials again and re-attaches
/// its session (spec 12.9), and goes on forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_reattaches_after_its_relay_connection_is_cut() {
    use std::io::Read;
    let (system, _, token) = relay_and_agent("cli-fwd-resume").await;
    let proxy = session_test_kit::Proxy::start(system.relay.addr).await;
    let url = format!("ws://{}", proxy.addr);
    let closed = session_test_kit::ClosedPort::new();
    let target = closed.port;
    let (mut child, stderr, local) = spawn_forward(&url, &token, "cli-fwd-resume", target, &[]);
    assert_eq!(proxy.cut(), 1, "the forward's one connection to the relay");
    // Each attempt is carried by the session, once it is re-attached; until then, the local
    // connection waits for the channel's answer.
    let mut nothing = Vec::new();
    std::net::TcpStream::connect(local).unwrap().read_to_end(&mut nothing).unwrap();
    let answered = until_connect_failed(stderr).await;
    assert!(
        answered.contains("forward from 127.0.0.1:") && answered.contains("CONNECT_FAILED"),
        "{answered}"
    );
    assert!(child.try_wait().unwrap().is_none(), "the forward still runs");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A connection made to a forward while its session re-attaches, once the new WebSocket is up
/// and before the relay's Hello on it has come, waits for the re-attach and is carried by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_connection_made_before_the_relays_hello_waits_for_the_reattach() {
    use std::io::Read;
    let (system, _, token) = relay_and_agent("cli-fwd-hello").await;
    let proxy = session_test_kit::Proxy::start(system.relay.addr).await;
    let url = format!("ws://{}", proxy.addr);
    let closed = session_test_kit::ClosedPort::new();
    let (mut child, stderr, local) = spawn_forward(&url, &token, "cli-fwd-hello", closed.port, &[]);
    proxy.hold_after_upgrade();
    assert_eq!(proxy.cut(), 1, "the forward's one connection to the relay");
    // The client dialed again and sent its Hello on the new WebSocket; the relay's is held.
    let spoke = tokio::time::timeout(core::time::Duration::from_secs(20), proxy.client_spoke()).await;
    spoke.expect("the client dials again and speaks");

    let mut attempt = std::net::TcpStream::connect(local).unwrap();
    attempt.set_read_timeout(Some(core::time::Duration::from_millis(500))).unwrap();
    let waited = attempt.read(&mut [0; 1]);
    assert!(
        waited.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "the connection waits for the re-attach rather than being given up: {waited:?}"
    );

    proxy.release();
    attempt.set_read_timeout(None).unwrap();
    let mut nothing = Vec::new();
    attempt.read_to_end(&mut nothing).unwrap();
    let answered = until_connect_failed(stderr).await;
    assert!(
        answered.contains("forward from 127.0.0.1:") && answered.contains("CONNECT_FAILED"),
        "the agent tried the target once re-attached: {answered}"
    );
    assert!(child.try_wait().unwrap().is_none(), "the forward still runs");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// What a forward says on stderr up to its line about a connection the instance could not
/// make (CONNECT_FAILED), or up to its end.
async fn until_connect_failed(mut stderr: std::io::BufReader<std::process::ChildStderr>) -> String {
    use std::io::BufRead;
    let answered = tokio::task::spawn_blocking(move || {
        let mut said = String::new();
        loop {
            let mut line = String::new();
            stderr.read_line(&mut line).unwrap();
            said.push_str(&line);
            if line.contains("CONNECT_FAILED") || line.is_empty() {
                return said;
            }
        }
    });
    let answered = tokio::time::timeout(core::time::Duration::from_secs(20), answered).await;
    answered.expect("a line saying how the attempt failed").unwrap()
}

/// Starts `forward <instance> 0:127.0.0.1:<target>` with `extra` options; returns it, its
/// stderr past the first line, and the local address that line names.
fn spawn_forward(
    url: &str,
    token: &str,
    instance: &str,
    target: u16,
    extra: &[&str],
) -> (std::process::Child, std::io::BufReader<std::process::ChildStderr>, core::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(["--relay", url])
        .args(extra)
        .args(["forward", instance, &format!("0:127.0.0.1:{target}")])
        .env("SESSION_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client binary runs");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let local = line.split_whitespace().nth(1).and_then(|a| a.parse().ok()).expect(&line);
    (child, stderr, local)
}

/// A bearer token is not sent over plain WebSocket off loopback unless asked.
#[test]
fn plain_websocket_off_loopback_is_refused_without_insecure() {
    let out = client("ws://relay.example:7070", "srt_x", &["list"], b"");
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing plain ws:// to relay.example") && stderr.contains("--insecure"),
        "{stderr}"
    );
}
