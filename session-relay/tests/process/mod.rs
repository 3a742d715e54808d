//! Running the relay's binary from tests: its admin commands, and a relay process serving on a
//! port of its own, with its log kept.

#![allow(dead_code, reason = "each test crate uses some of these")]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_client::Relay;
use session_link::dial::Trust;
use session_test_kit::agent_config;

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-binary-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `session-relay --db <db> admin <args>`.
pub(crate) fn admin(db: &Path, args: &[&str]) -> Output {
    admin_command(db, args).output().expect("the relay binary runs")
}

/// `session-relay --db <db> admin <args>` run by operator `login` (`$USER`).
pub(crate) fn admin_as(login: &str, db: &Path, args: &[&str]) -> Output {
    admin_command(db, args).env("USER", login).output().expect("the relay binary runs")
}

fn admin_command(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-relay"));
    command.arg("--db").arg(db).arg("admin").args(args);
    command
}

/// An admin command that must succeed; its stdout.
pub(crate) fn ok(db: &Path, args: &[&str]) -> String {
    let out = admin(db, args);
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// User `ops`, allowed everything, made with the admin commands; their new token.
pub(crate) fn full_access_user(db: &Path, dir: &Path) -> String {
    ok(db, &["user", "add", "ops"]);
    let everything = dir.join("all.json");
    std::fs::write(&everything, session_relay::dev::FULL_ACCESS).unwrap();
    ok(db, &["policy", "put", "all", everything.to_str().unwrap()]);
    ok(db, &["policy", "attach", "all", "ops"]);
    ok(db, &["token", "create", "ops"]).trim().to_owned()
}

/// A relay process and everything it logged so far.
pub(crate) struct Served {
    child: Child,
    pub(crate) port: u16,
    log: Arc<Mutex<String>>,
}

impl Served {
    pub(crate) fn start(db: &Path, args: &[&str]) -> Served {
        let mut command = Command::new(env!("CARGO_BIN_EXE_session-relay"));
        command.arg("--db").arg(db).args(args);
        Served::spawn(command)
    }

    /// As `start`, allowed only `files` open files (soft and hard), as under `ulimit -n`.
    pub(crate) fn start_with_open_files(db: &Path, args: &[&str], files: u32) -> Served {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_session-relay"))
            .arg("--db")
            .arg(db)
            .args(args);
        Served::spawn(command)
    }

    fn spawn(mut command: Command) -> Served {
        let mut child =
            command.env("RUST_LOG", "debug").stderr(Stdio::piped()).spawn().expect("the relay binary runs");
        let log: Arc<Mutex<String>> = Arc::default();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("relay listening") {
                    let _ = port_tx.send(port_in(&line));
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let port = port_rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let Some(port) = port else {
            let _ = child.kill();
            panic!("the relay did not start: {}", log.lock().unwrap());
        };
        Served { child, port, log }
    }

    /// The log once `complete` says it holds what is awaited, or as it is after ten seconds.
    pub(crate) fn log_once(&self, complete: impl Fn(&str) -> bool) -> String {
        for _ in 0..1000 {
            let log = self.log();
            if complete(&log) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.log()
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The relay's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the relay with SIGKILL, as a crash would end it: nothing of it runs after.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a log line naming an address (colours or not).
fn port_in(line: &str) -> Option<u16> {
    let after = line.split("127.0.0.1:").nth(1).or_else(|| line.split("0.0.0.0:").nth(1))?;
    after.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// Starts an agent for `instance` at `url` and waits until `relay` lists it online.
pub(crate) async fn agent(
    url: &str,
    instance: &str,
    code: &str,
    trust: Trust,
    relay: &Relay,
) -> tokio::task::JoinHandle<()> {
    let mut config = agent_config(url, instance, code);
    config.trust = trust;
    let task = tokio::spawn(session_agent::run(config));
    for _ in 0..500 {
        if let Ok(listing) = relay.list().await {
            if listing["instances"]
                .as_array()
                .is_some_and(|all| all.iter().any(|i| i["name"] == instance && i["status"] == "online"))
            {
                return task;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("agent {instance} never came online");
}
