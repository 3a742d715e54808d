//! The agent's file worker (`session-agent __file-worker`), driven over its pipes in the
//! framing `src/files/pipe.rs` documents, written out again here from that description: real
//! files in real directories, real processes, killed for real.
//!
//! Run as root, the tests that need another user run the worker as `nobody`, as an agent
//! running as root does for its login user; run as anyone else, they test what they can.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufReader, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use ring::digest::{SHA256, digest};

const AGENT: &str = env!("CARGO_BIN_EXE_session-agent");

// Record tags.
const REQUEST: u8 = 1;
const START: u8 = 2;
const DATA: u8 = 3;
const END: u8 = 4;
const DONE: u8 = 5;
const FAILED: u8 = 6;
const MAX_BODY: usize = 64 * 1024;

// Error codes.
const NOT_FOUND: u32 = 1;
const PERMISSION_DENIED: u32 = 2;
const EXISTS: u32 = 3;
const NOT_A_DIRECTORY: u32 = 4;
const IS_A_DIRECTORY: u32 = 5;
const NOT_EMPTY: u32 = 7;
const MISMATCH: u32 = 8;
const IO: u32 = 10;

/// `nobody`'s uid and gid, the user the tests run as root use for a login user.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes).as_ref().try_into().unwrap()
}

/// Bytes that differ from offset to offset, so a misplaced chunk shows.
fn content(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// A directory of the test's own, which `nobody` may enter when the tests run as root.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

// Requests, as pipe.rs encodes them.
fn path_field(out: &mut Vec<u8>, path: &[u8]) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
}

fn prefix_field(out: &mut Vec<u8>, prefix: Option<[u8; 32]>) {
    match prefix {
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(&hash);
        }
        None => out.push(0),
    }
}

fn home() -> Vec<u8> {
    vec![0]
}

fn stat(path: &[u8]) -> Vec<u8> {
    let mut out = vec![1];
    path_field(&mut out, path);
    out
}

fn list(path: &[u8]) -> Vec<u8> {
    let mut out = vec![2];
    path_field(&mut out, path);
    out
}

fn read(path: &[u8], offset: u64, prefix: Option<[u8; 32]>) -> Vec<u8> {
    let mut out = vec![3];
    path_field(&mut out, path);
    out.extend_from_slice(&offset.to_le_bytes());
    prefix_field(&mut out, prefix);
    out
}

fn write(
    path: &[u8],
    size: u64,
    mode: u32,
    overwrite: bool,
    offset: u64,
    prefix: Option<[u8; 32]>,
) -> Vec<u8> {
    let mut out = vec![4];
    path_field(&mut out, path);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&mode.to_le_bytes());
    out.push(u8::from(overwrite));
    out.extend_from_slice(&offset.to_le_bytes());
    prefix_field(&mut out, prefix);
    out
}

fn mkdir(path: &[u8], mode: u32) -> Vec<u8> {
    let mut out = vec![5];
    path_field(&mut out, path);
    out.extend_from_slice(&mode.to_le_bytes());
    out
}

fn rename(from: &[u8], to: &[u8], overwrite: bool) -> Vec<u8> {
    let mut out = vec![6];
    path_field(&mut out, from);
    path_field(&mut out, to);
    out.push(u8::from(overwrite));
    out
}

fn remove(path: &[u8]) -> Vec<u8> {
    let mut out = vec![7];
    path_field(&mut out, path);
    out
}

fn chmod(path: &[u8], mode: u32) -> Vec<u8> {
    let mut out = vec![8];
    path_field(&mut out, path);
    out.extend_from_slice(&mode.to_le_bytes());
    out
}

/// What a worker sends, decoded.
#[derive(Debug, PartialEq, Eq)]
enum Rec {
    Start { offset: u64, size: u64, mode: u32, mtime: u64 },
    Data(Vec<u8>),
    End { size: u64, sha256: [u8; 32] },
    Done,
    Failed { code: u32, message: String },
}

