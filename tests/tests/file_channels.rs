//! File channels end to end (spec 5.19, 11.6, 12.11): a client speaking the protocol by hand,
//! through a real relay, to a real agent whose file workers are real processes, on real files.

use core::time::Duration;

use session_proto::connection::{Config, Role};
use session_proto::{Entry, FileEvent, FileRequest, OpenKind, Record, Stream};
use session_test_kit::raw::Raw;
use session_test_kit::system::System;
use sha2::{Digest as _, Sha256};

fn files_config() -> Config {
    Config { files: true, ..Config::new(Role::Initiator) }
}

async fn system() -> System {
    let mut system = System::start(None).await;
    system.agent("i-files").await;
    system
}

async fn connect(system: &System, token: &str) -> Raw {
    Raw::connect(&system.url, token, "i-files", files_config()).await
}

/// What a File channel brought, in order: its File events in words, then its Data.
struct Answer {
    events: Vec<String>,
    data: Vec<u8>,
}

/// Opens `request` and reads until the channel closes (or is refused), sending `upload` (then
/// its End) once the agent's Start arrives.
async fn ask(raw: &mut Raw, request: FileRequest<'_>, upload: Option<&[u8]>) -> Answer {
    let channel = raw.conn.open(&OpenKind::File { request }).expect("open");
    raw.flush().await;
    let before = raw.output.len();
    let mut events = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            for event in raw.step().await {
                if event.starts_with("Refused") {
                    events.push(event);
                    return;
                }
                if event.starts_with("File") {
                    events.push(event.clone());
                }
                if event.starts_with("File") && event.contains("Start") {
                    if let Some(bytes) = upload {
                        let mut out = vec![0; raw.conn.transmit_buffer_len()];
                        let mut sent = 0;
                        while sent < bytes.len() {
                            let went = raw
                                .conn
                                .send(channel, Stream::Stdin, &bytes[sent..], &mut out)
                                .expect("send");
                            if went.written == 0 {
                                // Out of credit: the agent's answers bring more.
                                raw.step().await;
                                continue;
                            }
                            sent += went.payload;
                            raw.ws_send(&out[..went.written]).await;
                        }
                        let sha256 = Sha256::digest(bytes).into();
                        let end = FileEvent::End { size: bytes.len() as u64, sha256 };
                        raw.conn.file(channel, &end).expect("End");
                        raw.conn.eof(channel).expect("Eof");
                        raw.flush().await;
                    }
                }
                if event == format!("Closed {{ channel: {channel} }}") {
                    return;
                }
                if event.starts_with("Eof") {
                    let _ = raw.conn.close(channel);
                    raw.flush().await;
                }
            }
        }
    })
    .await;
    assert!(done.is_ok(), "the channel ended in time: {events:?}");
    Answer { events, data: raw.output[before..].to_vec() }
}

fn entries(listing: &[u8]) -> Vec<(String, u8)> {
    let mut rest = listing;
    let mut names = Vec::new();
    while let Ok(Record::Entry(entry, len)) = Entry::decode_record(rest) {
        names.push((String::from_utf8_lossy(entry.name).into_owned(), entry.kind.0));
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "the listing is whole records");
    names
}

