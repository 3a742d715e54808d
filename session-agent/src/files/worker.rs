//! The worker process: reads one REQUEST, does it as the user it runs as, answers, exits.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

use nix::unistd::{Uid, User};

use super::entry::{self, Entry};
use super::error::{Code, Failure};
use super::pipe::{self, End, Start};
use super::{Request, is_normal, transfer};

/// The size asked for the pipes to the agent.
const PIPE_SIZE: usize = 1 << 20;

/// Why the worker stops before it is done.
#[derive(Debug)]
pub(super) enum Stop {
    /// The operation failed: the agent is told.
    Failed(Failure),
    /// The agent closed the worker's stdin before an upload's END: the client went away.
    Cancelled,
    /// The pipes to the agent failed, or it broke the framing: no one is left to tell.
    Pipe(io::Error),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Stop {
        Stop::Failed(failure)
    }
}

/// The worker's `main`: its exit code is 0 when the operation was done or cancelled, 1 when
/// it failed. The agent goes by the records, not by this.
pub fn run() -> i32 {
    let (input, output) = match (pipe_file(io::stdin().as_fd()), pipe_file(io::stdout().as_fd())) {
        (Ok(input), Ok(output)) => (input, output),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("session-agent file worker: {e}");
            return 1;
        }
    };
    // A pipe holds 64 KiB by default: less than one record, so that the worker and the agent
    // would take turns at every record. 1 MiB (what Linux lets any user ask for) lets them run
    // side by side. Only speed depends on it.
    for pipe in [&input, &output] {
        let _ = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_SIZE);
    }
    let mut input = Input::new(input);
    let mut output = Output::new(output);
    let outcome = match input.next() {
        Ok(Some((pipe::REQUEST, body))) => match pipe::decode_request(body) {
            Ok(request) => serve(request, &mut input, &mut output),
            Err(e) => Err(Stop::Pipe(e)),
        },
        Ok(Some(_)) => Err(Stop::Pipe(pipe::malformed("no REQUEST first"))),
        Ok(None) => Err(Stop::Cancelled),
        Err(e) => Err(Stop::Pipe(e)),
    };
    match outcome {
        Ok(()) | Err(Stop::Cancelled) => 0,
        Err(Stop::Failed(failure)) => {
            // If the agent is gone there is no one to tell.
            let _ = output.record(pipe::FAILED, &pipe::encode_failure(&failure));
            1
        }
        Err(Stop::Pipe(e)) => {
            if e.kind() != io::ErrorKind::BrokenPipe {
                eprintln!("session-agent file worker: {e}");
            }
            1
        }
    }
}

