//! What an operator does with `session-relay admin` to a relay that runs, in another process:
//! list every user's sessions and end any, end the sessions of a revoked token, a removed user
//! or a removed instance, switch only an account that exists; and the store the commands find
//! when given no `--db`, which a command that only reads never makes.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

mod process;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use process::{Served, admin, admin_as, agent, full_access_user, ok, scratch};
use session_client::{Connection, Error, Outcome, Relay};
use session_link::dial::Trust;
use session_proto::{EndReason, RefuseReason};
use session_test_kit::{System, exec, pipes};
use tokio::task::JoinHandle;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A user `name` allowed everything (policy `all`, which `full_access_user` put), and their
/// new token.
fn another_user(db: &Path, name: &str) -> String {
    ok(db, &["user", "add", name]);
    ok(db, &["policy", "attach", "all", name]);
    ok(db, &["token", "create", name]).trim().to_owned()
}

/// `command` started on `instance` through a connection of its own: its outcome, when it ends.
async fn start(relay: &Relay, instance: &str, command: &str) -> JoinHandle<Result<Outcome, Error>> {
    let connection = Connection::connect(relay, instance).await.expect("client connection");
    let command = command.to_owned();
    tokio::spawn(async move {
        let (io, _input, _out, _err) = pipes();
        connection.open(exec(&command), io).await
    })
}

