//! Three relay processes on one PostgreSQL (spec C.2): what one relay or `admin` changes holds
//! on all of them, each knows where an agent is, an agent fails over when its relay dies, and
//! the audit log has each session once.

#![allow(clippy::std_instead_of_core, reason = "processes and files")]

mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use process::{Served, ok, scratch};
use session_client::{Error, Relay};
use session_test_kit::{Ran, agent_config, run};

/// Until `done` holds, checked every 50 ms for at most a minute (a bound on a hang, not a
/// timing: the time it took is printed).
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut done: F) -> Duration {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: not within a minute");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

async fn status(relay: &Relay, instance: &str) -> (String, Option<String>) {
    let Ok(listing) = relay.list().await else { return (String::new(), None) };
    let Some(found) =
        listing["instances"].as_array().and_then(|all| all.iter().find(|i| i["name"] == instance))
    else {
        return (String::new(), None);
    };
    (found["status"].as_str().unwrap_or_default().to_owned(), found["relay"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread")]
async fn three_relays_on_one_postgresql_share_users_agents_and_the_audit_log() {
    let url = session_test_kit::postgres::database();
    let db = Path::new(&url);
    let dir = scratch("relays");
    let token = process::full_access_user(db, &dir);
    let code = ok(db, &["activation", "create", "--account", "acme", "--uses", "1"]).trim().to_owned();
    let mut relays: Vec<Served> = (0..3).map(|_| Served::start(db, &["--listen", "127.0.0.1:0"])).collect();
    let urls: Vec<String> = relays.iter().map(|r| format!("ws://127.0.0.1:{}", r.port)).collect();
    let ops: Vec<Relay> = urls.iter().map(|u| Relay::new(u, &token)).collect();

    // The agent knows relays 1 and 2, and takes 1 while it is there.
    let mut config = agent_config(&urls[0], "web-1", &code);
    config.relays = vec![urls[0].clone(), urls[1].clone()];
    let agent = tokio::spawn(session_agent::run(config));
    until("web-1 online at relay 1", async || status(&ops[0], "web-1").await.0 == "online").await;
    assert_eq!(run(&ops[0], "web-1", "echo one").await.unwrap(), Ran { stdout: "one\n".into(), code: 0 });

    // Relay 3 knows where it is, once relay 1 wrote its location (each second), and sends a
    // client there: its session runs at relay 1.
    let relay_1 = urls[0].clone();
    until("relay 3 sees web-1 at relay 1", async || {
        status(&ops[2], "web-1").await == ("elsewhere".to_owned(), Some(relay_1.clone()))
    })
    .await;
    assert_eq!(run(&ops[2], "web-1", "echo three").await.unwrap(), Ran { stdout: "three\n".into(), code: 0 });
    // A fleet command's channels name their instances: refused there, saying where it is.
    let fleet = tokio::process::Command::new(session_test_kit::binaries::client_binary())
        .args(["run", "-t", "web-1", "--", "true"])
        .env("SESSION_RELAY", &urls[2])
        .env("SESSION_TOKEN", &token)
        .env_remove("SESSION_PROFILE")
        .env("SESSION_CONFIG", dir.join("no-config.toml"))
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&fleet.stdout).into_owned() + &String::from_utf8_lossy(&fleet.stderr);
    assert_eq!(fleet.status.code(), Some(3), "{said}");
    assert!(
        said.contains(&format!("instance web-1 is connected to the relay at {relay_1}, not this one")),
        "{said}"
    );

    // Relay 1 dies; the agent is online through relay 2, and a new session works there.
    relays[0].kill();
    let took = until("web-1 online at relay 2", async || {
        run(&ops[1], "web-1", "echo two").await.is_ok_and(|ran| ran.stdout == "two\n")
    })
    .await;
    eprintln!("the agent was online through relay 2 {took:?} after relay 1 was killed");
    // Relay 3 sees it there once relay 2 wrote its location.
    let relay_2 = urls[1].clone();
    until("relay 3 sees web-1 at relay 2", async || {
        status(&ops[2], "web-1").await == ("elsewhere".to_owned(), Some(relay_2.clone()))
    })
    .await;

    // A user added on the store works on every relay at once; a token revoked through relay
    // 2's store refuses the next connection to relay 3.
    let listed = ops[2].list().await;
    assert!(listed.is_ok(), "{listed:?}");
    let id = &token[4..20];
    ok(db, &["token", "revoke", id]);
    let refused = ops[2].list().await.unwrap_err();
    assert!(matches!(&refused, Error::Refused { status: 401, .. }), "{refused}");
    let refused = run(&ops[1], "web-1", "true").await.unwrap_err();
    assert!(matches!(&refused, Error::Refused { status: 401, .. }), "{refused}");

    // Each session is in the shared audit log once: relay 1's and relay 2's.
    let mut audit = String::new();
    until("both sessions audited", async || {
        audit = ok(db, &["audit", "--limit", "1000"]);
        audit.contains("echo one") && audit.contains("echo two")
    })
    .await;
    for command in ["exec: echo one", "exec: echo two"] {
        let records = audit
            .lines()
            .filter(|line| {
                line.contains(&format!(r#""kind":"{command}""#)) && line.contains(r#""event":"session""#)
            })
            .count();
        assert_eq!(records, 1, "{command}: {audit}");
    }
    agent.abort();
    drop(relays);
    let _ = std::fs::remove_dir_all(&dir);
}