/// Standard input or output as a file of its own: std's `Stdout` buffers by line and locks,
/// and a download goes through in 64 KiB writes.
fn pipe_file(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<File> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

fn serve(request: Request, input: &mut Input, output: &mut Output) -> Result<(), Stop> {
    // The agent checks this already; a worker is cheap to keep honest.
    for path in request.paths() {
        if !is_normal(path) {
            let path = String::from_utf8_lossy(path);
            return Err(Failure::new(Code::Io, format!("not an absolute path in normal form: {path}")).into());
        }
    }
    match request {
        Request::Home => home(output),
        Request::Stat { path } => {
            let meta = fs::symlink_metadata(os(&path)).map_err(|e| Failure::io(&e, &path))?;
            let target = link_target(&path, &meta)?;
            send_entries(output, &[Entry::new(path, &meta, target)])
        }
        Request::List { path } => list(&path, output),
        Request::Read { path, offset, prefix } => transfer::read(&path, offset, prefix, output),
        Request::Write { path, size, mode, overwrite, offset, prefix } => {
            let write = transfer::Write { path: &path, size, mode, overwrite, offset, prefix };
            transfer::write(&write, input, output)
        }
        Request::Mkdir { path, mode } => mkdir(&path, mode, output),
        Request::Rename { from, to, overwrite } => {
            transfer::rename(&from, &to, overwrite).map_err(|e| rename_failure(&e, &from, &to))?;
            output.done()
        }
        Request::Remove { path } => {
            let meta = fs::symlink_metadata(os(&path)).map_err(|e| Failure::io(&e, &path))?;
            let removed = if meta.is_dir() { fs::remove_dir(os(&path)) } else { fs::remove_file(os(&path)) };
            removed.map_err(|e| Failure::io(&e, &path))?;
            output.done()
        }
        Request::Chmod { path, mode } => {
            check_mode(mode, 0o7777)?;
            fs::set_permissions(os(&path), fs::Permissions::from_mode(mode))
                .map_err(|e| Failure::io(&e, &path))?;
            output.done()
        }
    }
}

pub(super) fn os(path: &[u8]) -> &OsStr {
    OsStr::from_bytes(path)
}

/// Refuses mode bits beyond `max`.
pub(super) fn check_mode(mode: u32, max: u32) -> Result<(), Failure> {
    if mode & !max != 0 {
        return Err(Failure::new(Code::Io, format!("mode {mode:o} has bits beyond {max:o}")));
    }
    Ok(())
}

fn rename_failure(error: &io::Error, from: &[u8], to: &[u8]) -> Failure {
    // Both paths: either may be the one the system means.
    let mut both = from.to_vec();
    both.extend_from_slice(b" -> ");
    both.extend_from_slice(to);
    Failure::io(error, &both)
}

fn home(output: &mut Output) -> Result<(), Stop> {
    let uid = Uid::current();
    let user = User::from_uid(uid)
        .ok()
        .flatten()
        .ok_or_else(|| Failure::new(Code::NotFound, format!("no user with uid {uid}")))?;
    let path = user.dir.into_os_string().into_vec();
    // Followed: a home that is a link to a directory is browsed as the directory.
    let meta = fs::metadata(os(&path)).map_err(|e| Failure::io(&e, &path))?;
    send_entries(output, &[Entry::new(path, &meta, Vec::new())])
}

fn link_target(path: &[u8], meta: &fs::Metadata) -> Result<Vec<u8>, Failure> {
    if !meta.file_type().is_symlink() {
        return Ok(Vec::new());
    }
    let target = fs::read_link(os(path)).map_err(|e| Failure::io(&e, path))?;
    Ok(target.into_os_string().into_vec())
}

fn list(path: &[u8], output: &mut Output) -> Result<(), Stop> {
    let dir = fs::read_dir(os(path)).map_err(|e| Failure::io(&e, path))?;
    let mut entries = Vec::new();
    for item in dir {
        let item = item.map_err(|e| Failure::io(&e, path))?;
        let name = item.file_name().into_vec();
        // One that went away since it was read is not listed.
        let Ok(meta) = item.metadata() else { continue };
        let target = if meta.file_type().is_symlink() {
            fs::read_link(item.path()).map(|t| t.into_os_string().into_vec()).unwrap_or_default()
        } else {
            Vec::new()
        };
        entries.push(Entry::new(name, &meta, target));
    }
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    send_entries(output, &entries)
}

/// Sends `entries` in DATA records of whole entry records, then DONE.
fn send_entries(output: &mut Output, entries: &[Entry]) -> Result<(), Stop> {
    let mut body = Vec::with_capacity(pipe::MAX_BODY);
    let mut one = Vec::new();
    for entry in entries {
        one.clear();
        entry::encode(entry, &mut one);
        if one.len() > pipe::MAX_BODY {
            // A name and a link target are each at most PATH_MAX: this cannot happen.
            let name = String::from_utf8_lossy(&entry.name);
            return Err(Failure::new(Code::Io, format!("an entry too large to send: {name}")).into());
        }
        if body.len() + one.len() > pipe::MAX_BODY {
            output.record(pipe::DATA, &body)?;
            body.clear();
        }
        body.extend_from_slice(&one);
    }
    if !body.is_empty() {
        output.record(pipe::DATA, &body)?;
    }
    output.done()
}

fn mkdir(path: &[u8], mode: u32, output: &mut Output) -> Result<(), Stop> {
    check_mode(mode, 0o7777)?;
    fs::DirBuilder::new().mode(0o700).create(os(path)).map_err(|e| Failure::io(&e, path))?;
    // The mode asked for, not what the umask leaves of it; and on the directory just made,
    // not on a link someone put in its place meanwhile.
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(os(path))
        .map_err(|e| Failure::io(&e, path))?;
    dir.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| Failure::io(&e, path))?;
    output.done()
}

