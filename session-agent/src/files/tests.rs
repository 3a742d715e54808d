//! The agent's side, [`Worker`], against the real worker: the agent's binary, which cargo
//! builds beside this test binary for the crate's integration tests. The worker itself is
//! tested in depth by `tests/files_worker.rs`.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::PathBuf;

use ring::digest::{SHA256, digest};

use super::entry::{Kind, decode as decode_entry};
use super::error::{Code, Failure};
use super::*;

/// The agent's binary: `target/<profile>/session-agent`, this binary being
/// `target/<profile>/deps/session_agent-<hash>`.
fn agent_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("session-agent");
    binary.exists().then_some(binary)
}

/// Starts a worker for `request` as the test's own user, or `None` (skipping the test) when the
/// binary was not built, as with `cargo test --lib`.
async fn spawn(request: &Request) -> Option<Worker> {
    let Some(binary) = agent_binary() else {
        eprintln!("skipped: no session-agent binary beside the test (cargo test builds it)");
        return None;
    };
    let me = LoginUser::resolve(None, true).expect("the test's user");
    Some(Worker::spawn_program(&binary, &me, request).await.expect("the worker starts"))
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(digest(&SHA256, bytes).as_ref()).unwrap()
}

fn path_of(path: &std::path::Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}

#[test]
fn normal_paths() {
    for good in [&b"/"[..], b"/a", b"/a b/c", b"/\xff/.x/..y"] {
        assert!(is_normal(good), "{good:?}");
    }
    for bad in [&b""[..], b"a", b"//", b"/a/", b"/a//b", b"/./a", b"/a/..", b"/a\0b"] {
        assert!(!is_normal(bad), "{bad:?}");
    }
}

#[tokio::test]
async fn a_download_through_the_worker_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let request = Request::Read { path: path_of(&path), offset: 70_000, prefix: Some(sha(&data[..70_000])) };
    let Some(mut worker) = spawn(&request).await else { return };
    let Some(Record::Start(start)) = worker.next().await.unwrap() else { panic!("no START") };
    assert_eq!((start.offset, start.size), (70_000, 200_000));
    let mut got = Vec::new();
    let end = loop {
        match worker.next().await.unwrap() {
            Some(Record::Data(bytes)) => {
                assert!(bytes.len() <= pipe::MAX_BODY);
                got.extend_from_slice(bytes);
            }
            Some(Record::End(end)) => break end,
            other => panic!("{other:?}"),
        }
    };
    assert!(got == data[70_000..]);
    assert_eq!(end, End { size: 200_000, sha256: sha(&data) });
    assert!(worker.next().await.unwrap().is_none(), "the worker's output ends after END");
    assert!(worker.wait().await.unwrap().success());
}

#[tokio::test]
async fn an_upload_cancelled_and_resumed_through_the_worker_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_of(&dir.path().join("up"));
    let data = vec![7u8; 150_000];
    let write = |offset, prefix| Request::Write {
        path: path.clone(),
        size: 150_000,
        mode: 0o640,
        overwrite: false,
        offset,
        prefix,
    };
    let Some(mut worker) = spawn(&write(0, None)).await else { return };
    assert!(matches!(worker.next().await.unwrap(), Some(Record::Start(Start { offset: 0, .. }))));
    worker.send_data(&data[..100_000]).await.unwrap();
    worker.close_input();
    assert!(worker.next().await.unwrap().is_none(), "a cancelled upload says nothing");
    assert!(worker.wait().await.unwrap().success());

    let Some(mut worker) = spawn(&write(100_000, Some(sha(&data[..100_000])))).await else { return };
    assert!(matches!(worker.next().await.unwrap(), Some(Record::Start(Start { offset: 100_000, .. }))));
    worker.send_data(&data[100_000..]).await.unwrap();
    worker.send_end(150_000, sha(&data)).await.unwrap();
    assert_eq!(worker.next().await.unwrap(), Some(Record::End(End { size: 150_000, sha256: sha(&data) })));
    let written = dir.path().join("up");
    assert!(std::fs::read(&written).unwrap() == data);
    assert_eq!(std::fs::metadata(&written).unwrap().mode() & 0o777, 0o640);
}

#[tokio::test]
async fn failures_and_listings_through_the_worker_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), b"abc").unwrap();
    let Some(mut worker) = spawn(&Request::List { path: path_of(dir.path()) }).await else { return };
    let Some(Record::Data(body)) = worker.next().await.unwrap() else { panic!("no entries") };
    let (entry, used) = decode_entry(body).unwrap();
    assert_eq!((entry.name.as_slice(), entry.kind, entry.size, used), (&b"x"[..], Kind::File, 3, body.len()));
    assert_eq!(worker.next().await.unwrap(), Some(Record::Done));

    let missing = path_of(&dir.path().join("missing"));
    let Some(mut worker) = spawn(&Request::Remove { path: missing }).await else { return };
    let Some(Record::Failed(Failure { code, message })) = worker.next().await.unwrap() else {
        panic!("no failure")
    };
    assert_eq!((code, message.starts_with("not found: /")), (Code::NotFound, true));

    // A path not in normal form never reaches a worker.
    let me = LoginUser::resolve(None, true).unwrap();
    let bad = Request::Stat { path: b"/tmp/../etc".to_vec() };
    let refused = Worker::spawn_program(std::path::Path::new("/nonexistent"), &me, &bad).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
}

/// As root, the worker runs as the login user: `nobody` may not read root's file, and what it
/// uploads is its own.
#[tokio::test]
async fn the_worker_runs_as_the_login_user() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let Some(binary) = agent_binary() else { return };
    let nobody = LoginUser::resolve(Some("nobody"), false).expect("a nobody user");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"s").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let request = Request::Read { path: path_of(&secret), offset: 0, prefix: None };
    let mut worker = Worker::spawn_program(&binary, &nobody, &request).await.unwrap();
    let Some(Record::Failed(failure)) = worker.next().await.unwrap() else { panic!("read as root") };
    assert_eq!(failure.code, Code::PermissionDenied);

    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let target = dir.path().join("theirs");
    let request = Request::Write {
        path: path_of(&target),
        size: 1,
        mode: 0o600,
        overwrite: false,
        offset: 0,
        prefix: None,
    };
    let mut worker = Worker::spawn_program(&binary, &nobody, &request).await.unwrap();
    assert!(matches!(worker.next().await.unwrap(), Some(Record::Start(_))));
    worker.send_data(b"n").await.unwrap();
    worker.send_end(1, sha(b"n")).await.unwrap();
    assert!(matches!(worker.next().await.unwrap(), Some(Record::End(_))));
    assert_eq!(std::fs::metadata(&target).unwrap().uid(), 65534);
}
