//! Session recordings (spec 12.12) with the relay as a process of its own: a shell's recording
//! replays to the screen its user saw; an export is asciicast v2 that asciinema reads; a relay
//! killed mid-session loses at most one chunk and what is left verifies; a flood keeps the
//! relay's memory and the recording bounded, every byte recorded or counted; a changed chunk
//! is named; settings, metadata entries, the policy and the endpoints.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

mod process;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use process::{Served, admin, full_access_user, ok, scratch};
use serde_json::Value;
use session_client::{Connection, Relay};
use session_link::dial::Trust;
use session_proto::owned::{OwnedEnv, OwnedOpenKind, OwnedPty, owned_str};
use session_relay::recording::index::{self, Entry};
use session_relay::store::Store;
use session_test_kit::{exec, pipes, size};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Taken by every test here: their bounds hold while the relay's host has a core to spare (the
/// writer runs at the lowest priority), and a flood beside the killed relay would starve its
/// writer, whose queue the kill then loses too.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A relay process over a new store in `dir`, started with `args`, an agent `box` online at
/// it, and the token of `ops`, allowed everything.
async fn relay(dir: &Path, args: &[&str]) -> (Served, Relay, PathBuf, tokio::task::JoinHandle<()>) {
    let db = dir.join("relay.db");
    let token = full_access_user(&db, dir);
    let code = ok(&db, &["activation", "create", "--account", "test"]).trim().to_owned();
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let served = Served::start(&db, &all);
    let url = format!("ws://127.0.0.1:{}", served.port);
    let ops = Relay::new(&url, &token);
    let agent = process::agent(&url, "box", &code, Trust::system(), &ops).await;
    (served, ops, db, agent)
}

