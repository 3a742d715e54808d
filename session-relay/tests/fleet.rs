//! Fleet connections (`/v1/fleet`, spec 11.4) and instance labels (11.1, 11.5): one user's
//! connection opening channels on many instances with OpenOn, each checked as an Open on its
//! instance is, each audited with the fleet command's id; and the labels agents give their
//! instances, listed and tested by policies. A real relay and real agents on loopback, the fleet
//! connection driven by hand (session-proto's state machine over a WebSocket), and the relay's
//! admin commands run as the binary against the same store.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use process::{ok, scratch};
use serde_json::{Value, json};
use session_codec::websocket::SUBPROTOCOL;
use session_relay::Limits;
use session_relay::store::Store;
use session_test_kit::raw::Raw;
use session_test_kit::run::exec;
use session_test_kit::{System, run};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What a plain Open on a fleet connection is refused with.
const OPEN_ON_FLEET: &str = "a fleet connection opens channels with OpenOn, naming their instance";

/// Labels from `key=value` pairs.
fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A relay over a store in a file of `dir` (so that the admin binary reads it too), with agents
/// `web-1` (env=prod, role=web), `web-2` (env=dev) and `db-1` (no labels), all in account `test`.
async fn fleet_system(dir: &Path) -> System {
    let store = Store::open(&dir.join("relay.db")).expect("store");
    let mut system = System::with_store(store, None).await;
    system.agent_with("web-1", |c| c.labels = labels(&[("env", "prod"), ("role", "web")])).await;
    system.agent_with("web-2", |c| c.labels = labels(&[("env", "dev")])).await;
    system.agent("db-1").await;
    system
}

