//! The recorder, the writer and the reader together, in process: what a session's events
//! become on disk, the bounds, and what reading finds of a changed recording.

use std::path::Path;
use std::time::{Duration, Instant};

use session_proto::{Env, ExitStatus, OpenKind, Pty, WindowSize};

use super::read::{ReadError, Recording};
use super::*;
use crate::audit::{Kind, Outcome, Record};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recording-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn size(cols: u16, rows: u16) -> WindowSize {
    WindowSize { cols, rows, width_px: 0, height_px: 0 }
}

/// Recordings into `dir`, the queue bounded at `queue` bytes.
fn recordings(dir: &Path, queue: usize) -> (Recordings, Store) {
    let store = Store::in_memory().unwrap();
    let mut config = Config::new(dir.to_owned());
    config.queue_bytes = queue;
    (Recordings::start(store.clone(), config).unwrap(), store)
}

/// A shell session's recorder, with its id.
fn shell(recordings: &Recordings, id: &str) -> Recorder {
    let kind = OpenKind::Shell { pty: Pty { term: "xterm", size: size(80, 24) }, env: Env::EMPTY };
    let session =
        Session { id, user: "alice", instance: "i-1", account: "default", kind: &kind, describe: "shell" };
    recordings.recorder(&session, Settings::default())
}

/// The session's end, as the audit writes it.
fn end(recordings: &Recordings, id: &str, outcome: Outcome) {
    let record = Record {
        session: Some(id.to_owned()),
        resource: Some("srn:session:local:default:instance/i-1".to_owned()),
        recording: Some("full".to_owned()),
        ..Record::new(Kind::Session, outcome)
    };
    ended(&recordings.tap().unwrap(), &record);
}