/// The worker's stdin: the agent's records.
pub(super) struct Input {
    pipe: BufReader<File>,
    body: Vec<u8>,
}

impl Input {
    fn new(pipe: File) -> Input {
        Input { pipe: BufReader::with_capacity(2 * pipe::MAX_BODY, pipe), body: vec![0; pipe::MAX_BODY] }
    }

    /// The next record, or `None` if stdin ended (at or within a record: either way the agent
    /// is done talking).
    pub(super) fn next(&mut self) -> io::Result<Option<(u8, &[u8])>> {
        let mut body = core::mem::take(&mut self.body);
        let next = self.next_into(&mut body);
        self.body = body;
        Ok(next?.map(|(tag, len)| (tag, &self.body[..len])))
    }

    /// How many bytes are here already: none, and the next record may have to be waited for.
    pub(super) fn buffered(&self) -> usize {
        self.pipe.buffer().len()
    }

    /// As [`Input::next`], with the body read into the start of `buf` (a record's worth):
    /// the tag and the body's length.
    pub(super) fn next_into(&mut self, buf: &mut [u8]) -> io::Result<Option<(u8, usize)>> {
        let mut header = [0u8; pipe::HEADER];
        if !read_full(&mut self.pipe, &mut header)? {
            return Ok(None);
        }
        let Some((tag, len)) = pipe::parse_header(&header)? else { return Ok(None) };
        let body = buf.get_mut(..len).ok_or_else(|| pipe::malformed("a record larger than the buffer"))?;
        if !read_full(&mut self.pipe, body)? {
            return Ok(None);
        }
        Ok(Some((tag, len)))
    }
}

/// Fills `buf`; false if the input ended first.
fn read_full(reader: &mut impl io::Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The worker's stdout: records to the agent.
pub(super) struct Output {
    pipe: File,
    /// A record's header and body, so that each goes in one write.
    buf: Vec<u8>,
}

impl Output {
    fn new(pipe: File) -> Output {
        Output { pipe, buf: vec![0; pipe::HEADER + pipe::MAX_BODY] }
    }

    pub(super) fn record(&mut self, tag: u8, body: &[u8]) -> Result<(), Stop> {
        let len = pipe::HEADER + body.len();
        let record =
            self.buf.get_mut(..len).ok_or_else(|| Stop::Pipe(pipe::malformed("a record too long")))?;
        let (header, rest) = record.split_at_mut(pipe::HEADER);
        header.copy_from_slice(&pipe::header(tag, body.len()));
        rest.copy_from_slice(body);
        self.pipe.write_all(record).map_err(Stop::Pipe)
    }

    pub(super) fn start(&mut self, start: &Start) -> Result<(), Stop> {
        self.record(pipe::START, &start.encode())
    }

    pub(super) fn end(&mut self, end: &End) -> Result<(), Stop> {
        self.record(pipe::END, &end.encode())
    }

    fn done(&mut self) -> Result<(), Stop> {
        self.record(pipe::DONE, &[])
    }

    /// Sends `bytes` (at most a record's worth) in a DATA record.
    pub(super) fn data(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        // Two writes rather than a copy: the pipe is large enough for both.
        self.pipe.write_all(&pipe::header(pipe::DATA, bytes.len())).map_err(Stop::Pipe)?;
        self.pipe.write_all(bytes).map_err(Stop::Pipe)
    }
}