/// Steps `raw` until every one of `channels` has ended: refused, or exited and closed by both
/// sides, which is when the relay writes the session's record (a Close that arrived after the
/// last step would wait unanswered). Each channel's Exit or Refused event, by channel.
async fn ends(raw: &mut Raw, channels: &[u16]) -> BTreeMap<u16, String> {
    let mut ended = BTreeMap::new();
    let mut closed = BTreeSet::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while closed.len() < channels.len() {
            for event in raw.step().await {
                for &channel in channels {
                    let exited = event.starts_with(&format!("Exit {{ channel: {channel},"));
                    let refused = event.starts_with(&format!("Refused {{ channel: {channel},"));
                    if exited || refused {
                        ended.insert(channel, event.clone());
                    }
                    if refused || event == format!("Closed {{ channel: {channel} }}") {
                        closed.insert(channel);
                    }
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("channels {channels:?} never all ended; ended {ended:?}, closed {closed:?}"));
    ended
}

/// The audit records as JSON, once `complete` says they hold what a test waits for (the
/// store's writer is a thread of its own, and a session's record is written once its channel
/// closed at the relay), or as they are after twenty seconds: a bound on a hang, not a measure.
async fn records(system: &System, complete: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let parse = |lines: Vec<String>| -> Vec<Value> {
        lines.iter().map(|line| serde_json::from_str(line).expect("a record")).collect()
    };
    let mut records = Vec::new();
    for _ in 0..2000 {
        records = parse(system.store.audit(10_000).expect("audit"));
        if complete(&records) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    records
}

/// The status and body of a WebSocket handshake to `path` that the relay refuses, with
/// `headers` added to the subprotocol's.
async fn refused(url: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = format!("{url}{path}").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            (response.status().as_u16(), body.into_owned())
        }
        other => panic!("{path} was not refused: {:?}", other.map(|(_, response)| response.status())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fleet_connection_opens_channels_on_several_instances_each_audited_with_its_id() {
    let dir = scratch("fleet-two");
    let system = fleet_system(&dir).await;
    let (mut raw, fleet) = Raw::connect_fleet(&system.url, system.token(), false).await;
    // Shaped as a session id: its user, a dash, 16 lowercase hex digits.
    let suffix = fleet.strip_prefix("tester-").unwrap_or_else(|| panic!("{fleet}"));
    assert!(suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

    let one = raw.conn.open_on("web-1", &exec("echo from-web-1").as_open_kind()).unwrap();
    let two = raw.conn.open_on("web-2", &exec("echo from-web-2").as_open_kind()).unwrap();
    raw.flush().await;
    let ended = ends(&mut raw, &[one, two]).await;
    assert!(ended.values().all(|e| e.contains("Code(0)")), "{ended:?}");
    let output = String::from_utf8_lossy(&raw.output).into_owned();
    assert!(output.contains("from-web-1\n") && output.contains("from-web-2\n"), "{output:?}");

    // An instance no one registered: refused before anything else is asked.
    let unknown = raw.conn.open_on("nowhere", &exec("true").as_open_kind()).unwrap();
    // A plain Open names no instance.
    let plain = raw.conn.open(&exec("true").as_open_kind()).unwrap();
    raw.flush().await;
    let ended = ends(&mut raw, &[unknown, plain]).await;
    assert!(
        ended[&unknown].contains(r#"reason: UNAVAILABLE, message: "unknown instance nowhere""#),
        "{ended:?}"
    );
    assert!(ended[&plain].contains(&format!("reason: PROHIBITED, message: {OPEN_ON_FLEET:?}")), "{ended:?}");

    // Every record of the command carries its id: the sessions, on their own instances, and the
    // refusals.
    let of_fleet = |records: &[Value]| -> Vec<Value> {
        records.iter().filter(|r| r["fleet"] == json!(fleet)).cloned().collect()
    };
    let all = records(&system, |records| {
        let mine = of_fleet(records);
        let count = |event: &str| mine.iter().filter(|r| r["event"] == event).count();
        count("session") == 2 && count("refused") == 2
    })
    .await;
    let mine = of_fleet(&all);
    let sessions: BTreeSet<(String, String)> = mine
        .iter()
        .filter(|r| r["event"] == "session")
        .map(|r| (r["instance"].as_str().unwrap().to_owned(), r["kind"].as_str().unwrap().to_owned()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        [("web-1", "exec: echo from-web-1"), ("web-2", "exec: echo from-web-2")]
            .iter()
            .map(|(i, k)| ((*i).to_owned(), (*k).to_owned()))
            .collect();
    assert_eq!(sessions, expected, "{mine:?}");
    let reasons: BTreeSet<&str> =
        mine.iter().filter(|r| r["event"] == "refused").filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, BTreeSet::from(["unknown instance nowhere", OPEN_ON_FLEET]), "{mine:?}");
    // Sessions of other connections carry none.
    run(&system.client, "web-1", "echo alone").await.unwrap();
    let all = records(&system, |records| records.iter().any(|r| r["kind"] == "exec: echo alone")).await;
    let alone = all.iter().find(|r| r["kind"] == "exec: echo alone" && r["event"] == "session").unwrap();
    assert_eq!(alone["fleet"], Value::Null, "{alone}");

    // `admin audit --fleet` finds the command's records, and those alone.
    let db = dir.join("relay.db");
    let listed = ok(&db, &["audit", "--fleet", &fleet, "--limit", "100"]);
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert!(listed.lines().all(|line| line.contains(&format!(r#""fleet":"{fleet}""#))), "{listed}");
    let document: Value =
        serde_json::from_str(&ok(&db, &["audit", "--fleet", &fleet, "-o", "json"])).unwrap();
    assert_eq!(document["records"].as_array().map(Vec::len), Some(4), "{document}");
    assert_eq!(ok(&db, &["audit", "--fleet", "tester-0000000000000000"]), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_of_a_fleet_is_decided_by_the_policies_on_its_own_instance() {
    let dir = scratch("fleet-policy");
    let system = fleet_system(&dir).await;

    // Bob may start sessions on web-1 alone: his fleet connection is admitted on his token, and
    // each channel asks the gate.
    let bob = system.user(
        "bob",
        r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:StartSession",
            "Resource": "*:instance/web-1"}}"#,
    );
    let (mut raw, _) = Raw::connect_fleet(&system.url, &bob.token, false).await;
    let allowed = raw.conn.open_on("web-1", &exec("true").as_open_kind()).unwrap();
    let denied = raw.conn.open_on("web-2", &exec("true").as_open_kind()).unwrap();
    raw.flush().await;
    let ended = ends(&mut raw, &[allowed, denied]).await;
    assert!(ended[&allowed].contains("Code(0)"), "{ended:?}");
    let message =
        "bob may not session:StartSession on srn:session:test:test:instance/web-2: no policy allows it";
    assert!(ended[&denied].contains(&format!("reason: PROHIBITED, message: {message:?}")), "{ended:?}");

    // Carol may reach the instances labelled env=prod, wherever they are.
    let carol = system.user(
        "carol",
        r#"{"Version": "1", "Statement": {"Effect": "Allow",
            "Action": ["session:StartSession", "session:DescribeInstanceStatus"], "Resource": "*:instance/*",
            "Condition": {"StringEquals": {"session:InstanceLabel/env": "prod"}}}}"#,
    );
    let (mut raw, _) = Raw::connect_fleet(&system.url, &carol.token, false).await;
    let channels: Vec<u16> = ["web-1", "web-2", "db-1"]
        .iter()
        .map(|instance| raw.conn.open_on(instance, &exec("true").as_open_kind()).unwrap())
        .collect();
    raw.flush().await;
    let ended = ends(&mut raw, &channels).await;
    assert!(ended[&channels[0]].contains("Code(0)"), "{ended:?}");
    for (channel, instance) in [(channels[1], "web-2"), (channels[2], "db-1")] {
        let message = format!(
            "carol may not session:StartSession on srn:session:test:test:instance/{instance}: no policy allows it \
             (condition StringEquals session:InstanceLabel/env prod does not hold)"
        );
        assert!(ended[&channel].contains(&format!("reason: PROHIBITED, message: {message:?}")), "{ended:?}");
    }
    // So does every other request on an instance: the listing, and a client connection's
    // admission.
    let listed = carol.list().await.unwrap();
    let names: Vec<&str> =
        listed["instances"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["web-1"], "{listed}");
    assert_eq!(run(&carol, "web-1", "echo ok").await.unwrap().stdout, "ok\n");
    let (status, reason) =
        refused(&system.url, "/v1/client/web-2", &[("authorization", &format!("Bearer {}", carol.token))])
            .await;
    assert_eq!(status, 403, "{reason}");
    assert!(
        reason.contains("(condition StringEquals session:InstanceLabel/env prod does not hold)"),
        "{reason}"
    );

    // Dave may do anything but on env=dev: a label narrows a grant.
    let dave = system.user(
        "dave",
        r#"{"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "session:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "session:*", "Resource": "*:instance/*",
             "Condition": {"StringLike": {"session:InstanceLabel/env": "dev*"}}}]}"#,
    );
    let (mut raw, fleet) = Raw::connect_fleet(&system.url, &dave.token, false).await;
    let channels: Vec<u16> = ["web-1", "web-2", "db-1"]
        .iter()
        .map(|instance| raw.conn.open_on(instance, &exec("true").as_open_kind()).unwrap())
        .collect();
    raw.flush().await;
    let ended = ends(&mut raw, &channels).await;
    assert!(ended[&channels[0]].contains("Code(0)") && ended[&channels[2]].contains("Code(0)"), "{ended:?}");
    let message = "dave may not session:StartSession on srn:session:test:test:instance/web-2: a policy denies it \
                   (condition StringLike session:InstanceLabel/env dev*)";
    assert!(ended[&channels[1]].contains(&format!("reason: PROHIBITED, message: {message:?}")), "{ended:?}");
    // The refusal is audited with the fleet's id and the instance.
    let all = records(&system, |records| records.iter().any(|r| r["reason"] == message)).await;
    let record = all.iter().find(|r| r["reason"] == message).expect("the refusal's record");
    assert_eq!((&record["fleet"], &record["instance"]), (&json!(fleet), &json!("web-2")), "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_listed_with_the_relays_own_and_a_bad_header_is_refused() {
    let dir = scratch("fleet-labels");
    let system = fleet_system(&dir).await;
    let listed = system.client.list().await.unwrap();
    let by_name = |name: &str| -> Value {
        listed["instances"].as_array().unwrap().iter().find(|i| i["name"] == name).unwrap()["labels"].clone()
    };
    assert_eq!(
        by_name("web-1"),
        json!({"region": "test", "account": "test", "name": "web-1", "env": "prod", "role": "web"})
    );
    assert_eq!(by_name("db-1"), json!({"region": "test", "account": "test", "name": "db-1"}));

    // The admin listing shows them, as text last (so the columns before keep their places) and
    // in JSON as an object.
    let db = dir.join("relay.db");
    let table = ok(&db, &["instance", "list"]);
    let line = table.lines().find(|l| l.starts_with("web-1\t")).unwrap_or_else(|| panic!("{table}"));
    assert!(line.ends_with("\tenv=prod,role=web"), "{line}");
    assert_eq!(line.split('\t').count(), 6, "{line}");
    let db_1 = table.lines().find(|l| l.starts_with("db-1\t")).unwrap();
    assert!(db_1.ends_with('\t'), "no labels, an empty column: {db_1:?}");
    let document: Value = serde_json::from_str(&ok(&db, &["instance", "list", "-o", "json"])).unwrap();
    let web_2 = document["instances"].as_array().unwrap().iter().find(|i| i["id"] == "web-2").unwrap();
    assert_eq!(web_2["labels"], json!({"env": "dev"}));

    // A bad header is refused 400 naming it, before the agent's key is looked at (none is sent).
    for (header, why) in [
        ("region=eu", "region is the relay's own label"),
        ("env=prod,env=dev", "env is given twice"),
        ("env=prod role=web", "a key and a value are each 1 to 64 of"),
        ("role", "\"role\" is not key=value"),
    ] {
        let (status, reason) = refused(&system.url, "/v1/agent/web-3", &[("x-session-labels", header)]).await;
        assert_eq!(status, 400, "{header}: {reason}");
        assert!(reason.starts_with("x-session-labels: ") && reason.contains(why), "{header}: {reason}");
    }
    let sixteen: Vec<String> = (0..17).map(|i| format!("k{i}=v")).collect();
    let (status, reason) =
        refused(&system.url, "/v1/agent/web-3", &[("x-session-labels", &sixteen.join(","))]).await;
    assert_eq!((status, reason.as_str()), (400, "x-session-labels: more than 16 labels"));
    // A good one goes on to the key's checks.
    let (status, reason) = refused(&system.url, "/v1/agent/web-3", &[("x-session-labels", "env=prod")]).await;
    assert_eq!((status, reason.as_str()), (401, "no agent key was presented"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_session_survives_a_lost_connection_and_is_its_users_on_the_fleet_path_alone() {
    let dir = scratch("fleet-resume");
    let system = fleet_system(&dir).await;
    let (mut raw, fleet) = Raw::connect_fleet(&system.url, system.token(), true).await;
    const LINES: usize = 20_000;
    let one =
        raw.conn.open_on("web-1", &exec(&format!("seq 1 {LINES} | sed 's/^/a-/'")).as_open_kind()).unwrap();
    let two =
        raw.conn.open_on("web-2", &exec(&format!("seq 1 {LINES} | sed 's/^/b-/'")).as_open_kind()).unwrap();
    raw.flush().await;
    raw.until(|e| e.starts_with("Data"), 10).await;

    // The connection drops with output in flight on both channels: each instance's output
    // comes again, once.
    raw.ws.close(None).await.unwrap();
    let (events, other) = raw.reattach_fleet(&system.url, system.token()).await;
    assert!(events.iter().all(|e| !e.contains("Error")), "{events:?}");
    raw.until(|e| e.starts_with("Resumed"), 10).await;
    let ended = ends(&mut raw, &[one, two]).await;
    assert!(ended.values().all(|e| e.contains("Code(0)")), "{ended:?}");
    for (channel, prefix) in [(one, "a-"), (two, "b-")] {
        let text = String::from_utf8_lossy(&raw.outputs[&channel]).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let expected: Vec<String> = (1..=LINES).map(|i| format!("{prefix}{i}")).collect();
        assert!(lines == expected, "{prefix}: {} lines, wanted {LINES}", lines.len());
    }
    // The records carry the id the session began with, not the one the re-attach was told.
    assert_ne!(other, fleet);
    let all = records(&system, |records| {
        records.iter().filter(|r| r["event"] == "session" && r["fleet"] == json!(fleet)).count() == 2
    })
    .await;
    assert!(all.iter().all(|r| r["fleet"] != json!(other)), "{all:?}");

    // A fleet session's token does not re-attach on a client's path.
    raw.ws.close(None).await.unwrap();
    raw.reattach(&system.url, system.token(), "web-1").await;
    let refused = raw.until(|e| e.contains("RESUME_REJECTED") || e.contains("Resumed"), 10).await;
    assert!(refused.contains("RESUME_REJECTED"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_a_bounded_number_of_fleet_connections() {
    let limits = Limits { connections_per_user: 2, ..Limits::default() };
    let system = System::configured(Store::in_memory().unwrap(), None, |config| config.limits = limits).await;
    let (_first, _) = Raw::connect_fleet(&system.url, system.token(), false).await;
    let (_second, _) = Raw::connect_fleet(&system.url, system.token(), false).await;
    let bearer = format!("Bearer {}", system.token());
    let (status, reason) = refused(&system.url, "/v1/fleet", &[("authorization", &bearer)]).await;
    assert_eq!(status, 429, "{reason}");
    assert_eq!(
        reason,
        "tester holds 2 fleet connections, the relay's limit per user (--max-connections-per-user)"
    );
    // Without a token, none at all.
    let (status, _) = refused(&system.url, "/v1/fleet", &[]).await;
    assert_eq!(status, 401);
}