/// The entry of `id` once the writer ended it.
fn finished(store: &Store, id: &str) -> index::Entry {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(entry) = index::get(store, id).unwrap().filter(|e| e.chunks.is_some()) {
            return entry;
        }
        assert!(Instant::now() < deadline, "recording {id} never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn exported(entry: &index::Entry) -> String {
    let mut out = Vec::new();
    Recording::of(entry).unwrap().export(false, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_session_becomes_a_header_its_events_and_a_verified_chain() {
    let dir = scratch("events");
    let (recordings, store) = recordings(&dir, 1 << 20);
    let recorder = shell(&recordings, "alice-0000000000000001");
    recorder.output(b"caf\xc3");
    recorder.output(b"\xa9 \xff\n");
    recorder.input(b"not recorded: input is off");
    recorder.resize(size(100, 30));
    recorder.exit(ExitStatus::Code(3));
    end(&recordings, "alice-0000000000000001", Outcome::Ended);
    drop(recorder);
    let entry = finished(&store, "alice-0000000000000001");
    let cast = exported(&entry);
    let lines: Vec<&str> = cast.lines().collect();
    let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["version"], 3);
    assert_eq!(header["term"], serde_json::json!({"cols": 80, "rows": 24, "type": "xterm"}));
    let events: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|line| match parse_line(line).unwrap() {
            Line::Event { code, data, .. } => (code, data),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected = [("o", "caf"), ("o", "é \u{fffd}\n"), ("r", "100x30"), ("x", "3")];
    assert_eq!(events, expected.map(|(c, d)| (c.to_owned(), d.to_owned())));
    let mut recording = Recording::of(&entry).unwrap();
    let verified = recording.verify().unwrap();
    assert!(verified.ended && verified.unchained == 0 && verified.unrecorded == 0);
    Recording::check_entry(&verified, &entry).unwrap();
    assert_eq!(entry.record.as_ref().unwrap()["outcome"], "ended");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_queue_drops_and_counts_and_the_gap_is_marked_where_it_was() {
    let dir = scratch("gap");
    // Room for one message of 100 bytes at most, whatever the writer does.
    let (recordings, store) = recordings(&dir, 300);
    let recorder = shell(&recordings, "alice-0000000000000002");
    let mut sent = 0u64;
    for _ in 0..1000 {
        recorder.output(&[b'a'; 100]);
        sent += 100;
    }
    drop(recorder);
    end(&recordings, "alice-0000000000000002", Outcome::Ended);
    let entry = finished(&store, "alice-0000000000000002");
    let cast = exported(&entry);
    let mut recorded = 0u64;
    let mut marked = 0u64;
    for line in cast.lines().skip(1) {
        if let Line::Event { code, data, .. } = parse_line(line).unwrap() {
            match code.as_str() {
                "o" => recorded += data.len() as u64,
                "m" => {
                    let n: u64 = data
                        .strip_prefix("not recorded: ")
                        .unwrap()
                        .split(' ')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    marked += n;
                }
                _ => {}
            }
        }
    }
    assert!(marked > 0, "the queue of 300 bytes must have dropped: {cast}");
    assert_eq!(recorded + marked, sent, "every byte recorded or marked");
    assert_eq!(entry.unrecorded, marked);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_the_instance_refused_leaves_nothing() {
    let dir = scratch("refused");
    let (recordings, store) = recordings(&dir, 1 << 20);
    let recorder = shell(&recordings, "alice-0000000000000003");
    end(&recordings, "alice-0000000000000003", Outcome::Refused);
    drop(recorder);
    // A later session's end says the writer has taken everything before it.
    let later = shell(&recordings, "alice-0000000000000004");
    drop(later);
    finished(&store, "alice-0000000000000004");
    assert_eq!(index::get(&store, "alice-0000000000000003").unwrap(), None);
    assert!(!dir.join("alice-0000000000000003.cast").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A recording of several chunks: 8 MB of lines of 4 KiB, well past a chunk of 64 KiB, and
/// past several of 1 MiB, should the writer be behind.
fn long_recording(dir: &Path, id: &str) -> (index::Entry, Vec<u8>) {
    let (recordings, store) = recordings(dir, 64 << 20);
    let recorder = shell(&recordings, id);
    for i in 0..2000 {
        recorder.output(format!("{i:04} {}\n", "x".repeat(4090)).as_bytes());
    }
    drop(recorder);
    end(&recordings, id, Outcome::Ended);
    let entry = finished(&store, id);
    let bytes = std::fs::read(entry.path.as_ref().unwrap()).unwrap();
    (entry, bytes)
}

#[test]
fn reads_start_at_the_chunk_of_an_offset_or_a_time_and_check_each_chunk() {
    let dir = scratch("seek");
    let (entry, bytes) = long_recording(&dir, "alice-0000000000000005");
    let mut recording = Recording::of(&entry).unwrap();
    let chunks = recording.chunks().to_vec();
    assert!(chunks.len() >= 5, "{} chunks", chunks.len());
    assert!(
        chunks.iter().all(|c| c.len as usize <= CHUNK_BYTES * BUSY_CHUNKS),
        "every chunk within its bound"
    );
    let middle = &chunks[3];
    assert_eq!(recording.chunk_at(middle.offset + 10), Some(3));
    assert_eq!(recording.chunk_at(bytes.len() as u64), None);
    assert_eq!(recording.chunk_at_time(middle.micros), 3.max(recording.chunk_at_time(middle.micros)));
    assert_eq!(recording.chunk_at_time(0), 0);
    let read = recording.read(3).unwrap();
    assert_eq!(read, bytes[middle.offset as usize..(middle.offset + middle.len) as usize]);
    assert!(read.starts_with(b"[") && read.ends_with(b"\n"), "a chunk is whole lines");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_changed_moved_or_cut_chunk_is_named() {
    let dir = scratch("tamper");
    let (entry, original) = long_recording(&dir, "alice-0000000000000006");
    let path = entry.path.clone().unwrap();
    let verify = || Recording::of(&entry).and_then(|mut r| r.verify());

    let mut changed = original.clone();
    let chunk = Recording::of(&entry).unwrap().chunks()[2].clone();
    changed[chunk.offset as usize + 20] ^= 1;
    std::fs::write(&path, &changed).unwrap();
    assert!(matches!(verify(), Err(ReadError::Changed { chunk: 2, .. })), "{:?}", verify());
    let mut out = Vec::new();
    assert!(Recording::of(&entry).unwrap().export(true, &mut out).is_err());
    assert!(out.is_empty(), "nothing of it exported");

    // A chunk's bytes removed: every chunk after it has moved.
    let mut removed = original[..chunk.offset as usize].to_vec();
    removed.extend_from_slice(&original[(chunk.offset + chunk.len) as usize..]);
    std::fs::write(&path, &removed).unwrap();
    assert!(matches!(verify(), Err(ReadError::Changed { chunk: 2, .. })), "{:?}", verify());

    // Its chain line removed too: the chain breaks there.
    let chain_path = path.with_extension("chain");
    let chain = std::fs::read_to_string(&chain_path).unwrap();
    let without: Vec<&str> = chain.lines().filter(|l| !l.starts_with("{\"chunk\":2,")).collect();
    std::fs::write(&chain_path, without.join("\n") + "\n").unwrap();
    assert!(matches!(verify(), Err(ReadError::Broken { chunk: 2, .. })), "{:?}", verify());

    // The end cut off, chain and all, its end line too: the chain verifies, the store does not.
    std::fs::write(&path, &original).unwrap();
    let kept: Vec<&str> = chain.lines().take(4).collect();
    std::fs::write(&chain_path, kept.join("\n") + "\n").unwrap();
    let verified = verify().unwrap();
    assert!(!verified.ended && verified.unchained > 0);
    assert!(matches!(Recording::check_entry(&verified, &entry), Err(ReadError::Truncated { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_past_its_limit_stops_and_says_how_much_it_left_out() {
    let dir = scratch("limit");
    let store = Store::in_memory().unwrap();
    let mut config = Config::new(dir.clone());
    config.max_recording = 200 << 10;
    let recordings = Recordings::start(store.clone(), config).unwrap();
    let recorder = shell(&recordings, "alice-0000000000000007");
    let line = [b'z'; 1000];
    for _ in 0..1000 {
        recorder.output(&line);
    }
    recorder.exit(ExitStatus::Code(0));
    drop(recorder);
    end(&recordings, "alice-0000000000000007", Outcome::Ended);
    let entry = finished(&store, "alice-0000000000000007");
    let cast = exported(&entry);
    assert!(cast.len() as u64 <= (200 << 10) + 1024, "{} bytes", cast.len());
    let recorded: usize = cast
        .lines()
        .skip(1)
        .filter_map(|l| match parse_line(l).unwrap() {
            Line::Event { code, data, .. } if code == "o" => Some(data.len()),
            _ => None,
        })
        .sum();
    assert_eq!(recorded as u64 + entry.unrecorded, 1_000_000);
    assert!(cast.contains("recording limit of 204800 bytes reached"));
    assert!(
        cast.contains(&format!("in all, {} bytes of output and input were not recorded", entry.unrecorded))
    );
    assert!(cast.trim_end().ends_with("\"x\", \"0\"]"), "the exit is written past the limit");
    let _ = std::fs::remove_dir_all(&dir);
}
