//! `session-relay admin`'s listings for scripts: `-o json` (or `--json`) on every listing and on
//! `switch <account>` prints one JSON document that says what the table says, times in RFC 3339,
//! and no secret; through the binary, against a store a relay serves from.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

mod process;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use process::{Served, admin, agent, ok, scratch};
use serde_json::{Value, json};
use session_client::{Connection, Relay};
use session_link::dial::Trust;
use session_test_kit::{Ran, exec, pipes, run};

/// Every listing, and `switch`'s show, with its arguments.
const LISTINGS: [&[&str]; 8] = [
    &["user", "list"],
    &["token", "list"],
    &["policy", "list"],
    &["activation", "list"],
    &["instance", "list"],
    &["session", "list"],
    &["switch", "acme"],
    &["audit", "--limit", "1000"],
];

/// `admin <args> -o json`, parsed; `--json` must print the same document.
fn json_of(db: &Path, args: &[&str]) -> Value {
    let text = ok(db, &[args, &["-o", "json"]].concat());
    assert_eq!(text.lines().count(), 1, "one document, on one line: {text}");
    let document: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"));
    // The audit grows while the relay runs, and its sessions appear at its next publishing:
    // only the steady listings are compared here (sessions once one is listed, below).
    if args[0] != "audit" && args[0] != "session" {
        let again: Value = serde_json::from_str(&ok(db, &[args, &["--json"]].concat())).unwrap();
        assert_eq!(again, document, "{args:?}: --json is -o json");
    }
    document
}

/// The array a listing's document holds under `name`.
fn items(document: &Value, name: &str) -> Vec<Value> {
    document[name].as_array().unwrap_or_else(|| panic!("no {name} array in {document}")).clone()
}

