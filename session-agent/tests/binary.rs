//! The `session-agent` binary as an operator runs it: its signals, its exit codes, its help,
//! against a relay in this test's process.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

use core::time::Duration;
use std::path::PathBuf;
use std::process::Stdio;

use nix::sys::signal::{Signal as NixSignal, kill};
use nix::unistd::Pid;
use session_proto::{ErrorCode, ExitStatus, RefuseReason, Signal};
use session_test_kit::raw::running;
use session_test_kit::relay_by_hand::RelayByHand;
use session_test_kit::{Echo, System, exec, forward_echo, pipes, read_until};
use tokio::process::{Child, Command};

const AGENT: &str = env!("CARGO_BIN_EXE_session-agent");

/// A bound on a hang of the agent's start or end, never the thing measured.
const BOUND: Duration = Duration::from_secs(30);

/// A directory of this test's own, for the agent's key and log.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agent-binary-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The agent's arguments for instance `name` at `url`, its key and log in `dir`.
fn args(url: &str, name: &str, dir: &std::path::Path) -> Vec<String> {
    let key = dir.join("agent.key").display().to_string();
    // --allow-root: the tests may run as root, whose sessions are then the test's own.
    ["--relay", url, "--name", name, "--key-file", &key, "--allow-root"].map(str::to_owned).to_vec()
}

/// Starts `command` with its stderr in `dir/agent.log`, killed if the test ends first.
fn start(mut command: Command, dir: &std::path::Path) -> Child {
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).kill_on_drop(true);
    command.spawn().expect("the agent starts")
}

