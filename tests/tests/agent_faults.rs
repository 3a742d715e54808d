//! Faults of the agent, each kept as a test over real processes, sockets and terminals: a
//! process left running when its channel closed, an agent retrying for ever what the relay
//! refused for good, an agent waiting out a backoff after its relay restarted, and one fighting
//! the agent that replaced it.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "threads and files")]

use core::time::Duration;
use std::net::SocketAddr;

use session_agent::{AgentConfig, AgentError, AgentKey, LoginUser, run_until};
use session_proto::ErrorCode;
use session_proto::connection::{Config, Role};
use session_proto::owned::OwnedOpenKind;
use session_relay::store::ActivationTerms;
use session_relay::{Relay, Store};
use session_test_kit::raw::{Raw, running};
use session_test_kit::relay_by_hand::RelayByHand;
use session_test_kit::{Proxy, System, agent_config, exec, exec_on_terminal, pipes, relay_on, size};
use tokio::io::AsyncWriteExt;

/// The bound on a hang while a closed channel's processes are ended: their hangup and SIGTERM
/// grace periods with room to spare on a loaded machine.
const ENDED_WITHIN: Duration = Duration::from_secs(30);

/// A `sleep` that only this test runs, named so that only the sleep's own command line shows
/// it: the shell that starts it reads its length from a variable. Killed when dropped, if it
/// outlived the test.
struct Sleep {
    marker: String,
    length: String,
}

impl Sleep {
    fn new(test: u32) -> Sleep {
        let length = format!("{}.{}", 900 + test, std::process::id());
        Sleep { marker: format!("sleep {length}"), length }
    }

    /// Shell words that start it in the foreground, with HUP and TERM ignored, and that must
    /// go on after it (so the shell stays its parent instead of becoming it).
    fn ignoring_hangup_and_terminate(&self) -> String {
        format!("trap '' HUP TERM; t={}; sleep $t; echo not-reached", self.length)
    }

    fn running(&self) -> bool {
        running(&self.marker)
    }

