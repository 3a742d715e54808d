//! The console's recordings (issue 18, spec 12.12): the Recordings tab lists what its user may
//! read, and its player plays a recording while it streams in, pauses, changes speed, seeks
//! both ways, reads a long recording a window at a time, watches a session in progress as it is
//! typed, and shows a metadata entry's facts; in a real headless Chromium against a real relay
//! (recording to a directory of its own) and agent. The player's engine alone, against fakes,
//! is `session-wasm/js-tests/player.test.mjs`.

use core::time::Duration;
use std::path::Path;

use fantoccini::Locator;
use serde_json::{Value, json};
use session_proto::owned::{OwnedEnv, OwnedOpenKind, OwnedPty, owned_str};
use session_relay::Recordings;
use session_relay::recording::{Config, Mode, Settings};
use session_relay::store::Store;
use session_test_kit::browser::Browser;
use session_test_kit::{System, pipes, read_until, run, run_on, size};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

/// The player's read-ahead, at most (player.js `HIGH_WATER`), plus one chunk read past it (1 MiB
/// at most while the relay's writer is behind) and its events' cost.
const MOST_QUEUED: u64 = (2 << 20) + (1 << 20) + (64 << 10);

/// Only so that a broken test fails instead of hanging: nothing is timed.
const BOUND: Duration = Duration::from_secs(30);

async fn browser() -> Browser {
    assert!(
        Browser::available(),
        "the console's tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver"
    );
    Browser::start().await.expect("a headless Chromium")
}

/// A relay recording every account's sessions in full into `dir`, with agent `web-1`.
async fn recording_system(dir: &Path) -> System {
    let store = Store::in_memory().unwrap();
    let recordings = Recordings::start(store.clone(), Config::new(dir.to_owned())).unwrap();
    let mut system = System::configured(store, None, move |config| {
        config.access = config.access.clone().with_recordings(recordings);
    })
    .await;
    system.agent("web-1").await;
    system
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("console-player-").tempdir().unwrap()
}

/// A shell on `web-1` as `tester`, 80 by 24: what is written to the returned input is typed,
/// and its output comes out of the returned stream.
struct Shell {
    connection: session_client::Connection,
    input: DuplexStream,
    output: DuplexStream,
    seen: String,
    running: JoinHandle<Result<session_client::Outcome, session_client::Error>>,
}

impl Shell {
    async fn open(system: &System) -> Shell {
        let connection = system.connect("web-1").await;
        let (io, input, output, _errors) = pipes();
        let pty = OwnedPty { term: owned_str("xterm").unwrap(), size: size(80, 24) };
        // bash without the user's files: the same prompt and echo wherever the test runs.
        let kind = OwnedOpenKind::Exec {
            command: owned_str("exec bash --norc --noprofile -i").unwrap(),
            pty: Some(pty),
            env: OwnedEnv::default(),
        };
        let running = tokio::spawn({
            let connection = connection.clone();
            async move { connection.open(kind, io).await }
        });
        Shell { connection, input, output, seen: String::new(), running }
    }

    /// Types `line` and waits until the output shows `wanted`.
    async fn type_until(&mut self, line: &str, wanted: &str) {
        self.input.write_all(line.as_bytes()).await.unwrap();
        read_until(&mut self.output, &mut self.seen, wanted).await;
    }

    async fn exit(mut self, code: u8) {
        self.input.write_all(format!("exit {code}\n").as_bytes()).await.unwrap();
        let drain = async {
            let mut rest = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut self.output, &mut rest).await;
        };
        let (outcome, ()) = tokio::join!(self.running, drain);
        let outcome = outcome.unwrap().unwrap();
        assert_eq!(outcome.exit_code(), i32::from(code));
        drop(self.connection);
    }
}

