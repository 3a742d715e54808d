//! `session-client run` on a fleet of real agent processes, each with its labels, behind one
//! relay: one stopped, one a policy denies. Which targets are chosen, how each ends, what
//! `--max-errors` and `--timeout` do, Ctrl-C, whose output is whose in each of the three forms,
//! the exit codes, and the relay's audit records carrying the fleet command's id.
//!
//! Each process's parent is its agent (`sh -c` started by it), so `$PPID` tells which agent ran
//! a command: what a target printed is checked against that agent's process id.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

use std::collections::BTreeMap;
use std::process::{Output, Stdio};
use std::time::Duration;

use session_test_kit::System;
use session_test_kit::binaries::{agent_binary, client_binary};
use session_test_kit::raw::running;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A bound on each program run or wait, so that a hang fails the test instead of stalling it.
/// Never a measure of speed.
const BOUND: Duration = Duration::from_secs(120);

/// The instances and their labels: 21 agents.
fn instances() -> Vec<(String, Vec<&'static str>)> {
    let mut instances = Vec::new();
    for i in 1..=10 {
        instances.push((format!("web-{i:02}"), vec!["env=prod", "role=web"]));
    }
    for i in 1..=5 {
        instances.push((format!("db-{i:02}"), vec!["env=prod", "role=db"]));
    }
    for i in 1..=4 {
        instances.push((format!("dev-{i:02}"), vec!["env=dev", "role=web"]));
    }
    // A policy denies sessions on what carries this label.
    instances.push(("vault-1".to_owned(), vec!["env=prod", "role=vault", "tier=locked"]));
    // Stopped once it registered: listed, offline.
    instances.push(("old-1".to_owned(), vec!["env=prod", "role=web"]));
    instances
}

/// Everything, except a session on an instance labelled `tier=locked`.
const OPERATOR: &str = r#"{"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": "session:*", "Resource": "*"},
    {"Effect": "Deny", "Action": "session:StartSession", "Resource": "*",
     "Condition": {"StringEquals": {"session:InstanceLabel/tier": "locked"}}}]}"#;

struct Fleet {
    system: System,
    /// The agents by name, killed with the test.
    agents: BTreeMap<String, Child>,
    /// Each running agent's process id, as its commands see it in `$PPID`.
    pids: BTreeMap<String, u32>,
    /// The operator's token.
    token: String,
    dir: tempfile::TempDir,
}

impl Fleet {
    async fn start() -> Fleet {
        let system = System::start(None).await;
        let dir = tempfile::tempdir().unwrap();
        let mut agents = BTreeMap::new();
        for (name, labels) in instances() {
            let mut command = Command::new(agent_binary());
            command.args(["--relay", &system.url, "--name", &name, "--allow-root"]);
            command.arg("--key-file").arg(dir.path().join(format!("{name}.key")));
            command.env("SESSION_ACTIVATION_CODE", system.activation("test"));
            for label in labels {
                command.args(["--label", label]);
            }
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
            command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).kill_on_drop(true);
            agents.insert(name, command.spawn().expect("the agent starts"));
        }
        for name in agents.keys() {
            system.wait_online(name).await;
        }
        let pids = agents.iter().map(|(name, agent)| (name.clone(), agent.id().unwrap())).collect();
        let token = system.user("operator", OPERATOR).token;
        let mut fleet = Fleet { system, agents, pids, token, dir };
        fleet.stop("old-1").await;
        fleet
    }

    /// Stops an agent as an operator does (SIGTERM): the relay lists it offline at once.
    async fn stop(&mut self, name: &str) {
        let mut agent = self.agents.remove(name).unwrap();
        kill("-TERM", agent.id().unwrap());
        let status = tokio::time::timeout(BOUND, agent.wait()).await.expect("the agent stops").unwrap();
        assert_eq!(status.code(), Some(0));
        self.pids.remove(name);
        let offline = async {
            while self.system.relay.registry.is_online(name) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(BOUND, offline).await.expect("the relay lists it offline");
    }

    fn pid(&self, name: &str) -> u32 {
        self.pids[name]
    }

    /// `session-client run` with `args`, as the operator.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(client_binary());
        command.arg("run").args(args);
        command.env("SESSION_RELAY", &self.system.url).env("SESSION_TOKEN", &self.token);
        command.env_remove("SESSION_PROFILE").env("SESSION_CONFIG", self.dir.path().join("no-config.toml"));
        command.stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    /// Runs `session-client run` to its end.
    async fn run(&self, args: &[&str]) -> Ran {
        let output =
            tokio::time::timeout(BOUND, self.command(args).output()).await.expect("run ends").unwrap();
        Ran::from(output)
    }

    /// `case $PPID in <pids of names>) what;; esac`: `what` on those targets only.
    fn on(&self, names: &[&str], what: &str) -> String {
        let pids: Vec<String> = names.iter().map(|name| self.pid(name).to_string()).collect();
        format!("case $PPID in {}) {what};; esac", pids.join("|"))
    }
}

