//! `session-client recordings` and `session-client play` against a relay that records: the
//! listing shows the session, and playing it writes what the session printed.

use core::time::Duration;
use std::process::{Command, Output};

use session_relay::Recordings;
use session_relay::recording::{Config, index};
use session_relay::store::Store;
use session_test_kit::{System, run};

fn client(relay: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_session-client"))
        .arg("--relay")
        .arg(relay)
        .args(args)
        .env("SESSION_TOKEN", token)
        .output()
        .expect("the client binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_listed_and_played_as_they_were_shown() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_memory().unwrap();
    let recordings = Recordings::start(store.clone(), Config::new(dir.path().join("recordings"))).unwrap();
    let mut system = System::configured(store.clone(), None, move |config| {
        config.access = config.access.clone().with_recordings(recordings);
    })
    .await;
    system.agent("rec-1").await;
    let printed = "first line\r\n\u{1b}[1mbold\u{1b}[0m and € split\n";
    let ran = run(
        &system.client,
        "rec-1",
        "printf 'first line\\r\\n\\033[1mbold\\033[0m and \\342\\202'; sleep 0.2; printf '\\254 split\\n'",
    )
    .await
    .unwrap();
    assert_eq!(ran.stdout, printed);
    // The writer ends the recording a moment after the session.
    let mut entry = None;
    for _ in 0..1000 {
        entry =
            index::list(&store, 10).unwrap().into_iter().find(|e| e.chunks.is_some() && e.record.is_some());
        if entry.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let entry = entry.expect("the session's recording ended");

    let (url, token) = (system.url.clone(), system.token().to_owned());
    let id = entry.id.clone();
    let (listed, json, played, metadata) = tokio::task::spawn_blocking(move || {
        (
            client(&url, &token, &["recordings"]),
            client(&url, &token, &["-o", "json", "recordings"]),
            client(&url, &token, &["play", &id, "--speed", "50"]),
            client(&url, &token, &["play", "nobody-0123456789abcdef"]),
        )
    })
    .await
    .unwrap();
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(
        table.lines().any(|l| l.starts_with(&entry.id) && l.contains("rec-1") && l.contains("full")),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let first = &json["recordings"][0];
    assert_eq!(first["id"], entry.id.as_str());
    assert!(first["started"].as_str().unwrap().ends_with('Z'), "RFC 3339: {first}");
    assert!(played.status.success(), "{}", String::from_utf8_lossy(&played.stderr));
    assert_eq!(String::from_utf8(played.stdout).unwrap(), printed, "played as it was shown");
    assert_eq!(metadata.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&metadata.stderr).contains("no recording nobody-0123456789abcdef"));
}