/// Recording `id`'s entry, once its relay has ended it (the writer writes its end a moment
/// after the session's), or as it is after ten seconds.
async fn ended_entry(db: &Path, id: &str) -> Entry {
    let store = Store::open_existing(db).expect("the store");
    for _ in 0..1000 {
        if let Some(entry) = index::get(&store, id).expect("the index") {
            if entry.record.is_some() && (entry.mode != "full" || entry.chunks.is_some()) {
                return entry;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    index::get(&store, id).expect("the index").unwrap_or_else(|| panic!("no recording {id}"))
}

/// The audit log once it holds `wanted` (the relay's store writer is a thread of its own), or
/// as it is after ten seconds.
async fn audit_until(db: &Path, wanted: &str) -> String {
    let mut audit = String::new();
    for _ in 0..1000 {
        audit = ok(db, &["audit", "--limit", "20"]);
        if audit.contains(wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    audit
}

/// The events of an asciicast v3 text: (interval, code, data).
fn events(cast: &str) -> Vec<(f64, String, String)> {
    cast.lines()
        .skip(1)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (
                event[0].as_f64().unwrap(),
                event[1].as_str().unwrap().to_owned(),
                event[2].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A recording's output, concatenated.
fn output_of(cast: &str) -> String {
    events(cast).into_iter().filter(|(_, code, _)| code == "o").map(|(_, _, data)| data).collect()
}

/// A shell's output, as it comes, fed to a terminal emulator as the user's terminal would be.
struct Screen {
    output: DuplexStream,
    received: Vec<u8>,
    live: vt100::Parser,
}

impl Screen {
    /// Reads until what came ends with `prompt`, after `marker` came: the shell is then waiting.
    async fn until(&mut self, marker: &str, prompt: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let since = self.received.len();
        let mut marked = None;
        loop {
            let text = String::from_utf8_lossy(&self.received);
            if marked.is_none() {
                marked = String::from_utf8_lossy(&self.received[since..]).find(marker);
            }
            if marked.is_some() && text.ends_with(prompt) {
                return;
            }
            let mut buf = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.output.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    self.received.extend_from_slice(&buf[..n]);
                    self.live.process(&buf[..n]);
                }
                other => panic!("{marker:?} then {prompt:?} never came ({other:?}); got {text:?}"),
            }
        }
    }
}

/// The replay test's shell session: full-screen programs, a character split across Data
/// frames, resizes both ways. Returns the recording's id, and the screen as the user saw it.
async fn shell_session(connection: &Connection) -> (String, Screen, Vec<u8>) {
    let (io, mut input, output, _errors) = pipes();
    let pty = OwnedPty { term: owned_str("xterm").unwrap(), size: size(80, 24) };
    let kind = OwnedOpenKind::Shell { pty, env: OwnedEnv::default() };
    let (told, session) = tokio::sync::oneshot::channel();
    let opened = connection.clone();
    let running = tokio::spawn(async move { opened.open_with_session(kind, io, told).await });
    let id = session.await.expect("accepted").expect("the relay names the session");
    let mut screen = Screen { output, received: Vec::new(), live: vt100::Parser::new(24, 80, 0) };
    // A shell without line editing, whose prompt is the last thing it prints before it waits.
    let prompt = "READY> ";
    input.write_all(b"exec /bin/sh\n").await.unwrap();
    input.write_all(b"PS1='READY> '; echo M$((0+1))\n").await.unwrap();
    screen.until("M1", prompt).await;
    let steps: [(&str, &[u8]); 5] = [
        // A full screen drawn with cursor movements and colours, on the alternate screen.
        ("M2", b"printf '\\033[?1049h\\033[2J\\033[Htop\\033[10;5H\\033[1;31mmiddle\\033[0m\\033[24;70Hend'; echo M$((1+1))\n"),
        // `\342\202\254` is the euro sign, cut in two by the pause: two Data frames.
        ("M3", b"printf 'split \\342\\202'; sleep 0.3; printf '\\254 and \\346\\227\\245\\346\\234\\254\\n'; echo M$((1+2))\n"),
        ("M4", b"printf '\\033[?1049l'; printf 'VIMTEXT line\\n' > /tmp/recording-vi-$$.txt; echo M$((1+3))\n"),
        ("M5", b"top -n 1 >/dev/null 2>&1; echo M$((1+4))\n"),
        ("M6", b"stty size; echo M$((1+5))\n"),
    ];
    for (marker, command) in steps {
        input.write_all(command).await.unwrap();
        screen.until(marker, prompt).await;
    }
    // Resized while the shell waits: the relay records the resize where the user's terminal
    // had it, between the same bytes.
    connection.resize(size(100, 30));
    screen.live.screen_mut().set_size(30, 100);
    input.write_all(b"stty size; echo M$((2+5))\n").await.unwrap();
    screen.until("M7", prompt).await;
    assert!(String::from_utf8_lossy(&screen.received).contains("30 100"), "the shell saw the resize");
    // vi, full-screen on the alternate screen, then gone.
    input.write_all(b"vi -u NONE -i NONE -n /tmp/recording-vi-$$.txt\n").await.unwrap();
    screen.until("VIMTEXT line", "").await;
    input.write_all(b":q!\r").await.unwrap();
    // vi reads what is typed while it runs: the next command waits for the shell.
    screen.until("\u{1b}[?1049l", prompt).await;
    input.write_all(b"rm -f /tmp/recording-vi-$$.txt; echo M$((3+5))\n").await.unwrap();
    screen.until("M8", prompt).await;
    connection.resize(size(60, 20));
    screen.live.screen_mut().set_size(20, 60);
    input.write_all(b"printf 'small\\033[20;55Hcorner'; echo; echo M$((4+5))\n").await.unwrap();
    screen.until("M9", prompt).await;
    input.write_all(b"exit 7\n").await.unwrap();
    let mut rest = Vec::new();
    screen.output.read_to_end(&mut rest).await.unwrap();
    screen.received.extend_from_slice(&rest);
    screen.live.process(&rest);
    let outcome = running.await.unwrap().expect("the shell ran");
    assert_eq!(outcome.exit_code(), 7);
    let received = screen.received.clone();
    (id, screen, received)
}

/// A recording fed to a terminal emulator: output and resizes, in order.
fn replay(cast: &str) -> vt100::Parser {
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    let (cols, rows) =
        (header["term"]["cols"].as_u64().unwrap() as u16, header["term"]["rows"].as_u64().unwrap() as u16);
    let mut parser = vt100::Parser::new(rows, cols, 0);
    for (_, code, data) in events(cast) {
        match code.as_str() {
            "o" => parser.process(data.as_bytes()),
            "r" => {
                let (cols, rows) = data.split_once('x').unwrap();
                parser.screen_mut().set_size(rows.parse().unwrap(), cols.parse().unwrap());
            }
            _ => {}
        }
    }
    parser
}

/// Checks a v2 file as the v2 format says, strictly: a header object with integer `width` and
/// `height` above 0 and version 2; then events `[time, code, data]` whose times never go back,
/// codes `o`, `i`, `m` or `r` (`COLSxROWS`), strings for data. Returns the output.
fn strict_v2(text: &str) -> String {
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("a header")).expect("a JSON header");
    assert_eq!(header["version"], 2);
    assert!(
        header["width"].as_u64().is_some_and(|w| w > 0) && header["height"].as_u64().is_some_and(|h| h > 0)
    );
    assert!(header.get("timestamp").is_none_or(Value::is_i64), "an integer timestamp");
    let mut last = 0.0;
    let mut output = String::new();
    for line in lines {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let [time, code, data] = event.as_array().expect("an array").as_slice() else {
            panic!("three elements: {line}")
        };
        let time = time.as_f64().expect("a number");
        assert!(time >= last, "times never go back: {line}");
        last = time;
        let data = data.as_str().expect("a string");
        match code.as_str().expect("a code") {
            "o" => output.push_str(data),
            "i" | "m" => {}
            "r" => {
                let (cols, rows) = data.split_once('x').expect("COLSxROWS");
                assert!(cols.parse::<u16>().is_ok() && rows.parse::<u16>().is_ok(), "{line}");
            }
            other => panic!("no {other:?} in v2: {line}"),
        }
    }
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_replays_to_the_screen_it_showed_and_exports_to_v2_that_asciinema_reads() {
    let _alone = ALONE.lock().await;
    let dir = scratch("replay");
    let (_served, ops, db, _agent) = relay(&dir, &[]).await;
    let connection = Connection::connect(&ops, "box").await.unwrap();
    let (id, screen, received) = shell_session(&connection).await;
    connection.close().await;

    let entry = ended_entry(&db, &id).await;
    assert_eq!((entry.mode.as_str(), entry.kind.as_str(), entry.unrecorded), ("full", "shell", 0));
    let cast = ok(&db, &["recording", "export", &id]);
    // Every byte the user received, and nothing else, as text: the euro sign whole.
    assert_eq!(output_of(&cast), String::from_utf8(received).expect("the shell's output is UTF-8"));
    assert!(output_of(&cast).contains("split € and 日本"));
    let codes: Vec<String> = events(&cast).into_iter().map(|(_, code, _)| code).collect();
    assert!(!codes.iter().any(|c| c == "i"), "input is not recorded unless asked for");
    assert_eq!(codes.iter().filter(|c| *c == "r").count(), 2, "both resizes");
    assert_eq!(codes.last().map(String::as_str), Some("x"), "the exit, last");
    assert!(cast.trim_end().ends_with("\"x\", \"7\"]"), "{cast}");

    let replayed = replay(&cast);
    let (live, again) = (screen.live.screen(), replayed.screen());
    assert_eq!(again.size(), live.size());
    assert_eq!(again.contents_formatted(), live.contents_formatted(), "the same screen, attributes and all");
    assert_eq!(again.cursor_position(), live.cursor_position());
    assert_eq!(again.alternate_screen(), live.alternate_screen());
    assert!(live.contents().contains("corner"), "{}", live.contents());

    // v2, for older players: checked to the letter, and read by asciinema's own parser.
    let v2_path = dir.join("export.cast");
    ok(&db, &["recording", "export", &id, "--v2", "--file", v2_path.to_str().unwrap()]);
    let v2 = std::fs::read_to_string(&v2_path).unwrap();
    assert_eq!(strict_v2(&v2), output_of(&cast));
    let parsed = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, json\n\
             try:\n    import asciinema.asciicast as a\n\
             except ImportError:\n    sys.exit('the asciinema package is missing: pip install asciinema==2.4.0')\n\
             with a.open_from_url(sys.argv[1]) as cast:\n\
             \x20   assert cast.v2_header['version'] == 2\n\
             \x20   out = ''.join(e[2] for e in cast.events() if e[1] == 'o')\n\
             sys.stdout.write(json.dumps(out))\n",
        )
        .arg(&v2_path)
        .output()
        .expect("python3 runs");
    assert!(parsed.status.success(), "asciinema's parser: {}", String::from_utf8_lossy(&parsed.stderr));
    let parsed: String = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(parsed, output_of(&cast), "asciinema reads the same output");

    let verified = ok(&db, &["recording", "verify", &id]);
    assert!(verified.contains("ended as it should"), "{verified}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shell of a session that prints `lines` numbered lines of about 1000 bytes, one every
/// 5 ms, and then waits.
fn steady_output(lines: u32) -> String {
    format!(
        "pad=$(printf '%0990d' 0); i=0; while [ $i -lt {lines} ]; do i=$((i+1)); printf '%07d %s\\n' $i \"$pad\"; \
         sleep 0.005; done; sleep 600"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_session_loses_at_most_one_chunk_and_the_rest_verifies() {
    let _alone = ALONE.lock().await;
    let dir = scratch("killed");
    let (mut served, mut ops, db, _agent) = relay(&dir, &[]).await;
    // The relay will not come back: the client gives the session up at once.
    ops.reattach_for = Duration::ZERO;
    let connection = Connection::connect(&ops, "box").await.unwrap();
    let (io, input, mut output, _errors) = pipes();
    drop(input);
    let (told, session) = tokio::sync::oneshot::channel();
    let running =
        tokio::spawn(
            async move { connection.open_with_session(exec(&steady_output(100_000)), io, told).await },
        );
    let id = session.await.unwrap().expect("a session id");
    // Killed while output flows: several chunks written, one being gathered.
    let mut received = Vec::new();
    while received.len() < 400_000 {
        let mut buf = [0u8; 65536];
        let n = output.read(&mut buf).await.unwrap();
        assert!(n > 0, "the output goes on");
        received.extend_from_slice(&buf[..n]);
    }
    served.kill();
    // What was in flight still arrives; then the connection is gone.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), output.read_to_end(&mut rest)).await;
    received.extend_from_slice(&rest);
    let _ = running.await;

    let verified = ok(&db, &["recording", "verify", &id]);
    assert!(verified.contains("not ended"), "{verified}");
    let cast = ok(&db, &["recording", "export", &id]);
    let recorded = output_of(&cast);
    assert!(
        received.starts_with(recorded.as_bytes()),
        "the recording is what the client received, up to where it stops"
    );
    let lost = received.len() - recorded.len();
    eprintln!("received {} bytes, recorded {}, lost {lost}", received.len(), recorded.len());
    assert!(lost <= session_relay::recording::CHUNK_BYTES, "lost {lost} bytes: more than one chunk");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The peak resident memory of process `pid`, from `/proc`.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
}

/// Runs `command` on `box` through `ops`, counting its output without keeping it; its id and
/// the byte count.
async fn count_output(ops: &Relay, command: &str) -> (String, u64) {
    let connection = Connection::connect(ops, "box").await.unwrap();
    let (io, input, mut output, _errors) = pipes();
    drop(input);
    let (told, session) = tokio::sync::oneshot::channel();
    let kind = exec(command);
    let opened = connection.clone();
    let running = tokio::spawn(async move { opened.open_with_session(kind, io, told).await });
    let id = session.await.unwrap().expect("a session id");
    let mut count = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = output.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        count += n as u64;
    }
    assert_eq!(running.await.unwrap().unwrap().exit_code(), 0);
    connection.close().await;
    (id, count)
}

/// What the relay may hold at its peak during the floods, over its memory before them:
/// the recording queue (4 MiB here), a chunk, the replay buffer towards the agent (4 MiB) and
/// the windows and buffers of the connections, with room for the allocator's arenas.
const FLOOD_GROWTH_BOUND: u64 = 48 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_keeps_the_relay_and_the_recording_bounded_and_every_byte_is_recorded_or_counted() {
    let _alone = ALONE.lock().await;
    let dir = scratch("flood");
    let args = ["--recording-max-mib", "8", "--recording-queue-mib", "4"];
    let (served, ops, db, _agent) = relay(&dir, &args).await;
    let (warm, _) = count_output(&ops, "echo warm").await;
    ended_entry(&db, &warm).await;
    let before = peak_rss(served.pid());

    // 200 MB of `yes`, as fast as the path takes it: a byte count, not a time.
    let total = 200_000_000u64;
    let (id, count) = count_output(&ops, &format!("yes | head -c {total}")).await;
    assert_eq!(count, total);
    let entry = ended_entry(&db, &id).await;
    let peak = peak_rss(served.pid());
    eprintln!("relay peak RSS {} MiB before, {} MiB after the flood", before >> 20, peak >> 20);
    assert!(
        peak.saturating_sub(before) < FLOOD_GROWTH_BOUND,
        "the relay grew by {} MiB",
        (peak - before) >> 20
    );

    let path = entry.path.clone().expect("a full recording");
    let cast_len = std::fs::metadata(&path).unwrap().len();
    assert!(cast_len <= (8 << 20) + 1024, "the recording is bounded as configured: {cast_len} bytes");
    let cast = ok(&db, &["recording", "export", &id]);
    let recorded = output_of(&cast).len() as u64;
    assert_eq!(recorded + entry.unrecorded, total, "every byte recorded or counted");
    let markers: Vec<String> = events(&cast).into_iter().filter(|e| e.1 == "m").map(|e| e.2).collect();
    eprintln!(
        "recorded {recorded} bytes, {} not; {} markers, the last {:?}",
        entry.unrecorded,
        markers.len(),
        markers.last()
    );
    // Whether the writer kept up until the limit or fell behind first, what was not recorded
    // is said where it was left out.
    assert!(
        markers.iter().any(|m| m.starts_with("recording limit of 8388608 bytes reached"))
            || markers.iter().any(|m| m.ends_with("(the recorder fell behind)")),
        "{markers:?}"
    );
    let verified = ok(&db, &["recording", "verify", &id]);
    assert!(verified.contains("ended as it should") && verified.contains("were not recorded"), "{verified}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_or_removed_chunk_is_named_by_verify_and_refused_by_export() {
    let _alone = ALONE.lock().await;
    let dir = scratch("tampered");
    let (_served, ops, db, _agent) =
        relay(&dir, &["--recording-dir", dir.join("casts").to_str().unwrap()]).await;
    // Enough lines for several chunks.
    let (id, _) = count_output(&ops, "seq 1 60000").await;
    let entry = ended_entry(&db, &id).await;
    assert!(entry.chunks.unwrap() >= 4, "{entry:?}");
    let path = entry.path.unwrap();
    assert!(path.starts_with(dir.join("casts")));
    let original = std::fs::read(&path).unwrap();
    ok(&db, &["recording", "verify", &id]);

    // A digit changed in the middle.
    let mut changed = original.clone();
    let at = changed.len() / 2;
    changed[at] = if changed[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&path, &changed).unwrap();
    let out = admin(&db, &["recording", "verify", &id]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("was changed: its hash is not the chain's"), "{said}");
    let out = admin(&db, &["recording", "export", &id, "--v2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing of a changed recording is exported");

    // The same bytes, one line removed: the chunks after it have moved.
    let text = String::from_utf8(original.clone()).unwrap();
    let line = text.lines().nth(5).unwrap();
    std::fs::write(&path, text.replacen(&format!("{line}\n"), "", 1)).unwrap();
    let out = admin(&db, &["recording", "verify", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));

    // The last chunks cut off, file and chain both, as if they had never been: the store's
    // witness of the chain's end disagrees.
    std::fs::write(&path, &original).unwrap();
    let chain_path = path.with_extension("chain");
    let chain = std::fs::read_to_string(&chain_path).unwrap();
    let kept: Vec<&str> = chain.lines().take(3).collect();
    let last: Value = serde_json::from_str(kept[2]).unwrap();
    let length = last["offset"].as_u64().unwrap() + last["len"].as_u64().unwrap();
    std::fs::write(&chain_path, format!("{}\n", kept.join("\n"))).unwrap();
    std::fs::write(&path, &original[..length as usize]).unwrap();
    let out = admin(&db, &["recording", "verify", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the store's index names"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_recording_that_fails_refuses_shells_and_commands_but_not_forwards() {
    let _alone = ALONE.lock().await;
    let dir = scratch("required");
    // A directory that cannot be made: its parent is a file.
    std::fs::write(dir.join("a-file"), "").unwrap();
    let unwritable = dir.join("a-file").join("recordings");
    let args = ["--recording-required", "--recording-dir", unwritable.to_str().unwrap()];
    let (served, ops, db, _agent) = relay(&dir, &args).await;
    let connection = Connection::connect(&ops, "box").await.unwrap();
    let (io, _input, _output, _errors) = pipes();
    let refused = connection.open(exec("echo hi"), io).await.expect_err("refused");
    let said = refused.to_string();
    assert!(said.contains("UNAVAILABLE") || said.contains("unavailable"), "{said}");
    assert!(said.contains("session recording is required and failing"), "{said}");
    assert!(said.contains("Not a directory") && said.contains("the session was not started"), "{said}");
    // Refusals are audited, with the reason.
    let audit = audit_until(&db, "session recording is required and failing").await;
    assert!(audit.contains("session recording is required and failing"), "{audit}");
    // A port forward is not recorded in full: it goes on (here, refused by nothing but the
    // closed port).
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = echo.accept().await {
            let _ = socket.write_all(b"fine").await;
        }
    });
    let back = session_test_kit::forward_echo(&connection, "127.0.0.1", port, b"").await.expect("a forward");
    assert_eq!(back, b"fine");
    assert!(served.log().contains("session recording is failing"), "the operator is told");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_metadata_entries_policy_and_the_endpoints() {
    let _alone = ALONE.lock().await;
    let dir = scratch("settings");
    let (served, ops, db, _agent) = relay(&dir, &[]).await;
    let url = format!("ws://127.0.0.1:{}", served.port);

    // Shown, then set: off leaves nothing; metadata leaves the entry alone; full with input.
    let shown = ok(&db, &["recording", "mode", "test"]);
    assert!(shown.starts_with("test\trecording not set (the relay's --recording-default"), "{shown}");
    let shown: Value = serde_json::from_str(&ok(&db, &["recording", "mode", "test", "-o", "json"])).unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"account": "test", "recording": null, "input": false, "set": false})
    );
    assert!(!admin(&db, &["recording", "mode", "nowhere", "full"]).status.success(), "an unknown account");
    ok(&db, &["recording", "mode", "test", "off"]);
    let (off, _) = count_output(&ops, "echo off").await;
    ok(&db, &["recording", "mode", "test", "metadata"]);
    let (metadata, _) = count_output(&ops, "echo metadata").await;
    let entry = ended_entry(&db, &metadata).await;
    assert_eq!((entry.mode.as_str(), entry.path.as_ref()), ("metadata", None));
    assert_eq!(entry.record.as_ref().unwrap()["bytes_from_instance"], 9);
    ok(&db, &["recording", "mode", "test", "full", "--input", "on"]);
    let shown = ok(&db, &["recording", "mode", "test"]);
    assert_eq!(shown, "test\trecording full\tinput on\n");
    let audit = audit_until(&db, "Recording(Mode").await;
    assert!(audit.contains("Recording(Mode"), "an operator's change is audited: {audit}");

    // Input, when asked for: what was typed, as typed.
    let connection = Connection::connect(&ops, "box").await.unwrap();
    let (io, mut input, mut output, _errors) = pipes();
    let (told, session) = tokio::sync::oneshot::channel();
    let opened = connection.clone();
    let running = tokio::spawn(async move { opened.open_with_session(exec("cat"), io, told).await });
    let typed = session.await.unwrap().unwrap();
    input.write_all(b"typed words\n").await.unwrap();
    input.shutdown().await.unwrap();
    drop(input);
    let mut echoed = String::new();
    output.read_to_string(&mut echoed).await.unwrap();
    running.await.unwrap().unwrap();
    ended_entry(&db, &typed).await;
    let cast = ok(&db, &["recording", "export", &typed]);
    assert!(events(&cast).iter().any(|(_, code, data)| code == "i" && data == "typed words\n"), "{cast}");

    // A forward: what moved, never the bytes.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = echo.accept().await {
            let mut got = [0u8; 5];
            let _ = socket.read_exact(&mut got).await;
            let _ = socket.write_all(b"pong!").await;
        }
    });
    let back = session_test_kit::forward_echo(&connection, "127.0.0.1", port, b"ping!").await.unwrap();
    assert_eq!(back, b"pong!");
    connection.close().await;
    // The forward's entry gets its record once the relay has ended the channel, a moment after
    // the client saw it end.
    let kind = format!("forward: 127.0.0.1:{port}");
    let is_ended_forward =
        |r: &Value| r["kind"] == kind.as_str() && r["session"]["bytes_to_instance"].is_u64();
    let mut listing = Value::Null;
    for _ in 0..1000 {
        listing = serde_json::from_str(&ok(&db, &["recording", "list", "-o", "json"])).unwrap();
        if listing["recordings"].as_array().unwrap().iter().any(is_ended_forward) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recordings = listing["recordings"].as_array().unwrap();
    let forward = recordings.iter().find(|r| is_ended_forward(r)).expect("the ended forward is listed");
    assert_eq!(forward["mode"], "metadata");
    assert_eq!(
        (
            forward["session"]["bytes_to_instance"].as_u64(),
            forward["session"]["bytes_from_instance"].as_u64()
        ),
        (Some(5), Some(5))
    );
    assert!(
        !recordings.iter().any(|r| r["id"] == off.as_str()),
        "an account that records nothing lists nothing"
    );

    // The policy: carol may read only her own sessions' recordings; dave, those on box.
    let users = [
        (
            "carol",
            r#"{"Effect": "Allow", "Action": "session:ReadRecording", "Resource": "*",
                       "Condition": {"StringEquals": {"session:SessionOwner": "carol"}}}"#,
        ),
        ("dave", r#"{"Effect": "Allow", "Action": "session:ReadRecording", "Resource": "*:instance/box"}"#),
    ];
    let mut relays = Vec::new();
    for (user, statement) in users {
        ok(&db, &["user", "add", user]);
        let policy = dir.join(format!("{user}.json"));
        std::fs::write(&policy, format!(r#"{{"Version": "1", "Statement": [{statement}]}}"#)).unwrap();
        ok(&db, &["policy", "put", user, policy.to_str().unwrap()]);
        ok(&db, &["policy", "attach", user, user]);
        relays.push(Relay::new(&url, ok(&db, &["token", "create", user]).trim()));
    }
    let listed = |relay: Relay| async move {
        let listing = ask(&relay, "/v1/recordings").await.unwrap();
        listing["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(listed(relays[0].clone()).await.is_empty(), "carol sees none of ops's");
    let daves = listed(relays[1].clone()).await;
    assert!(daves.contains(&typed) && daves.contains(&metadata), "{daves:?}");
    let refused = stream(&relays[0], &format!("/v1/recordings/{typed}")).await.expect_err("carol may not");
    assert!(
        refused.contains("403") && refused.contains("for a session of ops: no policy allows it"),
        "{refused}"
    );

    // The stream: the description, then the chunks, which make up the file; from an offset,
    // the chunk that holds it on.
    let messages = stream(&relays[1], &format!("/v1/recordings/{typed}")).await.unwrap();
    let head: Value = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!((head["recording"]["id"].as_str(), head["from"].as_u64()), (Some(typed.as_str()), Some(0)));
    assert_eq!(messages[1..].concat(), cast);
    let second = messages[1].len() as u64 + 1;
    let later = stream(&relays[1], &format!("/v1/recordings/{typed}?from={second}")).await.unwrap();
    let head: Value = serde_json::from_str(&later[0]).unwrap();
    assert_eq!(head["from"].as_u64(), Some(messages[1].len() as u64), "rounded down to its chunk");
    assert_eq!(later[1..].concat(), messages[2..].concat());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The text messages of `path` at the relay, as `relay`'s user; a refused handshake's words.
async fn stream(relay: &Relay, path: &str) -> Result<Vec<String>, String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}{path}", relay.url).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {}", relay.token).parse().unwrap());
    let (mut ws, _) =
        Trust::system().dial_with(request, Default::default()).await.map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    while let Some(message) = ws.next().await {
        match message.map_err(|e| e.to_string())? {
            tokio_tungstenite::tungstenite::Message::Text(text) => messages.push(text.as_str().to_owned()),
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(messages)
}

/// `path`'s one JSON answer.
async fn ask(relay: &Relay, path: &str) -> Result<Value, String> {
    let messages = stream(relay, path).await?;
    serde_json::from_str(messages.first().ok_or("no answer")?).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_progress_is_watched_as_it_goes() {
    let _alone = ALONE.lock().await;
    let dir = scratch("follow");
    let (_served, ops, _db, _agent) = relay(&dir, &[]).await;
    let connection = Connection::connect(&ops, "box").await.unwrap();
    let (io, input, mut output, _errors) = pipes();
    drop(input);
    let (told, session) = tokio::sync::oneshot::channel();
    let kind = exec("echo first; sleep 1.5; echo second; sleep 1.5; echo third");
    let opened = connection.clone();
    let running = tokio::spawn(async move { opened.open_with_session(kind, io, told).await });
    let id = session.await.unwrap().expect("a session id");
    let mut seen = String::new();
    session_test_kit::read_until(&mut output, &mut seen, "first").await;
    // Watched from while it runs: the stream goes on until the recording's end.
    let messages = stream(&ops, &format!("/v1/recordings/{id}?follow=1")).await.unwrap();
    let mut rest = String::new();
    output.read_to_string(&mut rest).await.unwrap();
    running.await.unwrap().unwrap();
    let cast = messages[1..].concat();
    assert_eq!(output_of(&cast), "first\nsecond\nthird\n");
    assert!(cast.trim_end().ends_with("\"x\", \"0\"]"), "to its end: {cast}");
    assert!(messages.len() > 3, "chunks as they were written: {messages:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