/// What a run of the CLI came to.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Ran {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// The fleet command id the first line names.
    fn fleet(&self) -> &str {
        let first = self.stderr.lines().next().unwrap_or_default();
        let id = first.strip_prefix("fleet ").and_then(|rest| rest.split(':').next());
        id.unwrap_or_else(|| panic!("no fleet line: {self:#?}"))
    }

    /// The status lines, by target.
    fn statuses(&self) -> BTreeMap<String, String> {
        self.stderr
            .lines()
            .filter_map(|line| line.strip_prefix('['))
            .filter_map(|line| line.split_once("] "))
            .map(|(target, status)| (target.to_owned(), status.to_owned()))
            .collect()
    }

    fn summary(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }
}

fn kill(signal: &str, pid: u32) {
    let sent = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
    assert!(sent.success());
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i:02}")).collect()
}

/// Waits until no process with `marker` in its command line is left: the agents ended what
/// the run closed.
async fn gone(marker: &str) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while running(marker) {
        assert!(tokio::time::Instant::now() < deadline, "{marker} still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_on_a_fleet_of_real_agents() {
    let fleet = Fleet::start().await;
    assert_eq!(fleet.agents.len(), 20, "running agents, beside the stopped one");

    // By label, prefixed lines: every prod instance, the denied and the stopped one included.
    let ran = fleet.run(&["-l", "env=prod", "--", "echo pid $PPID; echo warn >&2; printf tail"]).await;
    assert_eq!(ran.code, Some(3), "{ran:#?}");
    let prod: Vec<String> = names("web", 10).into_iter().chain(names("db", 5)).collect();
    let statuses = ran.statuses();
    assert_eq!(statuses.len(), 17, "{ran:#?}");
    for name in &prod {
        assert_eq!(statuses[name], "succeeded", "{ran:#?}");
        let pid = fleet.pid(name);
        assert!(ran.stdout.lines().any(|line| line == format!("{name}: pid {pid}")), "{ran:#?}");
        // The partial last line ends with a newline of its own.
        assert!(ran.stdout.contains(&format!("{name}: tail\n")), "{ran:#?}");
        assert!(ran.stderr.contains(&format!("{name}: warn\n")), "{ran:#?}");
    }
    assert_eq!(ran.stdout.lines().count(), 30, "two lines per target that ran, nothing else: {ran:#?}");
    assert!(
        statuses["vault-1"].starts_with("refused (") && statuses["vault-1"].contains("vault-1"),
        "{ran:#?}"
    );
    assert!(statuses["old-1"].starts_with("unreachable ("), "{ran:#?}");
    assert!(!statuses.contains_key("dev-01"), "{ran:#?}");
    assert!(ran.stderr.starts_with(&format!("fleet {}: 17 targets, 17 at once\n", ran.fleet())), "{ran:#?}");
    assert_eq!(ran.summary(), "17 targets: 15 succeeded, 1 unreachable, 1 refused");

    // One record per target, each carrying the fleet command's id: a session for each that
    // ran, a refusal for the other two.
    let id = format!("\"fleet\":\"{}\"", ran.fleet());
    let record = |audit: &str, name: &str, event: &str| {
        let (instance, event) = (format!("\"instance\":\"{name}\""), format!("\"event\":\"{event}\""));
        audit.lines().any(|r| r.contains(&id) && r.contains(&instance) && r.contains(&event))
    };
    let complete = |audit: &str| {
        prod.iter().all(|name| record(audit, name, "session"))
            && record(audit, "vault-1", "refused")
            && record(audit, "old-1", "refused")
    };
    let audit = fleet.system.audit_until(complete).await;
    assert!(complete(&audit), "{audit}");

    // Labels ANDed with names; a failure by exit code and by signal: exit 1, all reached.
    let command = format!("{}; echo ok", fleet.on(&["dev-02"], "kill -KILL $$"));
    let command = format!("{}; {command}", fleet.on(&["dev-03"], "exit 4"));
    let ran = fleet.run(&["-t", "*-0?", "-l", "env=dev", "--", &command]).await;
    assert_eq!(ran.code, Some(1), "{ran:#?}");
    let statuses = ran.statuses();
    assert_eq!(statuses.keys().collect::<Vec<_>>(), ["dev-01", "dev-02", "dev-03", "dev-04"]);
    assert_eq!(statuses["dev-02"], "failed (signal KILL)");
    assert_eq!(statuses["dev-03"], "failed (exit code 4)");
    assert_eq!(statuses["dev-04"], "succeeded");
    assert_eq!(ran.summary(), "4 targets: 2 succeeded, 2 failed");

    // --max-errors 1, one at a time: the second failure stops new starts.
    let command = fleet.on(&["web-02", "web-03"], "exit 3");
    let ran =
        fleet.run(&["-t", "web-*", "--max-concurrency", "1", "--max-errors", "1", "--", &command]).await;
    assert_eq!(ran.code, Some(3), "{ran:#?}");
    let statuses = ran.statuses();
    assert_eq!(statuses["web-01"], "succeeded");
    assert_eq!(statuses["web-02"], "failed (exit code 3)");
    assert_eq!(statuses["web-03"], "failed (exit code 3)");
    for name in &names("web", 10)[3..] {
        assert_eq!(statuses[name], "not started", "{ran:#?}");
    }
    assert_eq!(ran.summary(), "10 targets: 1 succeeded, 2 failed, 7 not started");

    // --timeout: the one that sleeps is timed out and its process ended; the rest succeed.
    let marker = format!("sleep 903.{}", std::process::id());
    let command = format!("{}; echo done", fleet.on(&["db-01"], &format!("echo sleeping; {marker}")));
    let ran = fleet.run(&["-t", "db-*", "--timeout", "5", "--", &command]).await;
    assert_eq!(ran.code, Some(1), "{ran:#?}");
    let statuses = ran.statuses();
    assert_eq!(statuses["db-01"], "timed out", "{ran:#?}");
    assert!(ran.stdout.contains("db-01: sleeping\n"), "what came before the timeout is kept: {ran:#?}");
    for name in &names("db", 5)[1..] {
        assert_eq!(statuses[name], "succeeded", "{ran:#?}");
    }
    gone(&marker).await;

    // Plain names are run even unlisted; the relay answers for an unknown one. A script is
    // each target's stdin, run by `sh -s`.
    let script = fleet.dir.path().join("script.sh");
    std::fs::write(&script, "echo scripted\nexit 0\n").unwrap();
    let script = script.display().to_string();
    let ran = fleet.run(&["-t", "web-01", "-t", "nosuch", "--script", &script]).await;
    assert_eq!(ran.code, Some(3), "{ran:#?}");
    assert_eq!(ran.stdout, "web-01: scripted\n");
    assert_eq!(ran.statuses()["web-01"], "succeeded");
    assert!(ran.statuses()["nosuch"].starts_with("unreachable ("), "{ran:#?}");

    // --json: output, statuses and the summary as JSON lines; concatenated data is the output.
    let ran = fleet.run(&["-t", "db-0?", "--json", "--", "echo pid $PPID; printf 'x\\ny'"]).await;
    assert_eq!(ran.code, Some(0), "{ran:#?}");
    let records: Vec<serde_json::Value> =
        ran.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    for name in names("db", 5) {
        let data: String = records
            .iter()
            .filter(|r| r["target"] == name.as_str() && r["stream"] == "stdout")
            .map(|r| r["data"].as_str().unwrap())
            .collect();
        assert_eq!(data, format!("pid {}\nx\ny", fleet.pid(&name)));
        let status =
            records.iter().find(|r| r["target"] == name.as_str() && r.get("status").is_some()).unwrap();
        assert_eq!(status["status"], "succeeded");
        assert!(status["session"].as_str().is_some_and(|s| s.starts_with("operator-")), "{status}");
    }
    let last = records.last().unwrap();
    assert_eq!(last["summary"]["targets"], 5);
    assert_eq!(last["summary"]["succeeded"], 5);
    assert_eq!(last["fleet"], ran.fleet());
    assert_eq!(last["exit_code"], 0);

    // Much output from several targets at once: every line whole, in order, and its own
    // target's; a line longer than the partial-line bound (64 KiB) comes in pieces of it.
    let command = "seq 20000 | sed \"s/^/$PPID /\"; head -c 100000 /dev/zero | tr '\\0' b";
    let ran = fleet.run(&["-t", "db-*", "--", command]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    for name in names("db", 5) {
        let prefix = format!("{name}: ");
        let lines: Vec<&str> = ran.stdout.lines().filter_map(|line| line.strip_prefix(&prefix)).collect();
        assert_eq!(lines.len(), 20_002, "{name}");
        let pid = fleet.pid(&name);
        for (i, line) in lines[..20_000].iter().enumerate() {
            assert_eq!(*line, format!("{pid} {}", i + 1), "{name}");
        }
        assert_eq!(lines[20_000], "b".repeat(64 * 1024), "{name}");
        assert_eq!(lines[20_001], "b".repeat(100_000 - 64 * 1024), "{name}");
    }
    assert_eq!(ran.stdout.lines().count(), 5 * 20_002);

    // --output-dir: one file per target and stream.
    let out = fleet.dir.path().join("out");
    let out_arg = out.display().to_string();
    let ran = fleet.run(&["-t", "dev-*", "--output-dir", &out_arg, "--", "echo pid $PPID; echo e >&2"]).await;
    assert_eq!(ran.code, Some(0), "{ran:#?}");
    assert_eq!(ran.stdout, "");
    for name in names("dev", 4) {
        let read = |stream: &str| std::fs::read_to_string(out.join(format!("{name}.{stream}"))).unwrap();
        assert_eq!(read("stdout"), format!("pid {}\n", fleet.pid(&name)));
        assert_eq!(read("stderr"), "e\n");
    }

    // Ctrl-C: what runs is closed (its processes end), what waits never starts; exit 130.
    let marker = format!("sleep 904.{}", std::process::id());
    let command = format!("echo started; {marker}");
    let mut cli = fleet.command(&["-t", "web-*", "--max-concurrency", "3", "--", &command]);
    let mut child = cli.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started = Vec::new();
    while started.len() < 3 {
        let line =
            tokio::time::timeout(BOUND, stdout.next_line()).await.expect("output as it comes").unwrap();
        started.push(line.expect("three targets start"));
    }
    kill("-INT", child.id().unwrap());
    let output = tokio::time::timeout(BOUND, child.wait_with_output()).await.expect("it ends").unwrap();
    let ran = Ran::from(output);
    assert_eq!(ran.code, Some(130), "{ran:#?}");
    let statuses = ran.statuses();
    assert_eq!(statuses.len(), 10, "{ran:#?}");
    assert!(statuses.values().all(|status| status == "cancelled"), "{ran:#?}");
    assert_eq!(ran.summary(), "10 targets: 10 cancelled");
    gone(&marker).await;

    // No target, and no relay.
    let ran = fleet.run(&["-t", "nothing-*", "--", "true"]).await;
    assert_eq!(ran.code, Some(2), "{ran:#?}");
    assert!(ran.stderr.contains("no target"), "{ran:#?}");
    let ran = Ran::from(
        tokio::time::timeout(
            BOUND,
            fleet.command(&["--relay", "ws://127.0.0.1:1", "-t", "web-01", "--", "true"]).output(),
        )
        .await
        .unwrap()
        .unwrap(),
    );
    assert_eq!(ran.code, Some(255), "{ran:#?}");
}

/// More channels at once than a connection holds (256): those past it wait for a free one
/// instead of failing, and every target's command runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_connection_takes_more_opens_than_it_has_channels() {
    let mut system = System::start(None).await;
    let names: Vec<String> = (1..=20).map(|i| format!("i-{i:02}")).collect();
    for name in &names {
        system.agent(name).await;
    }
    let (connection, id) = session_client::Connection::fleet(&system.client).await.unwrap();
    assert!(id.starts_with("tester-"), "{id}");
    // 15 a target stays within the relay's 32 sessions per user and instance.
    let opens = names.iter().cycle().take(300).enumerate().map(|(i, name)| {
        let connection = connection.clone();
        async move {
            let (io, input, mut stdout, _stderr) = session_test_kit::pipes();
            drop(input);
            let mut text = String::new();
            let command = session_test_kit::exec(&format!("echo {name} {i}"));
            let (outcome, read) = tokio::join!(
                connection.open_on(name, command, io),
                tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text)
            );
            read.unwrap();
            (outcome.map(|o| o.exit_code()).map_err(|e| e.to_string()), text, format!("{name} {i}\n"))
        }
    });
    let ran = tokio::time::timeout(BOUND, futures_util::future::join_all(opens)).await.expect("a hang guard");
    for (outcome, text, expected) in ran {
        assert_eq!(outcome, Ok(0));
        assert_eq!(text, expected);
    }
    connection.close().await;
}