fn u64_at(body: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(body[at..at + 8].try_into().unwrap())
}

fn u32_at(body: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(body[at..at + 4].try_into().unwrap())
}

/// A running worker. Dropping it kills it.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(request: &[u8]) -> Worker {
        Worker::spawn_as(request, None)
    }

    /// As `user` (uid and gid) if given, as the agent starts it for its login user.
    fn spawn_as(request: &[u8], user: Option<u32>) -> Worker {
        let mut cmd = Command::new(AGENT);
        cmd.arg("__file-worker").env_clear().current_dir("/").stdin(Stdio::piped()).stdout(Stdio::piped());
        if let Some(id) = user {
            cmd.uid(id).gid(id);
        }
        let mut child = cmd.spawn().expect("the worker starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut worker = Worker { child, stdin, stdout };
        worker.send(REQUEST, request);
        worker
    }

    fn send(&mut self, tag: u8, body: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(&[tag]).unwrap();
        stdin.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
        stdin.write_all(body).unwrap();
    }

    fn send_data(&mut self, data: &[u8]) {
        for chunk in data.chunks(MAX_BODY) {
            self.send(DATA, chunk);
        }
    }

    fn send_end(&mut self, size: u64, sha256: [u8; 32]) {
        let mut body = size.to_le_bytes().to_vec();
        body.extend_from_slice(&sha256);
        self.send(END, &body);
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next record, or `None` at the end of the worker's output.
    fn recv(&mut self) -> Option<Rec> {
        let mut header = [0u8; 5];
        let mut got = 0;
        while got < 5 {
            let n = self.stdout.read(&mut header[got..]).unwrap();
            if n == 0 {
                assert_eq!(got, 0, "output cut within a header");
                return None;
            }
            got += n;
        }
        let len = u32_at(&header, 1) as usize;
        assert!(len <= MAX_BODY, "a record of {len} bytes");
        let mut body = vec![0; len];
        self.stdout.read_exact(&mut body).unwrap();
        Some(match header[0] {
            START => {
                assert_eq!(len, 28);
                Rec::Start {
                    offset: u64_at(&body, 0),
                    size: u64_at(&body, 8),
                    mode: u32_at(&body, 16),
                    mtime: u64_at(&body, 20),
                }
            }
            DATA => Rec::Data(body),
            END => {
                assert_eq!(len, 40);
                Rec::End { size: u64_at(&body, 0), sha256: body[8..].try_into().unwrap() }
            }
            DONE => {
                assert_eq!(len, 0);
                Rec::Done
            }
            FAILED => {
                assert!(len - 4 <= 256, "a message of {} bytes", len - 4);
                Rec::Failed {
                    code: u32_at(&body, 0),
                    message: String::from_utf8(body[4..].to_vec()).unwrap(),
                }
            }
            tag => panic!("unknown tag {tag}"),
        })
    }

    /// Every record up to the end of the output, and the worker's exit code.
    fn rest(mut self) -> (Vec<Rec>, i32) {
        self.close_stdin();
        let mut records = Vec::new();
        while let Some(record) = self.recv() {
            records.push(record);
        }
        let status = self.child.wait().unwrap();
        (records, status.code().unwrap_or(-1))
    }

    fn expect_start(&mut self) -> (u64, u64, u32) {
        match self.recv() {
            Some(Rec::Start { offset, size, mode, .. }) => (offset, size, mode),
            other => panic!("not a START: {other:?}"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The records of a whole operation (nothing sent after the REQUEST).
fn run(request: &[u8]) -> Vec<Rec> {
    Worker::spawn(request).rest().0
}

/// The failure an operation ends with, asserting it sent nothing else.
fn failure(records: Vec<Rec>) -> (u32, String) {
    match <[Rec; 1]>::try_from(records) {
        Ok([Rec::Failed { code, message }]) => (code, message),
        Ok(other) => panic!("not a failure: {other:?}"),
        Err(records) => panic!("not one failure: {records:?}"),
    }
}

/// A download's START, data and END, asserting its shape.
fn download(records: Vec<Rec>) -> (u64, Vec<u8>, u64, [u8; 32]) {
    let mut records = records.into_iter();
    let Some(Rec::Start { offset, .. }) = records.next() else { panic!("no START") };
    let mut data = Vec::new();
    for record in records.by_ref() {
        match record {
            Rec::Data(bytes) => data.extend_from_slice(&bytes),
            Rec::End { size, sha256 } => {
                assert_eq!(records.next(), None, "records after END");
                return (offset, data, size, sha256);
            }
            other => panic!("{other:?} in a download"),
        }
    }
    panic!("no END")
}

/// Uploads `data` whole to `path` and returns the records after START.
fn upload(path: &[u8], data: &[u8], mode: u32, overwrite: bool) -> Vec<Rec> {
    let mut worker = Worker::spawn(&write(path, data.len() as u64, mode, overwrite, 0, None));
    match worker.recv() {
        Some(Rec::Start { offset: 0, .. }) => {}
        Some(other) => return vec![other],
        None => panic!("no answer"),
    }
    worker.send_data(data);
    worker.send_end(data.len() as u64, sha(data));
    worker.rest().0
}

fn partial(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.session-partial"))
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    name: Vec<u8>,
    kind: u8,
    size: u64,
    mode: u32,
    mtime: u64,
    target: Vec<u8>,
}

fn varint(buf: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = buf[0];
        *buf = &buf[1..];
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint too long")
}

fn field(buf: &mut &[u8]) -> Vec<u8> {
    let len = varint(buf) as usize;
    let (bytes, rest) = buf.split_at(len);
    *buf = rest;
    bytes.to_vec()
}

/// The entries of a HOME, STAT or LIST, asserting each DATA holds whole entries.
fn entries(records: Vec<Rec>) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut records = records.into_iter();
    for record in records.by_ref() {
        match record {
            Rec::Data(body) => {
                let mut buf = &body[..];
                while !buf.is_empty() {
                    let len = varint(&mut buf) as usize;
                    let (mut entry, rest) = buf.split_at(len);
                    buf = rest;
                    let name = field(&mut entry);
                    let kind = entry[0];
                    entry = &entry[1..];
                    let size = varint(&mut entry);
                    let mode = u32::try_from(varint(&mut entry)).unwrap();
                    let mtime = varint(&mut entry);
                    let target = field(&mut entry);
                    assert!(entry.is_empty());
                    out.push(Entry { name, kind, size, mode, mtime, target });
                }
            }
            Rec::Done => {
                assert_eq!(records.next(), None);
                return out;
            }
            other => panic!("{other:?} in a listing"),
        }
    }
    panic!("no DONE")
}

#[test]
fn a_download_sends_the_whole_file_and_its_hash() {
    let dir = scratch();
    let path = dir.path().join("data.bin");
    let data = content(300_000);
    fs::write(&path, &data).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let mut worker = Worker::spawn(&read(bytes(&path), 0, None));
    let start = worker.recv().unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(start, Rec::Start { offset: 0, size: 300_000, mode: 0o640, mtime: meta.mtime() as u64 });
    let (records, code) = worker.rest();
    assert_eq!(code, 0);
    let mut all = vec![start];
    all.extend(records);
    let (offset, got, size, hash) = download(all);
    assert_eq!((offset, size), (0, 300_000));
    assert!(got == data, "the bytes differ");
    assert_eq!(hash, sha(&data));

    // An empty file: START and END.
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    let (offset, got, size, hash) = download(run(&read(bytes(&empty), 0, None)));
    assert_eq!((offset, got.len(), size, hash), (0, 0, 0, sha(b"")));
}

#[test]
fn a_download_resumes_only_from_a_prefix_whose_hash_matches() {
    let dir = scratch();
    let path = dir.path().join("data.bin");
    let data = content(200_001);
    fs::write(&path, &data).unwrap();
    let p = bytes(&path);
    let at = 123_457;

    let (offset, got, size, hash) = download(run(&read(p, at as u64, Some(sha(&data[..at])))));
    assert_eq!((offset, size), (at as u64, data.len() as u64));
    assert!(got == data[at..], "the rest differs");
    assert_eq!(hash, sha(&data), "the hash of the whole file, prefix included");

    // A wrong prefix, no prefix, an offset past the end: from the start.
    let wrong = sha(&data[1..=at]);
    for request in [
        read(p, at as u64, Some(wrong)),
        read(p, at as u64, None),
        read(p, data.len() as u64 + 1, Some(sha(&data))),
    ] {
        let (offset, got, _, hash) = download(run(&request));
        assert_eq!(offset, 0);
        assert!(got == data);
        assert_eq!(hash, sha(&data));
    }
    // Resuming at the very end sends nothing but the check.
    let (offset, got, _, hash) = download(run(&read(p, data.len() as u64, Some(sha(&data)))));
    assert_eq!((offset, got.len(), hash), (data.len() as u64, 0, sha(&data)));
}

#[test]
fn a_download_of_what_is_not_a_readable_file_fails_clearly() {
    let dir = scratch();
    let missing = dir.path().join("missing");
    let (code, message) = failure(run(&read(bytes(&missing), 0, None)));
    assert_eq!(code, NOT_FOUND);
    assert_eq!(message, format!("not found: {}", missing.display()));

    let (code, _) = failure(run(&read(bytes(dir.path()), 0, None)));
    assert_eq!(code, IS_A_DIRECTORY);

    // A FIFO neither blocks the worker nor is read.
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (code, message) = failure(run(&read(bytes(&fifo), 0, None)));
    assert_eq!((code, message), (IO, format!("not a regular file: {}", fifo.display())));

    // Not absolute, or not in normal form.
    for path in [&b"relative"[..], b"/a/../b", b"/a//b", b"/a/", b"/a/./b", b""] {
        let (code, message) = failure(run(&read(path, 0, None)));
        assert_eq!(code, IO);
        assert!(message.starts_with("not an absolute path in normal form"), "{message}");
    }
}

#[test]
fn a_file_the_login_user_may_not_read_is_refused() {
    let dir = scratch();
    let secret = dir.path().join("secret");
    fs::write(&secret, b"top secret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    // As root, the file is root's and the worker runs as nobody, as for a login user; as
    // anyone else, the file is made unreadable to its own owner.
    let user = if is_root() {
        Some(NOBODY)
    } else {
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
        None
    };
    let (code, message) = failure(Worker::spawn_as(&read(bytes(&secret), 0, None), user).rest().0);
    assert_eq!(code, PERMISSION_DENIED);
    assert_eq!(message, format!("permission denied: {}", secret.display()));

    // Nor may the user write where it may not.
    let target = dir.path().join("upload");
    if let Some(user) = user {
        let (code, _) =
            failure(Worker::spawn_as(&write(bytes(&target), 1, 0o644, false, 0, None), Some(user)).rest().0);
        assert_eq!(code, PERMISSION_DENIED);
        assert!(!target.exists());
    }
}

#[test]
fn an_upload_lands_owned_by_the_login_user_with_the_mode_asked_for() {
    if !is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let dir = scratch();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let target = dir.path().join("owned");
    let data = content(1000);
    let mut worker = Worker::spawn_as(&write(bytes(&target), 1000, 0o604, false, 0, None), Some(NOBODY));
    assert_eq!(worker.expect_start(), (0, 1000, 0o604));
    worker.send_data(&data);
    worker.send_end(1000, sha(&data));
    let (records, code) = worker.rest();
    assert_eq!(records, [Rec::End { size: 1000, sha256: sha(&data) }]);
    assert_eq!(code, 0);
    let meta = fs::metadata(&target).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (NOBODY, NOBODY, 0o604));

    // HOME as nobody: its home directory does not exist.
    let (code, message) = failure(Worker::spawn_as(&home(), Some(NOBODY)).rest().0);
    assert_eq!((code, message.as_str()), (NOT_FOUND, "not found: /nonexistent"));
}

#[test]
fn an_upload_is_renamed_into_place_once_checked() {
    let dir = scratch();
    let target = dir.path().join("new file");
    let data = content(200_000);
    let records = upload(bytes(&target), &data, 0o640, false);
    assert_eq!(records, [Rec::End { size: 200_000, sha256: sha(&data) }]);
    assert!(fs::read(&target).unwrap() == data);
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o640, "the mode, whatever the umask");
    assert!(!partial(dir.path(), "new file").exists(), "no partial file left");

    // An empty file.
    let empty = dir.path().join("empty");
    assert_eq!(upload(bytes(&empty), b"", 0o600, false), [Rec::End { size: 0, sha256: sha(b"") }]);
    assert_eq!(fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn an_upload_overwrites_only_when_asked() {
    let dir = scratch();
    let target = dir.path().join("there");
    fs::write(&target, b"old").unwrap();

    let (code, message) = failure(upload(bytes(&target), b"new", 0o644, false));
    assert_eq!((code, message), (EXISTS, format!("already exists: {}", target.display())));
    assert_eq!(fs::read(&target).unwrap(), b"old");

    assert_eq!(upload(bytes(&target), b"new", 0o644, true), [Rec::End { size: 3, sha256: sha(b"new") }]);
    assert_eq!(fs::read(&target).unwrap(), b"new");

    // A file that appears while the upload runs is not replaced either: the rename says so.
    let late = dir.path().join("late");
    let mut worker = Worker::spawn(&write(bytes(&late), 3, 0o644, false, 0, None));
    worker.expect_start();
    worker.send_data(b"new");
    fs::write(&late, b"first").unwrap();
    worker.send_end(3, sha(b"new"));
    let (code, _) = failure(worker.rest().0);
    assert_eq!(code, EXISTS);
    assert_eq!(fs::read(&late).unwrap(), b"first");
    assert!(!partial(dir.path(), "late").exists());

    // A directory is never replaced.
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let (code, _) = failure(upload(bytes(&sub), b"x", 0o644, true));
    assert_eq!(code, IS_A_DIRECTORY);
}

#[test]
fn an_upload_needs_its_directory() {
    let dir = scratch();
    let (code, message) = failure(upload(bytes(&dir.path().join("no/file")), b"x", 0o644, false));
    assert_eq!((code, message), (NOT_FOUND, format!("not found: {}", dir.path().join("no").display())));
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let (code, _) = failure(upload(bytes(&file.join("x")), b"x", 0o644, false));
    assert_eq!(code, NOT_A_DIRECTORY);
    let (code, _) = failure(upload(bytes(&dir.path().join("x")), b"x", 0o4755, false));
    assert_eq!(code, IO, "no setuid upload");
}

#[test]
fn a_cut_upload_resumes_from_its_verified_partial_file() {
    let dir = scratch();
    let target = dir.path().join("big");
    let p = bytes(&target);
    let data = content(500_000);
    let half = 250_000;

    let mut worker = Worker::spawn(&write(p, data.len() as u64, 0o644, false, 0, None));
    assert_eq!(worker.expect_start(), (0, 500_000, 0o644));
    worker.send_data(&data[..half]);
    // The client went away: the worker exits and keeps what it has.
    let (records, code) = worker.rest();
    assert_eq!((records, code), (vec![], 0));
    assert!(!target.exists());
    let kept = partial(dir.path(), "big");
    let meta = fs::metadata(&kept).unwrap();
    assert_eq!((meta.len(), meta.mode() & 0o777), (half as u64, 0o600));

    // A resume whose prefix does not match starts again, and says so.
    let mut worker =
        Worker::spawn(&write(p, data.len() as u64, 0o644, false, half as u64, Some(sha(&data[1..=half]))));
    assert_eq!(worker.expect_start().0, 0);
    drop(worker);
    assert_eq!(fs::metadata(&kept).unwrap().len(), 0, "truncated for a fresh start");

    // Again half, then a resume that matches.
    let mut worker = Worker::spawn(&write(p, data.len() as u64, 0o644, false, 0, None));
    worker.expect_start();
    worker.send_data(&data[..half]);
    worker.rest();
    let mut worker =
        Worker::spawn(&write(p, data.len() as u64, 0o644, false, half as u64, Some(sha(&data[..half]))));
    assert_eq!(worker.expect_start(), (half as u64, 500_000, 0o644));
    worker.send_data(&data[half..]);
    worker.send_end(data.len() as u64, sha(&data));
    let (records, code) = worker.rest();
    assert_eq!(records, [Rec::End { size: 500_000, sha256: sha(&data) }]);
    assert_eq!(code, 0);
    assert!(fs::read(&target).unwrap() == data);
    assert!(!kept.exists());

    // An offset beyond what the partial file holds starts at 0.
    let other = dir.path().join("other");
    let mut worker = Worker::spawn(&write(bytes(&other), 10, 0o644, false, 5, Some(sha(b"hello"))));
    assert_eq!(worker.expect_start().0, 0);
}

#[test]
fn a_second_upload_to_the_same_target_is_refused_while_the_first_runs() {
    let dir = scratch();
    let target = dir.path().join("busy");
    let mut first = Worker::spawn(&write(bytes(&target), 2, 0o644, false, 0, None));
    first.expect_start();
    let (code, message) = failure(run(&write(bytes(&target), 2, 0o644, false, 0, None)));
    assert_eq!((code, message), (IO, format!("another upload to it is under way: {}", target.display())));
    first.send_data(b"ok");
    first.send_end(2, sha(b"ok"));
    assert_eq!(first.rest().0, [Rec::End { size: 2, sha256: sha(b"ok") }]);
}

#[test]
fn a_mismatched_upload_is_deleted() {
    let dir = scratch();
    let target = dir.path().join("bad");
    let kept = partial(dir.path(), "bad");

    // A hash that is not the bytes'.
    let mut worker = Worker::spawn(&write(bytes(&target), 4, 0o644, false, 0, None));
    worker.expect_start();
    worker.send_data(b"abcd");
    worker.send_end(4, sha(b"abce"));
    let (code, message) = failure(worker.rest().0);
    assert_eq!(code, MISMATCH);
    assert!(message.ends_with(&target.display().to_string()), "{message}");
    assert!(!target.exists() && !kept.exists());

    // More bytes than the size.
    let mut worker = Worker::spawn(&write(bytes(&target), 4, 0o644, false, 0, None));
    worker.expect_start();
    worker.send_data(b"abcde");
    assert_eq!(failure(worker.rest().0).0, MISMATCH);
    assert!(!target.exists() && !kept.exists());

    // Fewer, or another size claimed.
    for (sent, claimed) in [(&b"abc"[..], 4), (&b"abcd"[..], 5)] {
        let mut worker = Worker::spawn(&write(bytes(&target), 4, 0o644, false, 0, None));
        worker.expect_start();
        worker.send_data(sent);
        worker.send_end(claimed, sha(sent));
        assert_eq!(failure(worker.rest().0).0, MISMATCH);
        assert!(!target.exists() && !kept.exists());
    }
}

#[test]
fn a_killed_upload_leaves_nothing_under_the_target_name() {
    let dir = scratch();
    let target = dir.path().join("killed");
    let data = content(300_000);
    let mut worker = Worker::spawn(&write(bytes(&target), data.len() as u64, 0o644, true, 0, None));
    worker.expect_start();
    worker.send_data(&data[..200_000]);
    // The data has reached the file when the partial file holds it all.
    let kept = partial(dir.path(), "killed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::metadata(&kept).map(|m| m.len()).unwrap_or(0) < 200_000 {
        assert!(std::time::Instant::now() < deadline, "the data never reached the partial file");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    worker.child.kill().unwrap();
    let status = worker.child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(!target.exists(), "a partial file under the target name");
    assert_eq!(fs::metadata(&kept).unwrap().len(), 200_000, "kept for a resume");
}

#[test]
fn a_listing_is_sorted_by_name_bytes_with_links_and_odd_names() {
    let dir = scratch();
    let d = dir.path();
    fs::write(d.join("b file"), b"12345").unwrap();
    fs::write(d.join(OsStr::from_bytes(b"caf\xe9")), b"").unwrap();
    fs::create_dir(d.join("a-dir")).unwrap();
    std::os::unix::fs::symlink("b file", d.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere", d.join("dangling")).unwrap();
    fs::set_permissions(d.join("b file"), fs::Permissions::from_mode(0o4751)).unwrap();
    for i in 0..2000 {
        // Enough entries for more than one DATA record.
        fs::write(d.join(format!("many-{i:04}-{}", "x".repeat(40))), b"").unwrap();
    }

    let listed = entries(run(&list(bytes(d))));
    assert_eq!(listed.len(), 2005);
    let mut names: Vec<Vec<u8>> = listed.iter().map(|e| e.name.clone()).collect();
    let unsorted = names.clone();
    names.sort();
    assert_eq!(unsorted, names, "sorted by bytes");
    let by_name = |name: &[u8]| listed.iter().find(|e| e.name == name).unwrap();
    let file = by_name(b"b file");
    assert_eq!((file.kind, file.size, file.mode, file.target.len()), (0, 5, 0o4751, 0));
    assert_eq!(file.mtime, fs::metadata(d.join("b file")).unwrap().mtime() as u64);
    assert_eq!(by_name(b"caf\xe9").kind, 0);
    assert_eq!(by_name(b"a-dir").kind, 1);
    let link = by_name(b"link");
    assert_eq!((link.kind, link.target.as_slice()), (2, &b"b file"[..]));
    assert_eq!(by_name(b"dangling").target, b"/nowhere");
    assert!(!listed.iter().any(|e| e.name == b"." || e.name == b".."));
    assert_eq!(&names[..3], [&b"a-dir"[..], b"b file", b"caf\xe9"], "bytes order, not text order");

    let (code, _) = failure(run(&list(bytes(&d.join("b file")))));
    assert_eq!(code, NOT_A_DIRECTORY);
    let (code, _) = failure(run(&list(bytes(&d.join("none")))));
    assert_eq!(code, NOT_FOUND);
    // An empty directory: DONE alone.
    assert_eq!(run(&list(bytes(&d.join("a-dir")))), [Rec::Done]);
}

#[test]
fn stat_reports_a_link_itself_and_home_the_users_directory() {
    let dir = scratch();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("some/target", &link).unwrap();
    let stat_link = entries(run(&stat(bytes(&link))));
    assert_eq!(stat_link.len(), 1);
    assert_eq!(stat_link[0].name, bytes(&link));
    assert_eq!((stat_link[0].kind, stat_link[0].target.as_slice()), (2, &b"some/target"[..]));
    let (code, _) = failure(run(&stat(bytes(&dir.path().join("none")))));
    assert_eq!(code, NOT_FOUND);

    let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective()).unwrap().unwrap();
    let home_entry = entries(run(&home()));
    assert_eq!(home_entry.len(), 1);
    assert_eq!(home_entry[0].name, bytes(&me.dir));
    assert_eq!(home_entry[0].kind, 1);
}

#[test]
fn mkdir_rename_remove_and_chmod() {
    let dir = scratch();
    let d = dir.path();
    let sub = d.join("sub dir");
    assert_eq!(run(&mkdir(bytes(&sub), 0o750)), [Rec::Done]);
    assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o7777, 0o750, "exact, whatever the umask");
    assert_eq!(failure(run(&mkdir(bytes(&sub), 0o750))).0, EXISTS);
    assert_eq!(failure(run(&mkdir(bytes(&d.join("no/sub")), 0o750))).0, NOT_FOUND);

    let a = d.join("a");
    let b = d.join("b");
    fs::write(&a, b"A").unwrap();
    fs::write(&b, b"B").unwrap();
    let (code, message) = failure(run(&rename(bytes(&a), bytes(&b), false)));
    assert_eq!(code, EXISTS);
    assert!(message.contains(" -> "), "{message}");
    assert_eq!(fs::read(&b).unwrap(), b"B");
    assert_eq!(run(&rename(bytes(&a), bytes(&b), true)), [Rec::Done]);
    assert_eq!(fs::read(&b).unwrap(), b"A");
    assert!(!a.exists());
    assert_eq!(run(&rename(bytes(&b), bytes(&a), false)), [Rec::Done]);
    assert_eq!(fs::read(&a).unwrap(), b"A");
    assert_eq!(failure(run(&rename(bytes(&b), bytes(&a), true))).0, NOT_FOUND);

    assert_eq!(run(&chmod(bytes(&a), 0o604)), [Rec::Done]);
    assert_eq!(fs::metadata(&a).unwrap().mode() & 0o7777, 0o604);
    assert_eq!(failure(run(&chmod(bytes(&a), 0o10000))).0, IO);

    // Remove: a file, a link (not what it points to), an empty directory; not a full one.
    let link = d.join("link");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    assert_eq!(run(&remove(bytes(&link))), [Rec::Done]);
    assert!(a.exists() && fs::symlink_metadata(&link).is_err());
    fs::write(sub.join("inside"), b"").unwrap();
    assert_eq!(failure(run(&remove(bytes(&sub)))).0, NOT_EMPTY);
    assert_eq!(run(&remove(bytes(&sub.join("inside")))), [Rec::Done]);
    assert_eq!(run(&remove(bytes(&sub))), [Rec::Done]);
    assert!(!sub.exists());
    assert_eq!(run(&remove(bytes(&a))), [Rec::Done]);
    assert_eq!(failure(run(&remove(bytes(&a)))).0, NOT_FOUND);
}

/// Not run by default: a 1 GiB download through the worker's pipe, with its throughput.
/// `cargo test -p session-agent --release --test files_worker -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: 1 GiB on disk"]
fn a_gigabyte_download_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let chunk = content(1 << 20);
    let mut file = fs::File::create(&path).unwrap();
    for _ in 0..1024 {
        file.write_all(&chunk).unwrap();
    }
    drop(file);
    let started = std::time::Instant::now();
    let mut worker = Worker::spawn(&read(bytes(&path), 0, None));
    worker.expect_start();
    let mut total = 0u64;
    loop {
        match worker.recv() {
            Some(Rec::Data(bytes)) => total += bytes.len() as u64,
            Some(Rec::End { size, .. }) => {
                assert_eq!(size, total);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let elapsed = started.elapsed();
    eprintln!("1 GiB download: {elapsed:?}, {:.2} GB/s", total as f64 / elapsed.as_secs_f64() / 1e9);

    let started = std::time::Instant::now();
    let target = dir.path().join("copy");
    let mut worker = Worker::spawn(&write(bytes(&target), 1 << 30, 0o644, false, 0, None));
    worker.expect_start();
    for _ in 0..1024 {
        worker.send_data(&chunk);
    }
    let whole = fs::read(&path).unwrap();
    let hash = sha(&whole);
    drop(whole);
    worker.send_end(1 << 30, hash);
    assert_eq!(worker.rest().0, [Rec::End { size: 1 << 30, sha256: hash }]);
    let elapsed = started.elapsed();
    eprintln!("1 GiB upload (with the test's own hash and the fsync): {elapsed:?}");
}