    async fn wait_until_running(&self) {
        let deadline = tokio::time::Instant::now() + ENDED_WITHIN;
        while !self.running() {
            assert!(tokio::time::Instant::now() < deadline, "{} never started", self.marker);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it is gone within [`ENDED_WITHIN`].
    async fn ends(&self) -> bool {
        let deadline = tokio::time::Instant::now() + ENDED_WITHIN;
        while self.running() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // By process id, found in /proc: only what this test started.
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(&self.marker) {
                let pid = entry.file_name().to_string_lossy().into_owned();
                let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

/// Opens `kind` on `instance` through a client driven by hand; returns it and the channel once
/// the agent accepted it.
async fn open_by_hand(system: &System, instance: &str, kind: &OwnedOpenKind) -> (Raw, u16) {
    let mut raw = Raw::connect(&system.url, system.token(), instance, Config::new(Role::Initiator)).await;
    let channel = raw.conn.open(&kind.as_open_kind()).expect("an Open");
    raw.flush().await;
    raw.until(|e| e.starts_with("Accepted"), 10).await;
    (raw, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_closed_by_its_client_ends_a_command_on_pipes_that_ignores_hangup_and_terminate() {
    let mut system = System::start(None).await;
    system.agent("i-close").await;
    let sleep = Sleep::new(1);
    let (mut raw, channel) =
        open_by_hand(&system, "i-close", &exec(&sleep.ignoring_hangup_and_terminate())).await;
    sleep.wait_until_running().await;

    raw.conn.close(channel).expect("a Close");
    raw.flush().await;
    assert!(sleep.ends().await, "{} outlived its channel", sleep.marker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_ends_a_command_on_a_terminal_that_ignores_hangup_and_terminate() {
    let mut system = System::start(None).await;
    system.agent("i-vanish").await;
    let sleep = Sleep::new(2);
    let kind = exec_on_terminal(&sleep.ignoring_hangup_and_terminate(), size(80, 24));
    let (raw, _channel) = open_by_hand(&system, "i-vanish", &kind).await;
    sleep.wait_until_running().await;

    // Gone without a word: the relay closes the client's channels on the agent.
    drop(raw);
    assert!(sleep.ends().await, "{} outlived its channel", sleep.marker);
}

/// An interactive shell runs each job in a process group of its own, which is the terminal's
/// foreground group: ending the shell's group alone would leave the job running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_session_ends_the_foreground_job_of_an_interactive_shell() {
    let mut system = System::start(None).await;
    system.agent("i-term").await;
    let connection = system.connect("i-term").await;
    let (io, mut input, _output, _) = pipes();
    let running = tokio::spawn({
        let connection = connection.clone();
        async move { connection.open(exec_on_terminal("exec bash --norc -i", size(80, 24)), io).await }
    });
    let sleep = Sleep::new(3);
    let typed = format!("trap '' HUP TERM; t={}; sleep $t; echo not-reached\n", sleep.length);
    input.write_all(typed.as_bytes()).await.unwrap();
    sleep.wait_until_running().await;

    let sessions = system.client.sessions().await.expect("the sessions");
    let id = sessions["sessions"][0]["id"].as_str().expect("a session id").to_owned();
    system.client.terminate(&id).await.expect("terminated");
    assert!(sleep.ends().await, "{} outlived its session", sleep.marker);
    let _ = tokio::time::timeout(ENDED_WITHIN, running).await.expect("the channel ended");
}

/// An agent whose code was used already, and one whose key is not the one registered for its
/// instance: the relay refuses both for good, and they stop with its reason instead of retrying
/// for ever as if the relay could not be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_the_relay_refuses_for_good_stops_with_the_relays_reason() {
    let mut system = System::start(None).await;
    let code = system.activation("test");
    system.store.register("i-first", &[7; 32], &code).unwrap();
    let used = agent_config(&system.url, "i-used", &code);
    let outcome = tokio::time::timeout(Duration::from_secs(20), run_until(used, core::future::pending()))
        .await
        .expect("the agent gave up instead of retrying");
    assert!(
        matches!(&outcome, Err(AgentError::Refused { reason }) if reason.contains("already been used")),
        "{outcome:?}"
    );

    system.agent("i-owned").await;
    let user = LoginUser::resolve(None, true).unwrap();
    let other_key = AgentKey::generate().unwrap();
    let mut impostor = AgentConfig::new(&system.url, "i-owned", other_key, user);
    impostor.max_backoff = Duration::from_millis(200);
    let outcome = tokio::time::timeout(Duration::from_secs(20), run_until(impostor, core::future::pending()))
        .await
        .expect("the agent gave up instead of retrying");
    assert!(
        matches!(&outcome, Err(AgentError::Refused { reason }) if reason.contains("agent key for this instance")),
        "{outcome:?}"
    );
}

/// Waits until `relay` has `name` online.
async fn online(relay: &Relay, name: &str) {
    while !relay.registry.is_online(name) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A restarted relay has no session for the agent to resume, and says so: the agent starts a
/// fresh one at once. It used to wait a full backoff first, offline meanwhile; here every
/// backoff is a minute, so that coming back within the bound can only be the immediate redial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_relay_restarts_the_agent_comes_back_without_waiting_its_backoff() {
    let dir = std::env::temp_dir().join(format!("agent-faults-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("relay.db");
    let store = Store::open(&db).unwrap();
    let relay = relay_on(SocketAddr::from(([127, 0, 0, 1], 0)), store.clone()).await;
    let terms =
        ActivationTerms { account: "test".into(), label: None, ttl: Duration::from_secs(600), uses: 1 };
    let (code, _) = store.create_activation(&terms).unwrap();
    // The agent's connections go through a proxy, so that they can be cut when the relay
    // stops, as its process's end would cut them (this one's connection tasks outlive it).
    let proxy = Proxy::start(relay.addr).await;
    let mut config = agent_config(&format!("ws://{}", proxy.addr), "i-back", &code);
    config.first_backoff = Duration::from_secs(60);
    config.max_backoff = Duration::from_secs(60);
    let agent = tokio::spawn(run_until(config, core::future::pending()));
    tokio::time::timeout(Duration::from_secs(10), online(&relay, "i-back")).await.expect("online");

    let addr = relay.addr;
    drop(relay);
    let restarted = relay_on(addr, Store::open(&db).unwrap()).await;
    assert_eq!(proxy.cut(), 1, "the agent was connected");

    tokio::time::timeout(Duration::from_secs(15), online(&restarted, "i-back"))
        .await
        .expect("the agent did not come back at once: it waited out its backoff");
    agent.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A relay ends an agent's connection with SUPERSEDED when another agent process connected as
/// the same instance with the same key. Dialing again would supersede that one, which would do
/// the same: the agent stops instead, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_agent_stops_instead_of_replacing_the_other_one_back() {
    let relay = RelayByHand::ending_with(ErrorCode::SUPERSEDED, "a newer connection replaced this one").await;
    let user = LoginUser::resolve(None, true).unwrap();
    let mut config = AgentConfig::new(&relay.url, "i-twice", AgentKey::generate().unwrap(), user);
    config.first_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_millis(10);
    let outcome = tokio::time::timeout(Duration::from_secs(20), run_until(config, core::future::pending()))
        .await
        .expect("the agent dialed again instead of stopping");
    assert!(
        matches!(&outcome, Err(AgentError::Superseded { message }) if message == "a newer connection replaced this one"),
        "{outcome:?}"
    );
    assert_eq!(relay.admitted.load(core::sync::atomic::Ordering::SeqCst), 1, "it never dialed again");
}