/// The ids of `user`'s sessions listed by `admin session list`, once there are `count` of them
/// (a relay publishes its sessions once a second), or as they are after ten seconds.
fn listed(db: &Path, user: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids = ok(db, &["session", "list"])
            .lines()
            .filter(|line| line.split('\t').nth(1) == Some(user))
            .filter_map(|line| line.split('\t').next().map(str::to_owned))
            .collect();
        if ids.len() == count {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ids
}

/// How a session ended that the relay ended: with a Reason TERMINATED and `message`; or, had
/// its agent not accepted it yet, refused PROHIBITED with the same words.
async fn ended_because(session: JoinHandle<Result<Outcome, Error>>, message: &str) {
    let ended =
        tokio::time::timeout(Duration::from_secs(10), session).await.expect("the session ends").unwrap();
    match ended {
        Ok(outcome) => {
            assert_eq!(outcome.reason, Some((EndReason::TERMINATED, message.to_owned())), "{outcome:?}");
            assert_eq!(outcome.exit, None, "ended by the relay, not by its process");
        }
        Err(Error::OpenRefused { reason, message: said }) => {
            assert_eq!((reason, said.as_str()), (RefuseReason::PROHIBITED, message));
        }
        Err(other) => panic!("{other}"),
    }
}

/// The audit log once it holds `wanted`, or as it is after ten seconds.
fn audit_with(db: &Path, wanted: &str) -> String {
    let mut audit = String::new();
    for _ in 0..200 {
        audit = ok(db, &["audit", "--limit", "1000"]);
        if audit.contains(wanted) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    audit
}

/// The record of the session `id` ended.
fn session_record(audit: &str, id: &str) -> serde_json::Value {
    audit
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|r| r["event"] == "session" && r["session"] == id)
        .unwrap_or_else(|| panic!("no record of {id} in {audit}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_every_users_sessions_and_ends_any() {
    let dir = scratch("operator-sessions");
    let db = dir.join("relay.db");
    let ops = full_access_user(&db, &dir);
    let alice = another_user(&db, "alice");
    let code = ok(&db, &["activation", "create"]).trim().to_owned();
    let served = Served::start(&db, &["--listen", "127.0.0.1:0"]);
    let url = format!("ws://127.0.0.1:{}", served.port);
    let (ops, alice) = (Relay::new(&url, &ops), Relay::new(&url, &alice));
    let _agent = agent(&url, "web-1", &code, Trust::system(), &ops).await;

    let theirs = start(&ops, "web-1", "sleep 60").await;
    let hers = start(&alice, "web-1", "sleep 60; echo 'a\tb'").await;
    let [her_id] = listed(&db, "alice", 1).try_into().expect("alice's session is listed");
    let [their_id] = listed(&db, "ops", 1).try_into().expect("ops's session is listed");

    // The table: id, user, instance, start, relay, and what it runs, with its tab escaped.
    let table = ok(&db, &["session", "list"]);
    let relay = format!("ws://127.0.0.1:{}", served.port);
    let her_line = table.lines().find(|l| l.starts_with(&her_id)).unwrap();
    let columns: Vec<&str> = her_line.split('\t').collect();
    assert_eq!(columns.len(), 6, "{her_line}");
    assert_eq!((columns[1], columns[2], columns[4]), ("alice", "web-1", relay.as_str()), "{her_line}");
    assert!(columns[3].starts_with("started ") && columns[3].ends_with(" ago"), "{her_line}");
    assert_eq!(columns[5], r"exec: sleep 60; echo 'a\tb'");

    let json: serde_json::Value = serde_json::from_str(&ok(&db, &["session", "list", "--json"])).unwrap();
    let sessions = json["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{json}");
    let her = sessions.iter().find(|s| s["id"] == her_id.as_str()).unwrap();
    assert_eq!(
        (&her["user"], &her["instance"], &her["account"], &her["relay"]),
        (&"alice".into(), &"web-1".into(), &"default".into(), &serde_json::Value::from(relay.clone()))
    );
    let started = her["started"].as_str().unwrap();
    assert!(
        started.len() == 20 && started.as_bytes()[10] == b'T' && started.ends_with('Z'),
        "RFC 3339: {started}"
    );

    // Carol ends alice's session: alice is told who did, ops's session runs on.
    let out = admin_as("carol", &db, &["session", "terminate", &her_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with(&format!("terminated {her_id}: alice on web-1")), "{said}");
    ended_because(hers, "the session was terminated by admin:carol").await;
    assert!(!theirs.is_finished(), "another session runs on");
    let table = ok(&db, &["session", "list"]);
    assert!(!table.contains(&her_id) && table.contains(&their_id), "gone from the list at once: {table}");

    let again = admin_as("carol", &db, &["session", "terminate", &her_id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains(&format!("no session {her_id} in progress")), "{}", stderr(&again));

    let audit = audit_with(&db, "terminated by admin:carol");
    let ended = session_record(&audit, &her_id);
    assert_eq!(
        (&ended["outcome"], &ended["reason"], &ended["actor"]),
        (&"ended".into(), &"the session was terminated by admin:carol".into(), &"alice".into()),
        "{ended}"
    );
    let asked = audit
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|r| r["event"] == "admin" && r["session"] == her_id.as_str())
        .unwrap_or_else(|| panic!("the operator's command is audited: {audit}"));
    assert_eq!(asked["actor"], "admin:carol");
    assert!(asked["reason"].as_str().unwrap().starts_with("Session(Terminate"), "{asked}");

    theirs.abort();
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Revoking a token ends the sessions started with it, and only those; removing a user ends
/// theirs; removing an instance ends every session on it. Each is told why, and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_or_removing_a_user_or_an_instance_ends_its_sessions() {
    let dir = scratch("operator-revoke");
    let db = dir.join("relay.db");
    let ops = full_access_user(&db, &dir);
    let first = another_user(&db, "alice");
    let second = ok(&db, &["token", "create", "alice"]).trim().to_owned();
    let bob = another_user(&db, "bob");
    let code = ok(&db, &["activation", "create"]).trim().to_owned();
    let served = Served::start(&db, &["--listen", "127.0.0.1:0"]);
    let url = format!("ws://127.0.0.1:{}", served.port);
    let _agent = agent(&url, "web-1", &code, Trust::system(), &Relay::new(&url, &ops)).await;

    let with_first = start(&Relay::new(&url, &first), "web-1", "sleep 60").await;
    let with_second = start(&Relay::new(&url, &second), "web-1", "sleep 60").await;
    let bobs = start(&Relay::new(&url, &bob), "web-1", "sleep 60").await;
    let alices = listed(&db, "alice", 2);
    let [bob_id] = listed(&db, "bob", 1).try_into().expect("bob's session is listed");
    assert_eq!(alices.len(), 2);

    ok(&db, &["token", "revoke", &first[4..20]]);
    ended_because(with_first, "the token this session was started with was revoked").await;
    assert!(!with_second.is_finished(), "a session of another token runs on");
    assert_eq!(listed(&db, "alice", 1).len(), 1);

    ok(&db, &["user", "remove", "bob"]);
    ended_because(bobs, "the token this session was started with no longer exists: its user was removed")
        .await;
    assert!(!with_second.is_finished());

    ok(&db, &["instance", "remove", "web-1"]);
    ended_because(with_second, "instance web-1 was removed").await;
    assert!(listed(&db, "alice", 0).is_empty());

    let audit = audit_with(&db, "instance web-1 was removed");
    let reasons: Vec<serde_json::Value> =
        alices.iter().chain([&bob_id]).map(|id| session_record(&audit, id)["reason"].clone()).collect();
    for why in [
        "the token this session was started with was revoked",
        "the token this session was started with no longer exists: its user was removed",
        "instance web-1 was removed",
    ] {
        assert!(reasons.contains(&why.into()), "{why} not among {reasons:?}");
    }
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An account exists when an instance or an activation code names it: the operator's switch
/// and a client's refuse any other, the client's only once its user may switch at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_of_an_unknown_account_is_refused() {
    let dir = scratch("operator-switch");
    let db = dir.join("relay.db");
    ok(&db, &["user", "add", "alice"]);
    for args in [&["switch", "acme", "off"][..], &["switch", "acme"]] {
        let out = admin(&db, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("no account acme: no instance or activation code names it"),
            "{}",
            stderr(&out)
        );
    }
    ok(&db, &["activation", "create", "--account", "acme"]);
    ok(&db, &["switch", "acme", "off"]);
    assert_eq!(ok(&db, &["switch", "acme"]), "acme\tsessions off\n");
    let _ = std::fs::remove_dir_all(&dir);

    let system = System::start(None).await;
    let error = system.client.switch("nope", false).await.unwrap_err();
    assert!(
        matches!(&error, Error::Refused { status: 404, reason, .. }
            if reason == "no account nope: no instance or activation code names it"),
        "{error}"
    );
    let alice = system.user(
        "alice",
        r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:StartSession", "Resource": "*"}}"#,
    );
    let error = alice.switch("nope", false).await.unwrap_err();
    assert!(matches!(&error, Error::Refused { status: 403, .. }), "not told whether it exists: {error}");
    system.activation("nope");
    system.client.switch("nope", false).await.unwrap();
    assert!(!system.store.sessions_enabled("nope").unwrap());
}

/// A policy naming an action that is not one is refused, naming it, before it is stored.
#[test]
fn a_policy_with_an_unknown_action_is_refused_naming_it() {
    let dir = scratch("operator-policy");
    let db = dir.join("relay.db");
    let typo = dir.join("typo.json");
    std::fs::write(
        &typo,
        r#"{"Version": "1", "Statement": {"Effect": "Allow",
            "Action": ["session:StartSession", "session:StartSesion"], "Resource": "*"}}"#,
    )
    .unwrap();
    let out = admin(&db, &["policy", "put", "web", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "policy refused: Statement[0].Action[1]: session:StartSesion is not an action: the actions are \
             session:StartSession, session:StartPortForward, session:ListFiles, session:ReadFile, \
             session:WriteFile, session:DescribeInstanceStatus, session:TerminateSession, \
             session:ModifySettings"
        ),
        "{}",
        stderr(&out)
    );
    let none = dir.join("none.json");
    std::fs::write(
        &none,
        r#"{"Version": "1", "Statement": {"Effect": "Deny", "Action": "session:Stop*", "Resource": "*"}}"#,
    )
    .unwrap();
    let out = admin(&db, &["policy", "put", "web", none.to_str().unwrap()]);
    assert!(stderr(&out).contains("session:Stop* matches no action: "), "{}", stderr(&out));
    assert_eq!(ok(&db, &["policy", "list"]), "", "nothing stored");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without `--db` the store is at one absolute path whatever the working directory: for root
/// the system's, for anyone else under their home. A command that only reads (or can only fail
/// in an empty store) never makes one, and says where it looked.
#[test]
fn the_store_is_found_at_one_absolute_path_and_reading_never_makes_one() {
    let dir = scratch("operator-default-path");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let root = rustix::process::geteuid().is_root();
    let expected = if root {
        Path::new("/var/lib/session-relay/relay.db").to_owned()
    } else {
        home.join(".local/state/session-relay/relay.db")
    };
    let relay = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_session-relay"))
            .current_dir(&dir)
            .env("HOME", &home)
            .env_remove("XDG_STATE_HOME")
            .env_remove("SESSION_RELAY_DB")
            .args(args)
            .output()
            .expect("the relay binary runs")
    };

    let help = String::from_utf8(relay(&["--help"]).stdout).unwrap();
    assert!(help.contains(&format!("[default: {}]", expected.display())), "{help}");
    assert!(help.contains("$XDG_STATE_HOME/session-relay/relay.db") && help.contains("for root"), "{help}");

    let existed = expected.exists();
    let out = relay(&["admin", "user", "list"]);
    if !existed {
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(&format!("{}: no store here", expected.display())), "{}", stderr(&out));
        assert!(!expected.exists(), "a command that reads made no store");
    }
    if !root {
        // Made by the first command that adds something, in a directory of its own.
        relay(&["admin", "user", "add", "alice"]);
        assert!(expected.exists());
        assert_eq!(String::from_utf8(relay(&["admin", "user", "list"]).stdout).unwrap(), "alice\t\n");
    }
    assert!(!dir.join("session-relay.db").exists(), "nothing in the working directory");

    // Every command that would only read, or only fail, in an empty store.
    let missing = dir.join("typo.db");
    for args in [
        &["user", "list"][..],
        &["token", "list"],
        &["policy", "list"],
        &["activation", "list"],
        &["instance", "list"],
        &["session", "list"],
        &["session", "terminate", "alice-0123456789abcdef"],
        &["switch", "default"],
        &["switch", "default", "off"],
        &["token", "revoke", "0123456789abcdef"],
        &["user", "remove", "alice"],
        &["audit"],
    ] {
        let out = admin(&missing, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(&format!("{}: no store here", missing.display())),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!missing.exists(), "{args:?} made a store");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