/// The keys of a JSON object, sorted.
fn keys(item: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Unix seconds of an RFC 3339 time in UTC, `2026-01-01T00:00:00Z` or with milliseconds
/// (`...00.250Z`), as the admin commands write them; panics on any other form.
fn unix_of(time: &Value) -> f64 {
    let text = time.as_str().unwrap_or_else(|| panic!("{time} is no RFC 3339 string"));
    let bytes = text.as_bytes();
    let form_ok = text.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && text.ends_with('Z');
    assert!(form_ok, "{text} is not RFC 3339 in UTC");
    let number = |range: core::ops::Range<usize>| -> i64 {
        text[range].parse().unwrap_or_else(|_| panic!("{text} is not RFC 3339 in UTC"))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    let fraction = match &text[19..text.len() - 1] {
        "" => 0.0,
        millis => {
            assert!(millis.len() == 4 && millis.starts_with('.'), "{text}: milliseconds, if any");
            number(20..23) as f64 / 1000.0
        }
    };
    // Days from a civil date, after Howard Hinnant's `days_from_civil`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    (days * 86_400 + hour * 3600 + minute * 60 + second) as f64 + fraction
}

#[test]
fn the_test_reads_rfc_3339_as_the_relay_writes_it() {
    assert_eq!(unix_of(&json!("1970-01-01T00:00:00Z")), 0.0);
    assert_eq!(unix_of(&json!("2000-02-29T00:00:00Z")), 951_782_400.0);
    assert_eq!(unix_of(&json!("2026-01-01T00:00:00.250Z")), 1_767_225_600.25);
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_prints_one_json_document_with_rfc_3339_times_and_no_secret() {
    // Times are bracketed by the clock read before anything is made and after.
    let before = now();
    let dir = scratch("admin-json");
    let db = dir.join("relay.db");
    ok(&db, &["user", "add", "alice"]);
    ok(&db, &["user", "add", "bob"]);
    let policy = json!({"Version": "1", "Statement": {"Effect": "Allow",
        "Action": ["session:StartSession", "session:DescribeInstanceStatus"], "Resource": "*"}});
    let file = dir.join("web.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    ok(&db, &["policy", "put", "web", file.to_str().unwrap()]);
    ok(&db, &["policy", "attach", "web", "alice"]);

    let token = ok(&db, &["token", "create", "alice", "--expires-in", "1h"]).trim().to_owned();
    let revoked = ok(&db, &["token", "create", "alice", "--expires-in", "2h"]).trim().to_owned();
    let code = ok(&db, &["activation", "create", "--account", "acme", "--label", "web-1"]).trim().to_owned();
    let spare = ok(&db, &["activation", "create", "--account", "acme", "--uses", "3", "--expires-in", "1d"])
        .trim()
        .to_owned();
    let after = now();
    ok(&db, &["token", "revoke", &revoked[4..20]]);
    let secrets = [&token[21..], &revoked[21..], &code[21..], &spare[21..]];

    let served = Served::start(&db, &["--listen", "127.0.0.1:0"]);
    let url = format!("ws://127.0.0.1:{}", served.port);
    let alice = Relay::new(&url, &token);
    let agent = agent(&url, "i-0017", &code, Trust::system(), &alice).await;
    assert_eq!(run(&alice, "i-0017", "echo hi").await.unwrap(), Ran { stdout: "hi\n".into(), code: 0 });
    // A session in progress, for `session list`.
    let connection = Connection::connect(&alice, "i-0017").await.expect("client connection");
    let session = tokio::spawn(async move {
        let (io, _input, _out, _err) = pipes();
        connection.open(exec("sleep 60"), io).await
    });

    let users = items(&json_of(&db, &["user", "list"]), "users");
    assert_eq!(
        users,
        [json!({"name": "alice", "policies": ["web"]}), json!({"name": "bob", "policies": []})]
    );

    let tokens = items(&json_of(&db, &["token", "list"]), "tokens");
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    for (t, secret, hours, state) in [(&tokens[0], &token, 1, "active"), (&tokens[1], &revoked, 2, "revoked")]
    {
        assert_eq!(keys(t), ["expires", "id", "revoked", "state", "user"], "{t}");
        assert_eq!(
            (&t["id"], &t["user"], &t["state"]),
            (&json!(secret[4..20]), &json!("alice"), &json!(state))
        );
        let expires = unix_of(&t["expires"]);
        assert!((before + hours * 3600) as f64 <= expires && expires <= (after + hours * 3600) as f64, "{t}");
    }
    assert_eq!(tokens[0]["revoked"], Value::Null);
    let revoked_at = unix_of(&tokens[1]["revoked"]);
    assert!(before as f64 <= revoked_at && revoked_at <= now() as f64, "{}", tokens[1]);

    let policies = items(&json_of(&db, &["policy", "list"]), "policies");
    assert_eq!(policies, [json!({"name": "web", "document": policy})]);

    let activations = items(&json_of(&db, &["activation", "list"]), "activations");
    let table = ok(&db, &["activation", "list"]);
    assert_eq!(activations.len(), table.lines().count(), "{table}");
    for a in &activations {
        assert_eq!(keys(a), ["account", "expires", "id", "uses_left"], "{a}");
        let id = a["id"].as_str().unwrap();
        let line = table.lines().find(|l| l.starts_with(&format!("{id}\t"))).expect("the table lists it");
        assert!(line.contains(&format!("\t{} use(s) left", a["uses_left"])), "{line} against {a}");
    }
    let spare_listed = activations.iter().find(|a| a["id"] == spare[4..20]).expect("the spare code");
    assert_eq!((&spare_listed["account"], &spare_listed["uses_left"]), (&json!("acme"), &json!(3)));
    let expires = unix_of(&spare_listed["expires"]);
    assert!((before + 86_400) as f64 <= expires && expires <= (after + 86_400) as f64, "{spare_listed}");

    let instances = items(&json_of(&db, &["instance", "list"]), "instances");
    let [instance] = instances.as_slice() else { panic!("{instances:?}") };
    assert_eq!(keys(instance), ["account", "agent_version", "id", "label", "labels", "last_seen"]);
    assert_eq!(instance["labels"], json!({}), "its agent gave none");
    assert_eq!(
        (&instance["id"], &instance["account"], &instance["label"]),
        (&json!("i-0017"), &json!("acme"), &json!("web-1"))
    );
    assert!(instance["agent_version"].is_string(), "{instance}");
    let seen = unix_of(&instance["last_seen"]);
    assert!(before as f64 <= seen && seen <= now() as f64, "{instance}");

    // The relay publishes its sessions once a second.
    let mut sessions = Vec::new();
    for _ in 0..200 {
        sessions = items(&json_of(&db, &["session", "list"]), "sessions");
        if !sessions.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let [listed] = sessions.as_slice() else { panic!("{sessions:?}") };
    let again: Value = serde_json::from_str(&ok(&db, &["session", "list", "--json"])).unwrap();
    assert_eq!(again, json!({ "sessions": sessions }), "--json is -o json");
    assert_eq!(keys(listed), ["account", "id", "instance", "kind", "relay", "started", "user"]);
    assert_eq!((&listed["user"], &listed["kind"]), (&json!("alice"), &json!("exec: sleep 60")));
    let started = unix_of(&listed["started"]);
    assert!(before as f64 <= started && started <= now() as f64, "{listed}");

    assert_eq!(json_of(&db, &["switch", "acme"]), json!({"account": "acme", "sessions": "on"}));
    ok(&db, &["switch", "acme", "off"]);
    assert_eq!(json_of(&db, &["switch", "acme"]), json!({"account": "acme", "sessions": "off"}));
    ok(&db, &["switch", "acme", "on"]);

    // The audit: the session that ended, with its times, and the admin changes. The relay's
    // audit writer is a thread of its own: wait for the session's record.
    let mut records = Vec::new();
    for _ in 0..200 {
        records = items(&json_of(&db, &["audit", "--limit", "1000"]), "records");
        if records.iter().any(|r| r["kind"] == "exec: echo hi" && r["event"] == "session") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for record in &records {
        let at = unix_of(&record["at"]);
        assert!(before as f64 <= at && at <= (now() + 1) as f64, "{record}");
    }
    let ran =
        records.iter().find(|r| r["kind"] == "exec: echo hi" && r["event"] == "session").expect("its record");
    let (start, end) = (unix_of(&ran["start"]), unix_of(&ran["end"]));
    assert!(start <= end && end <= unix_of(&ran["at"]) + 0.001, "{ran}");
    assert_eq!((&ran["actor"], &ran["instance"]), (&json!("alice"), &json!("i-0017")));
    let switched = records.iter().find(|r| {
        r["event"] == "admin" && r["reason"] == r#"Switch { account: "acme", state: Some("off") }"#
    });
    assert!(switched.is_some(), "the switch is audited as before, without output flags: {records:?}");

    // No listing holds a secret, nor anything named after one.
    for args in LISTINGS {
        let text = ok(&db, &[args, &["-o", "json"]].concat());
        for secret in secrets {
            assert!(!text.contains(secret), "{args:?} shows a secret: {text}");
        }
        for word in ["secret", "hash", "\"token\""] {
            assert!(!text.contains(word), "{args:?} has {word}: {text}");
        }
    }

    session.abort();
    agent.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_output_flags_are_one_choice_and_a_change_takes_none() {
    let dir = scratch("admin-json-flags");
    let db = dir.join("relay.db");
    ok(&db, &["user", "add", "alice"]);
    ok(&db, &["activation", "create", "--account", "acme"]);

    // Nothing yet: still one document, its array empty.
    for (args, name) in [
        (&["token", "list"][..], "tokens"),
        (&["policy", "list"], "policies"),
        (&["instance", "list"], "instances"),
        (&["session", "list"], "sessions"),
    ] {
        assert_eq!(json_of(&db, args), json!({ name: [] }), "{args:?}");
    }
    // The table stays the default, and `-o table` names it.
    assert_eq!(ok(&db, &["user", "list"]), "alice\t\n");
    assert_eq!(ok(&db, &["user", "list", "-o", "table"]), "alice\t\n");
    assert_eq!(
        ok(&db, &["user", "list", "--output", "json"]),
        "{\"users\":[{\"name\":\"alice\",\"policies\":[]}]}\n"
    );

    for args in [
        &["user", "list", "--json", "-o", "table"][..],
        &["token", "list", "-o", "yaml"],
        &["switch", "acme", "off", "-o", "json"],
        &["switch", "acme", "on", "--json"],
        &["user", "add", "bob", "-o", "json"],
    ] {
        let out = admin(&db, args);
        assert_eq!(out.status.code(), Some(2), "{args:?} is refused as a usage error");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(ok(&db, &["switch", "acme"]), "acme\tsessions on\n", "a refused change changed nothing");
    assert_eq!(ok(&db, &["user", "list", "-o", "table"]), "alice\t\n");
    let _ = std::fs::remove_dir_all(&dir);
}