fn log(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

/// How the agent exited, within [`BOUND`].
async fn exit_code(agent: &mut Child, dir: &std::path::Path) -> Option<i32> {
    let status = tokio::time::timeout(BOUND, agent.wait())
        .await
        .unwrap_or_else(|_| panic!("the agent did not exit; its log:\n{}", log(dir)))
        .unwrap();
    status.code()
}

fn signal(agent: &Child, signal: NixSignal) {
    let pid = i32::try_from(agent.id().expect("running")).unwrap();
    kill(Pid::from_raw(pid), signal).unwrap();
}

async fn status_of(system: &System, name: &str) -> String {
    let listing = system.client.list().await.expect("the listing");
    let instances = listing["instances"].as_array().cloned().unwrap_or_default();
    let status = instances.iter().find(|i| i["name"] == name).map(|i| i["status"].clone());
    status.and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Kills, by process id, what runs with this marker in its command line, should a failing test
/// leave it behind.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(&self.0) {
                if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                    let _ = kill(Pid::from_raw(pid), NixSignal::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn help_shows_no_activation_code_from_the_environment() {
    let code = format!("sra_0123456789abcdef_{}", "cd".repeat(32));
    let help = std::process::Command::new(AGENT)
        .arg("--help")
        .env("SESSION_ACTIVATION_CODE", &code)
        .env("SESSION_RELAY", "wss://user:password@relay.example:7443")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("SESSION_ACTIVATION_CODE"), "the variable is named: {text}");
    assert!(!text.contains(&code), "{text}");
    assert!(!text.contains("password"), "{text}");
    assert!(text.contains("Exit codes"), "{text}");
}

/// Plain `ws://` off loopback would send the activation code in the clear: refused unless
/// `--insecure`, before anything is dialed.
#[test]
fn plain_websocket_off_loopback_is_refused_without_insecure() {
    let dir = scratch("cleartext");
    let out = std::process::Command::new(AGENT)
        .args(["--relay", "ws://relay.example:7070", "--name", "i-clear"])
        .arg("--key-file")
        .arg(dir.join("agent.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing plain ws:// to relay.example") && stderr.contains("--insecure"),
        "{stderr}"
    );
}

/// A forward rule the agent cannot read stops it before it dials, saying which and why.
#[test]
fn a_malformed_forward_rule_exits_2_naming_it() {
    let dir = scratch("bad-rule");
    let out = std::process::Command::new(AGENT)
        .args(["--name", "i-rule", "--forward-allow", "127.0.0.1:22", "--forward-deny", "10.0.0.1/8"])
        .arg("--key-file")
        .arg(dir.join("agent.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--forward-deny") && stderr.contains("did you mean 10.0.0.0/8?"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A label the relay would refuse stops the agent before it dials, saying which and why,
/// rather than having every dial refused.
#[test]
fn a_bad_label_exits_2_naming_it() {
    let dir = scratch("bad-label");
    for (labels, problem) in [
        (&["env=prod", "region=eu"][..], "region is the relay's own label"),
        (&["env=prod", "env=dev"][..], "--label: env is given twice"),
    ] {
        let mut command = std::process::Command::new(AGENT);
        command
            .args(["--name", "i-label", "--relay", "ws://127.0.0.1:1"])
            .arg("--key-file")
            .arg(dir.join("agent.key"));
        for label in labels {
            command.args(["--label", label]);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{labels:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(problem), "{stderr}");
    }
    let out = std::process::Command::new(AGENT).args(["--label", "env=a b"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--label"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--forward-allow` as an operator gives it: the port it names is reached, another loopback
/// port is refused before any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_allow_on_the_command_line_limits_what_a_forward_reaches() {
    let system = System::start(None).await;
    let dir = scratch("forward-allow");
    let (allowed, other) = (Echo::start().await, Echo::start().await);
    let mut command = Command::new(AGENT);
    // The code from a file, as the README does it: argv is anyone's to read.
    let code = dir.join("activation-code");
    std::fs::write(&code, format!("{}\n", system.activation("test"))).unwrap();
    command.args(args(&system.url, "i-rules", &dir)).arg("--activation-code-file").arg(&code);
    command.arg("--forward-allow").arg(format!("127.0.0.1:{}", allowed.port));
    let mut agent = start(command, &dir);
    system.wait_online("i-rules").await;

    let connection = system.connect("i-rules").await;
    let back = forward_echo(&connection, "127.0.0.1", allowed.port, b"allowed").await.unwrap();
    assert_eq!(back, b"allowed");
    let refused = forward_echo(&connection, "127.0.0.1", other.port, b"x").await.unwrap_err();
    let message =
        format!("127.0.0.1:{} is not allowed by this agent: no --forward-allow rule names it", other.port);
    assert!(
        matches!(&refused, session_client::Error::OpenRefused { reason: RefuseReason::PROHIBITED, message: m } if *m == message),
        "{refused:?}"
    );
    assert_eq!(other.accepted(), 0);

    signal(&agent, NixSignal::SIGTERM);
    assert_eq!(exit_code(&mut agent, &dir).await, Some(0), "{}", log(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Started by a script as a background job, the agent inherits SIGINT and SIGQUIT ignored (and
/// SIGHUP, under nohup); ignored dispositions survive exec, so every command it started ignored
/// an interrupt. Its handlers reset them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_with_interrupts_ignored_still_lets_an_interrupt_end_a_command() {
    let system = System::start(None).await;
    let dir = scratch("interrupt");
    let mut command = Command::new("sh");
    command.args(["-c", r#"trap "" INT QUIT HUP; exec "$0" "$@""#, AGENT]);
    command.args(args(&system.url, "i-int", &dir)).arg("--activation-code").arg(system.activation("test"));
    let mut agent = start(command, &dir);
    system.wait_online("i-int").await;

    let connection = system.connect("i-int").await;
    let (io, _input, mut output, _) = pipes();
    let running = tokio::spawn({
        let connection = connection.clone();
        async move { connection.open(exec("echo started; exec sleep 30"), io).await }
    });
    let mut seen = String::new();
    read_until(&mut output, &mut seen, "started").await;
    connection.signal(Signal::INT);
    let outcome = tokio::time::timeout(Duration::from_secs(60), running).await.unwrap().unwrap().unwrap();
    assert_eq!(outcome.exit, Some(ExitStatus::Signal { signal: Signal::INT, core_dumped: false }));

    // The agent itself goes on ignoring what it was started ignoring; SIGTERM stops it.
    signal(&agent, NixSignal::SIGINT);
    signal(&agent, NixSignal::SIGTERM);
    assert_eq!(exit_code(&mut agent, &dir).await, Some(0), "{}", log(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM: the agent closes its sessions, whose processes end even if they ignore the hangup
/// and SIGTERM, says GoAway, so that the relay lists it offline at once rather than
/// reconnecting for its detach timeout, and exits 0 once its processes are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_the_sessions_tells_the_relay_and_exits_0() {
    let system = System::start(None).await;
    let dir = scratch("sigterm");
    let mut command = Command::new(AGENT);
    command.args(args(&system.url, "i-stop", &dir)).env("SESSION_ACTIVATION_CODE", system.activation("test"));
    let mut agent = start(command, &dir);
    system.wait_online("i-stop").await;

    let connection = system.connect("i-stop").await;
    let length = format!("907.{}", std::process::id());
    let marker = format!("sleep {length}");
    let _cleanup = KillOnDrop(marker.clone());
    let (io, _input, _output, _) = pipes();
    let kind = exec(&format!("trap '' HUP TERM; t={length}; sleep $t; echo not-reached"));
    let _session = tokio::spawn(async move { connection.open(kind, io).await });
    let deadline = tokio::time::Instant::now() + BOUND;
    while !running(&marker) {
        assert!(tokio::time::Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_of(&system, "i-stop").await, "online");

    signal(&agent, NixSignal::SIGTERM);
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut status = status_of(&system, "i-stop").await;
    while status == "online" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = status_of(&system, "i-stop").await;
    }
    assert_eq!(status, "offline", "{}", log(&dir));
    assert_eq!(exit_code(&mut agent, &dir).await, Some(0), "{}", log(&dir));
    assert!(!running(&marker), "the agent exited before its session's process was gone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_used_activation_code_exits_3_with_the_relays_reason() {
    let system = System::start(None).await;
    let dir = scratch("refused");
    let code = system.activation("test");
    system.store.register("i-first", &[7; 32], &code).unwrap();
    let mut command = Command::new(AGENT);
    command.args(args(&system.url, "i-late", &dir)).arg("--activation-code").arg(&code);
    let mut agent = start(command, &dir);
    assert_eq!(exit_code(&mut agent, &dir).await, Some(3), "{}", log(&dir));
    assert!(log(&dir).contains("activation code has already been used"), "{}", log(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_agent_exits_4() {
    let relay = RelayByHand::ending_with(ErrorCode::SUPERSEDED, "a newer connection replaced this one").await;
    let dir = scratch("superseded");
    let mut command = Command::new(AGENT);
    command.args(args(&relay.url, "i-twice", &dir));
    let mut agent = start(command, &dir);
    assert_eq!(exit_code(&mut agent, &dir).await, Some(4), "{}", log(&dir));
    assert!(log(&dir).contains("replaced"), "{}", log(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}