/// Opens the console, logs in with `token` and shows the Recordings tab.
async fn recordings_tab(browser: &Browser, system: &System, token: &str) {
    browser.goto(&format!("http://{}/", system.relay.addr)).await.unwrap();
    browser.wait_for("!document.querySelector('#login-page').hidden", "the login page").await.unwrap();
    let client = browser.client();
    client.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    client.find(Locator::Css("#login-submit")).await.unwrap().click().await.unwrap();
    browser
        .wait_for("!document.querySelector('#instances-page').hidden", "the instances page")
        .await
        .unwrap();
    click(browser, "#tabs .tab[data-tab='recordings']").await;
    browser
        .wait_for("!document.querySelector('#recordings-page').hidden", "the recordings page")
        .await
        .unwrap();
    browser.wait_for("sessionPlayer.loaded()", "the list").await.unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser.client().find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

/// Waits until the list shows `count` recordings, each with its end when `ended`; refreshes it
/// meanwhile (the relay's writer ends a recording a moment after its session).
async fn listed(browser: &Browser, count: usize, ended: bool) -> Vec<Value> {
    let js = format!(
        "(() => {{ const l = sessionPlayer.list(); \
         const ok = l.length === {count} && sessionPlayer.rows().length === {count} && \
           l.every(e => {ended} ? e.ended !== null : true); \
         if (!ok) document.querySelector('#recordings-refresh').click(); \
         return ok && l; }})()"
    );
    match browser.wait_for(&js, "the recordings listed").await {
        Ok(Value::Array(list)) => list,
        other => panic!("{other:?}; listed: {:?}", browser.eval::<Value>("sessionPlayer.list()").await),
    }
}

/// The player's state.
async fn state(browser: &Browser) -> Value {
    browser.eval("sessionPlayer.state()").await.unwrap()
}

/// Waits until the player's terminal shows `wanted`, and returns its text.
async fn until_text(browser: &Browser, wanted: &str) -> String {
    let js = format!("sessionPlayer.text().includes({}) && sessionPlayer.text()", json!(wanted));
    match browser.wait_for(&js, wanted).await {
        Ok(Value::String(text)) => text,
        other => {
            let text: String = browser.eval("sessionPlayer.text()").await.unwrap_or_default();
            panic!("{other:?}; the player shows:\n{text}\nin state {}", state(browser).await)
        }
    }
}

async fn until_status(browser: &Browser, status: &str) -> Value {
    let js = format!(
        "sessionPlayer.state() && sessionPlayer.state().status === {} && sessionPlayer.state()",
        json!(status)
    );
    match browser.wait_for(&js, status).await {
        Ok(value) => value,
        Err(e) => panic!("{e}; the player is in state {}", state(browser).await),
    }
}

/// Moves the slider to `seconds`, as a person letting go of it there.
async fn slide_to(browser: &Browser, seconds: f64) {
    let js = format!(
        "(() => {{ const s = document.querySelector('#player .player-seek'); s.value = {seconds}; \
         s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); return true; }})()"
    );
    browser.eval::<bool>(&js).await.unwrap();
}

/// No error in the page's console but those `expected` names.
fn no_errors(log: &[session_test_kit::browser::ConsoleEntry], expected: Option<&str>) {
    let unexpected = |entry: &&session_test_kit::browser::ConsoleEntry| {
        entry.level == "SEVERE" && !expected.is_some_and(|words| entry.message.contains(words))
    };
    assert!(!log.iter().any(|entry| unexpected(&entry)), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_shell_plays_at_16x_pauses_seeks_and_ends_showing_its_text() {
    let dir = scratch();
    let system = recording_system(dir.path()).await;
    let mut shell = Shell::open(&system).await;
    shell.type_until("printf 'alpha-%s\\n' $((6*7))\n", "alpha-42").await;
    shell.connection.resize(size(100, 30));
    shell.type_until("stty size\n", "30 100").await;
    // A pause in the session: what a player at 1x takes time over, long enough for the test
    // to pause it before its end.
    shell.type_until("sleep 4; echo omega-$((7*8))\n", "omega-56").await;
    shell.exit(0).await;

    let browser = browser().await;
    recordings_tab(&browser, &system, system.token()).await;
    let list = listed(&browser, 1, true).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tester-"), "{id}");

    click(&browser, &format!("#recordings tr[data-recording='{id}'] button.play")).await;
    browser.wait_for("!document.querySelector('#player').hidden", "the player").await.unwrap();
    assert!(browser.eval::<bool>("document.querySelector('#recordings-list').hidden").await.unwrap());
    until_text(&browser, "alpha-42").await;
    assert!(browser.eval::<bool>("sessionPlayer.readOnly()").await.unwrap());

    // Paused, nothing moves: neither the screen nor the position.
    click(&browser, "#player .player-toggle").await;
    let paused = until_status(&browser, "paused").await;
    let text: String = browser.eval("sessionPlayer.text()").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = state(&browser).await;
    assert_eq!(held["position"], paused["position"], "{held}");
    assert_eq!(browser.eval::<String>("sessionPlayer.text()").await.unwrap(), text);

    // At 16x to its end: the terminal ends showing everything, at the size it was resized to.
    click(&browser, "#player .player-speed[data-speed='16']").await;
    click(&browser, "#player .player-toggle").await;
    let ended = until_status(&browser, "ended").await;
    let text = until_text(&browser, "omega-56").await;
    assert!(text.contains("alpha-42") && text.contains("30 100"), "{text}");
    assert_eq!(ended["speed"], 16);
    assert_eq!(ended["size"], json!([100, 30]));
    assert_eq!(ended["exit"], "0");
    assert!(ended["duration"].as_f64().unwrap() >= 4.0, "{ended}");
    assert_eq!(ended["position"], ended["duration"]);
    let status: String =
        browser.eval("document.querySelector('#player .player-status').textContent").await.unwrap();
    assert_eq!(status, "ended: exited with code 0");
    assert_eq!(
        browser
            .eval::<String>("document.querySelector('#player .player-speed.active').textContent")
            .await
            .unwrap(),
        "16×"
    );

    // Back to the start: the terminal is reset, and the recording read again from its first
    // byte; nothing of it is shown yet at 0 s, and the terminal has its first size again.
    let opens = ended["opens"].as_u64().unwrap();
    slide_to(&browser, 0.0).await;
    let js = format!(
        "(s => s.opens > {opens} && s.status === 'paused' && s.loaded > 0 && \
           JSON.stringify(s.size) === '[80,24]' && !sessionPlayer.text().includes('alpha-42') && s)(sessionPlayer.state())"
    );
    browser.wait_for(&js, "the start again").await.unwrap();

    // Forward to the end at once, paused: everything between is shown.
    let duration = ended["duration"].as_f64().unwrap();
    slide_to(&browser, duration).await;
    until_text(&browser, "omega-56").await;
    let end = until_status(&browser, "ended").await;
    assert_eq!(end["size"], json!([100, 30]));

    // Back to the list.
    click(&browser, "#player .player-back").await;
    browser.wait_for("!document.querySelector('#recordings-list').hidden", "the list").await.unwrap();
    assert!(browser.eval::<bool>("document.querySelector('#player').hidden").await.unwrap());
    no_errors(&browser.console_log().await.unwrap(), None);
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_progress_is_watched_read_only_as_it_is_typed() {
    let dir = scratch();
    let system = recording_system(dir.path()).await;
    let mut shell = Shell::open(&system).await;
    shell.type_until("echo live-$((1+1))\n", "live-2").await;

    let browser = browser().await;
    recordings_tab(&browser, &system, system.token()).await;
    let list = listed(&browser, 1, false).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["ended"], Value::Null);
    let badge: String = browser
        .eval(&format!(
            "document.querySelector(\"#recordings tr[data-recording='{id}'] .badge\").textContent"
        ))
        .await
        .unwrap();
    assert_eq!(badge, "live");
    click(&browser, &format!("#recordings tr[data-recording='{id}'] button.watch")).await;
    until_text(&browser, "live-2").await;
    let live = until_status(&browser, "live").await;
    assert_eq!(live["follow"], true);
    assert!(browser.eval::<bool>("sessionPlayer.readOnly()").await.unwrap());

    // What is typed now shows as it comes.
    shell.type_until("echo typed-$((2+3))\n", "typed-5").await;
    until_text(&browser, "typed-5").await;
    shell.type_until("echo again-$((3+4))\n", "again-7").await;
    until_text(&browser, "again-7").await;

    // The session's end is the recording's.
    shell.exit(3).await;
    let ended = until_status(&browser, "ended").await;
    assert_eq!(ended["exit"], "3");
    assert_eq!(ended["live"], false);
    no_errors(&browser.console_log().await.unwrap(), None);
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_recording_is_read_a_window_at_a_time_never_whole() {
    let dir = scratch();
    let system = recording_system(dir.path()).await;
    // About 7 MB of output (more in asciicast, its newlines escaped), in a moment.
    let connection = system.connect("web-1").await;
    let ran = run_on(&connection, "seq 1 1000000; echo flood-$((5*5))").await.unwrap();
    assert!(ran.stdout.ends_with("flood-25\n"));
    drop(connection);

    let browser = browser().await;
    recordings_tab(&browser, &system, system.token()).await;
    let list = listed(&browser, 1, true).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let total = list[0]["size"].as_u64().unwrap();

    // Opened paused at its start, the player reads ahead a window and stops there.
    browser.eval::<bool>(&format!("sessionPlayer.open({}, {{paused: true}})", json!(id))).await.unwrap();
    let suspended = browser
        .wait_for("(s => s && s.stream === 'suspended' && s)(sessionPlayer.state())", "the read-ahead's end")
        .await
        .unwrap();
    let read = suspended["bytesRead"].as_u64().unwrap();
    assert!(total > 6 << 20, "the recording takes {total} bytes");
    assert!(read < total / 2, "read {read} of {total} bytes while paused at the start");
    assert!(suspended["maxQueued"].as_u64().unwrap() <= MOST_QUEUED, "{suspended}");

    // To the end: everything is shown, read on window after window, never all at once.
    browser.eval::<Value>("sessionPlayer.seek(1e6)").await.unwrap();
    let ended = until_status(&browser, "ended").await;
    let text = until_text(&browser, "flood-25").await;
    assert!(text.contains("999999"), "the last lines");
    assert!(ended["opens"].as_u64().unwrap() >= 2, "{ended}");
    assert!(ended["maxQueued"].as_u64().unwrap() <= MOST_QUEUED, "{ended}");
    // Read to its last byte: the size listed counts its chain too.
    let cast = std::fs::metadata(dir.path().join(format!("{id}.cast"))).unwrap().len();
    assert_eq!(ended["offset"].as_u64().unwrap(), cast, "{ended}");
    no_errors(&browser.console_log().await.unwrap(), None);
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_holds_only_what_the_user_may_read_and_a_metadata_entry_shows_its_facts() {
    let dir = scratch();
    let system = recording_system(dir.path()).await;
    let reader = r#"{"Version": "1", "Statement": {"Effect": "Allow",
        "Action": ["session:DescribeInstanceStatus", "session:StartSession", "session:ReadRecording"],
        "Resource": "*"}}"#;
    let no_reader = r#"{"Version": "1", "Statement": {"Effect": "Allow",
        "Action": ["session:DescribeInstanceStatus", "session:StartSession"], "Resource": "*"}}"#;
    let alice = system.user("alice", reader);
    let bob = system.user("bob", no_reader);
    assert_eq!(run(&system.client, "web-1", "echo full-one").await.unwrap().code, 0);
    system.store.set_recording("test", Settings { mode: Mode::Metadata, input: false }).unwrap();
    assert_eq!(run(&system.client, "web-1", "echo metadata-one; exit 4").await.unwrap().code, 4);

    // Indexed by the relay's writer, a thread of its own, a moment after each session.
    let indexed = async {
        loop {
            let entries = session_relay::recording::index::list(&system.store, 10).unwrap();
            if entries.len() == 2 {
                return entries.into_iter().map(|e| e.id).collect::<Vec<String>>();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let ids = tokio::time::timeout(BOUND, indexed).await.expect("both recordings indexed");

    // Bob may not ReadRecording: none of them is his to see.
    let browser = browser().await;
    recordings_tab(&browser, &system, &bob.token).await;
    browser
        .wait_for("!document.querySelector('#recordings-empty').hidden", "the list said empty")
        .await
        .unwrap();
    assert_eq!(browser.eval::<Value>("sessionPlayer.list()").await.unwrap(), json!([]));
    assert_eq!(browser.eval::<Value>("sessionPlayer.rows()").await.unwrap(), json!([]));
    // Nor may he read one by its name: the relay refuses the page's request.
    for id in &ids {
        let js = format!(
            "new Promise(r => {{ const ws = new WebSocket('ws://{}/v1/recordings/{id}', 'session-proto.v1'); \
             ws.onmessage = () => r('answered'); ws.onclose = () => r('refused'); }})",
            system.relay.addr
        );
        assert_eq!(browser.eval::<String>(&js).await.unwrap(), "refused", "{id}");
    }
    click(&browser, "#logout").await;
    browser.wait_for("!document.querySelector('#login-page').hidden", "logged out").await.unwrap();

    // Alice may: both, the newest first, and the metadata entry's facts.
    browser.client().find(Locator::Css("#token")).await.unwrap().clear().await.unwrap();
    recordings_tab(&browser, &system, &alice.token).await;
    let list = listed(&browser, 2, true).await;
    assert_eq!(list[0]["mode"], "metadata");
    assert_eq!(list[1]["mode"], "full");
    let metadata = list[0]["id"].as_str().unwrap().to_owned();
    let row = format!("#recordings tr[data-recording='{metadata}']");
    assert!(browser.eval::<bool>(&format!("!document.querySelector(\"{row} button.play\")")).await.unwrap());
    click(&browser, &format!("{row} button.details")).await;
    until_status(&browser, "metadata").await;
    let facts: Vec<(String, String)> = serde_json::from_value(
        browser
            .wait_for(
                "sessionPlayer.facts().some(([t]) => t === 'Exit') && sessionPlayer.facts()",
                "the facts",
            )
            .await
            .unwrap(),
    )
    .unwrap();
    let fact = |name: &str| facts.iter().find(|(t, _)| t == name).map(|(_, v)| v.clone());
    assert_eq!(fact("Session").as_deref(), Some(metadata.as_str()));
    assert_eq!(fact("Recorded").as_deref(), Some("metadata only"));
    assert_eq!(fact("Instance").as_deref(), Some("web-1"));
    assert_eq!(fact("Exit").as_deref(), Some("exited with code 4"));
    assert!(fact("Kind").unwrap().contains("metadata-one"), "{facts:?}");
    assert!(fact("From the instance").is_some(), "{facts:?}");
    // No terminal, no controls: facts alone.
    let screen: bool = browser
        .eval("getComputedStyle(document.querySelector('#player .player-screen')).display === 'none'")
        .await
        .unwrap();
    assert!(screen);
    assert_eq!(browser.eval::<String>("sessionPlayer.text()").await.unwrap(), "");
    no_errors(&browser.console_log().await.unwrap(), Some("/v1/recordings/"));
    browser.close().await.unwrap();
}

/// The README's pictures of the Recordings tab: `cargo test -p session-tests --test
/// console_player -- --ignored screenshots` writes them to `docs/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the README's screenshots"]
async fn screenshots() {
    let dir = scratch();
    let system = recording_system(dir.path()).await;
    let mut shell = Shell::open(&system).await;
    shell.type_until("echo $TERM; stty size\n", "24 80").await;
    shell.connection.resize(size(100, 30));
    shell.type_until("stty size; printf 'caf\\xc3\\xa9 \\xe2\\x9c\\x93\\n'\n", "caf").await;
    shell
        .type_until(
            "for i in 1 2 3; do printf '\\e[1;3%sm step %s \\e[0m\\n' $((i+1)) $i; sleep 0.3; done; echo done-$((2*3))\n",
            "done-6",
        )
        .await;
    shell.exit(0).await;
    assert_eq!(run(&system.client, "web-1", "echo from-a-command").await.unwrap().code, 0);
    let mut live = Shell::open(&system).await;
    live.type_until("echo still-running\n", "still-running").await;

    let browser = browser().await;
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    std::fs::create_dir_all(&docs).unwrap();
    let shoot = |name: &'static str| {
        let path = docs.join(name);
        async { std::fs::write(path, browser.client().screenshot().await.unwrap()).unwrap() }
    };
    recordings_tab(&browser, &system, system.token()).await;
    listed(&browser, 3, false).await;
    shoot("console-recordings.png").await;
    let first: String = browser.eval("sessionPlayer.list()[2].id").await.unwrap();
    browser.eval::<bool>(&format!("sessionPlayer.open({}, {{speed: 4}})", json!(first))).await.unwrap();
    until_status(&browser, "ended").await;
    shoot("console-player.png").await;
    browser.close().await.unwrap();
    live.exit(0).await;
}