fn path(p: &std::path::Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt as _;
    p.as_os_str().as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_states_the_files_sha256_after_its_bytes() {
    let system = system().await;
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &content).unwrap();
    let mut raw = connect(&system, system.token()).await;
    let file = path(&dir.path().join("big.bin"));
    let answer = ask(&mut raw, FileRequest::Read { path: &file, offset: 0, prefix: None }, None).await;
    assert_eq!(answer.data.len(), content.len());
    assert!(answer.data == content, "the bytes arrive whole and in order");
    assert!(answer.events[0].contains("Start { offset: 0, size: 3000000"), "{:?}", answer.events);
    let sha256 = hex::encode(Sha256::digest(&content));
    let end = answer.events.iter().find(|e| e.contains("End")).expect("an End");
    assert!(end.contains("size: 3000000"), "{end}");
    let stated: Vec<String> = Sha256::digest(&content).iter().map(|b| b.to_string()).collect();
    assert!(end.contains(&stated.join(", ")), "End carries the SHA-256 {sha256}: {end}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_resumes_from_a_verified_prefix_and_restarts_from_a_wrong_one() {
    let system = system().await;
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("f"), &content).unwrap();
    let file = path(&dir.path().join("f"));
    let mut raw = connect(&system, system.token()).await;
    let prefix = Some(Sha256::digest(&content[..40_000]).into());
    let answer = ask(&mut raw, FileRequest::Read { path: &file, offset: 40_000, prefix }, None).await;
    assert!(answer.events[0].contains("offset: 40000"), "{:?}", answer.events);
    assert!(answer.data == content[40_000..], "only the rest is sent");
    let wrong = Some([0u8; 32]);
    let answer = ask(&mut raw, FileRequest::Read { path: &file, offset: 40_000, prefix: wrong }, None).await;
    assert!(answer.events[0].contains("offset: 0"), "{:?}", answer.events);
    assert!(answer.data == content, "all of it, from the start");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_lands_whole_with_its_mode_and_a_listing_shows_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let system = system().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("up load.bin");
    let content: Vec<u8> = (0..1_500_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let mut raw = connect(&system, system.token()).await;
    let request = FileRequest::Write {
        path: &path(&target),
        size: content.len() as u64,
        mode: 0o640,
        overwrite: false,
        offset: 0,
        prefix: None,
    };
    let answer = ask(&mut raw, request, Some(&content)).await;
    assert!(answer.events.iter().any(|e| e.contains("End { size: 1500000")), "{:?}", answer.events);
    assert!(std::fs::read(&target).unwrap() == content);
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);

    // Without overwrite, a second upload is refused, and the file stays as it was.
    let answer = ask(&mut raw, request, Some(b"other")).await;
    assert!(
        answer.events.iter().any(|e| e.contains("Failed") && e.contains("EXISTS")),
        "{:?}",
        answer.events
    );
    assert!(std::fs::read(&target).unwrap() == content);

    let answer = ask(&mut raw, FileRequest::List { path: &path(dir.path()) }, None).await;
    assert_eq!(entries(&answer.data), [("up load.bin".to_owned(), 0)]);
    assert!(answer.events.iter().any(|e| e.contains("Done")), "{:?}", answer.events);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_confines_files_to_a_prefix_and_the_refusal_names_the_path() {
    let system = system().await;
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("logs");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::write(allowed.join("app.log"), b"ok\n").unwrap();
    std::fs::write(dir.path().join("secret"), b"no\n").unwrap();
    let prefix = format!("{}/*", allowed.display());
    let policy = format!(
        r#"{{"Version": "1", "Statement": {{"Effect": "Allow", "Action": "session:ReadFile", "Resource": "*",
           "Condition": {{"StringLike": {{"session:FilePath": "{prefix}"}}}}}}}}"#
    );
    let reader = system.user("reader", &policy);
    let mut raw = connect(&system, &reader.token).await;
    let log = path(&allowed.join("app.log"));
    let answer = ask(&mut raw, FileRequest::Read { path: &log, offset: 0, prefix: None }, None).await;
    assert_eq!(answer.data, b"ok\n");
    let secret = path(&dir.path().join("secret"));
    let answer = ask(&mut raw, FileRequest::Read { path: &secret, offset: 0, prefix: None }, None).await;
    let refusal = &answer.events[0];
    assert!(refusal.starts_with("Refused") && refusal.contains("PROHIBITED"), "{refusal}");
    assert!(refusal.contains("may not session:ReadFile") && refusal.contains("secret"), "{refusal}");
    // Reading grants no writing.
    let write =
        FileRequest::Write { path: &log, size: 1, mode: 0o600, overwrite: true, offset: 0, prefix: None };
    let answer = ask(&mut raw, write, Some(b"x")).await;
    assert!(answer.events[0].contains("session:WriteFile"), "{:?}", answer.events);
    let audit = system.audit_until(|a| a.contains("file read: ")).await;
    assert!(audit.contains("\"file_outcome\":\"ok\""), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_cut_mid_way_leaves_no_file_and_resumes_without_resending() {
    use std::os::unix::ffi::OsStrExt as _;
    let system = system().await;
    let dir = tempfile::tempdir().unwrap();
    // A name that is not UTF-8, with a space.
    let target = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9 menu.bin"));
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 239) as u8).collect();
    let half = content.len() / 2;
    let request = |offset: u64, prefix| FileRequest::Write {
        path: Box::leak(path(&target).into_boxed_slice()),
        size: content.len() as u64,
        mode: 0o600,
        overwrite: false,
        offset,
        prefix,
    };

    // Half the bytes, then the connection goes: the channel ends without an End.
    let mut raw = connect(&system, system.token()).await;
    let channel = raw.conn.open(&OpenKind::File { request: request(0, None) }).unwrap();
    raw.flush().await;
    raw.until(|e| e.starts_with("File") && e.contains("Start"), 30).await;
    let mut out = vec![0; raw.conn.transmit_buffer_len()];
    let mut sent = 0;
    while sent < half {
        let went = raw.conn.send(channel, Stream::Stdin, &content[sent..half], &mut out).unwrap();
        if went.written == 0 {
            raw.step().await;
            continue;
        }
        sent += went.payload;
        raw.ws_send(&out[..went.written]).await;
    }
    // Everything sent reached the worker once its credit came back.
    let partial = dir.path().join(std::ffi::OsStr::from_bytes(b".caf\xe9 menu.bin.session-partial"));
    for _ in 0..500 {
        if std::fs::metadata(&partial).is_ok_and(|m| m.len() as usize == half) {
            break;
        }
        // Credit may all be back while the worker still writes what its pipe holds.
        let _ = tokio::time::timeout(Duration::from_millis(20), raw.step()).await;
    }
    drop(raw);
    for _ in 0..200 {
        if !session_test_kit::raw::running("__file-worker") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!target.exists(), "no file under the target's name");
    assert_eq!(std::fs::metadata(&partial).unwrap().len() as usize, half, "the partial upload is kept");

    // Continued: the agent checks the prefix and asks only for the rest.
    let mut raw = connect(&system, system.token()).await;
    let prefix = Some(Sha256::digest(&content[..half]).into());
    let channel = raw.conn.open(&OpenKind::File { request: request(half as u64, prefix) }).unwrap();
    raw.flush().await;
    let start = raw.until(|e| e.starts_with("File") && e.contains("Start"), 30).await;
    assert!(start.contains(&format!("offset: {half}")), "{start}");
    let mut sent = half;
    while sent < content.len() {
        let went = raw.conn.send(channel, Stream::Stdin, &content[sent..], &mut out).unwrap();
        if went.written == 0 {
            raw.step().await;
            continue;
        }
        sent += went.payload;
        raw.ws_send(&out[..went.written]).await;
    }
    let end = FileEvent::End { size: content.len() as u64, sha256: Sha256::digest(&content).into() };
    raw.conn.file(channel, &end).unwrap();
    raw.conn.eof(channel).unwrap();
    raw.flush().await;
    let answer =
        raw.until(|e| e.starts_with("File") && (e.contains("End") || e.contains("Failed")), 30).await;
    assert!(answer.contains("End { size: 2000000"), "{answer}");
    assert!(std::fs::read(&target).unwrap() == content, "the whole file, its hash the client's");
    assert!(!partial.exists(), "the partial upload became the file");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_client_opens_a_downloads_window_to_a_mib_and_no_further() {
    use session_client::{Connection, FileNews};
    use session_proto::owned::{OwnedFileEvent, OwnedFileRequest};

    const FILE_WINDOW: usize = 1 << 20;
    let system = system().await;
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..3 * FILE_WINDOW as u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &content).unwrap();
    let connection = Connection::connect(&system.client, "i-files").await.unwrap();
    let file = path(&dir.path().join("big.bin"));
    let read = FileRequest::Read { path: &file, offset: 0, prefix: None };
    let mut channel = connection.open_file(OwnedFileRequest::new(&read).unwrap()).await.unwrap();

    // Nothing consumed: the agent sends until the channel's window is used up. The Hello
    // announced a quarter of it; what came beyond is the client's grant at the Accept.
    let mut data = Vec::new();
    let unconsumed = tokio::time::timeout(Duration::from_secs(60), async {
        while data.len() < FILE_WINDOW {
            if let FileNews::Data(bytes) = channel.next().await.unwrap() {
                data.extend_from_slice(&bytes);
            }
        }
    })
    .await;
    assert!(unconsumed.is_ok(), "the download stopped at {} bytes before anything was consumed", data.len());
    // Records of 64 KiB fill the window exactly: one byte more would have broken the relay's
    // flow control toward this client (spec 8.4).
    assert_eq!(data.len(), FILE_WINDOW);

    // Consumed, the credit comes back and the rest follows.
    channel.consume(data.len());
    let mut end = None;
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match channel.next().await.unwrap() {
                FileNews::Data(bytes) => {
                    data.extend_from_slice(&bytes);
                    channel.consume(bytes.len());
                }
                FileNews::File(OwnedFileEvent::End { size, sha256 }) => end = Some((size, sha256)),
                FileNews::Closed => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(finished.is_ok(), "the download stopped at {} bytes", data.len());
    assert!(data == content, "the bytes arrive whole and in order");
    assert_eq!(end, Some((content.len() as u64, Sha256::digest(&content).into())));
}
