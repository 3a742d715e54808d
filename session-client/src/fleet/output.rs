//! Where each target's output goes, told apart from the others': lines prefixed with the target
//! (the default), JSON lines (`--json`), or a file per target and stream (`--output-dir`).
//!
//! Output is written as it comes, and flow control ends where it is written: a target's channel
//! writes into a small pipe whose reader writes whole lines out, one target's at a time, and
//! only what was written returns its credit to the agent. So a slow stdout slows the targets
//! down instead of filling memory: per target, the pipe, one read and the partial line
//! ([`MAX_PARTIAL`]) at most.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use session_proto::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::status::{Status, Tally};

/// The longest partial line kept for a target: past it, what came is written as a line of its
/// own, so that output without newlines neither waits for ever nor grows without bound.
pub(crate) const MAX_PARTIAL: usize = 64 * 1024;

/// The pipe between a target's channel and the task that writes its lines.
const PIPE_LEN: usize = 16 * 1024;

/// Bytes of a read formatted and written at once.
const FORMAT_SLICE: usize = 1024;

/// How the targets' output is told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Each line as `<target>: <line>`, on stdout or stderr as it came.
    Prefixed,
    /// JSON lines on stdout: output, statuses and the summary.
    Json,
    /// `<dir>/<target>.stdout` and `<dir>/<target>.stderr`.
    Dir(std::path::PathBuf),
}

/// A stream's bytes cut into lines: each complete line as it comes, a partial one kept until
/// its newline, or until it holds [`MAX_PARTIAL`] bytes.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Takes `bytes`, and gives `emit` each piece they complete: a line with its newline, or
    /// [`MAX_PARTIAL`] bytes of one without.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            let room = MAX_PARTIAL - self.partial.len();
            let take = match bytes.iter().position(|&b| b == b'\n') {
                Some(newline) if newline < room => newline + 1,
                _ if bytes.len() >= room => room,
                _ => {
                    self.partial.extend_from_slice(bytes);
                    return;
                }
            };
            let (piece, rest) = bytes.split_at(take);
            if self.partial.is_empty() {
                emit(piece);
            } else {
                self.partial.extend_from_slice(piece);
                emit(&self.partial);
                self.partial.clear();
            }
            bytes = rest;
        }
    }

    /// The stream ended: the partial line, if any, goes as it is.
    pub(crate) fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
    }
}

/// One of this program's streams, shared by every target's writer.
struct Out {
    to: Box<dyn AsyncWrite + Send + Unpin>,
    /// A write failed (a reader that went away): what comes after is dropped, so that the
    /// targets go on and their statuses still reach stderr.
    failed: bool,
}

/// Where the run's lines go: this program's stdout and stderr, each written whole by one
/// target at a time, so that lines of different targets never mix.
#[derive(Clone)]
pub(crate) struct Sink {
    out: Arc<Mutex<Out>>,
    err: Arc<Mutex<Out>>,
    json: bool,
}

impl Sink {
    /// Lines to `out` and `err`; output and statuses as JSON lines on `out` if `json`.
    pub(crate) fn new(
        out: Box<dyn AsyncWrite + Send + Unpin>,
        err: Box<dyn AsyncWrite + Send + Unpin>,
        json: bool,
    ) -> Sink {
        let shared = |to| Arc::new(Mutex::new(Out { to, failed: false }));
        Sink { out: shared(out), err: shared(err), json }
    }

    async fn write(to: &Mutex<Out>, bytes: &[u8]) {
        let mut out = to.lock().await;
        if out.failed || bytes.is_empty() {
            return;
        }
        let written = async {
            out.to.write_all(bytes).await?;
            out.to.flush().await
        };
        if written.await.is_err() {
            out.failed = true;
        }
    }

    /// The first line: the fleet command's id (as the relay's audit records name it), and how
    /// many targets.
    pub(crate) async fn started(&self, fleet: &str, targets: usize, at_once: usize) {
        let noun = if targets == 1 { "target" } else { "targets" };
        let line = format!("fleet {fleet}: {targets} {noun}, {} at once\n", at_once.min(targets));
        Sink::write(&self.err, line.as_bytes()).await;
    }

    /// A target's status line on stderr, and its record on stdout with `--json`.
    pub(crate) async fn status(&self, target: &str, status: &Status, session: Option<&str>) {
        if self.json {
            Sink::write(&self.out, format!("{}\n", status.record(target, session)).as_bytes()).await;
        }
        Sink::write(&self.err, status.line(target).as_bytes()).await;
    }

    /// A word of the run's own on stderr (why the connection was lost).
    pub(crate) async fn note(&self, line: &str) {
        Sink::write(&self.err, line.as_bytes()).await;
    }

    /// The last line, and the last record with `--json`.
    pub(crate) async fn summary(&self, fleet: &str, tally: &Tally) {
        if self.json {
            Sink::write(&self.out, format!("{}\n", tally.record(fleet)).as_bytes()).await;
        }
        Sink::write(&self.err, tally.line().as_bytes()).await;
    }

    /// `piece` of `target`'s `stream`, as this mode writes it, appended to `text`.
    fn format(&self, text: &mut Vec<u8>, target: &str, stream: Stream, piece: &[u8]) {
        if self.json {
            let data = String::from_utf8_lossy(piece);
            let record = json!({"target": target, "stream": stream.name(), "data": data});
            text.extend_from_slice(record.to_string().as_bytes());
            text.push(b'\n');
        } else {
            text.extend_from_slice(target.as_bytes());
            text.extend_from_slice(b": ");
            text.extend_from_slice(piece);
            if !piece.ends_with(b"\n") {
                text.push(b'\n');
            }
        }
    }

    /// Where `stream` of every target goes.
    fn stream(&self, stream: Stream) -> &Mutex<Out> {
        if stream == Stream::Stderr && !self.json { &self.err } else { &self.out }
    }
}

/// A writer for a channel's stdout or stderr.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// The tasks that write one target's lines out.
pub(crate) struct Drains {
    give_up: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drains {
    /// Once the target's channel ended (or was given up): what its output pipes hold is
    /// written out, the partial lines last, and the tasks end; what is still on its way from a
    /// channel given up is not waited for.
    pub(crate) async fn finish(self) {
        let _ = self.give_up.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Where `target`'s stdout and stderr go in `mode`, and what carries them there.
pub(crate) async fn ends(
    mode: &Mode,
    sink: &Sink,
    target: &str,
) -> std::io::Result<(Writer, Writer, Drains)> {
    let (give_up, given_up) = watch::channel(false);
    let mut drains = Drains { give_up, tasks: Vec::new() };
    if let Mode::Dir(dir) = mode {
        let file = |stream: &str| tokio::fs::File::create(dir.join(format!("{target}.{stream}")));
        let (out, err) = (file("stdout").await?, file("stderr").await?);
        return Ok((Box::new(out), Box::new(err), drains));
    }
    let target: Arc<str> = Arc::from(target);
    let mut pipe = |stream| {
        let (writer, reader) = tokio::io::duplex(PIPE_LEN);
        let task = drain(reader, Arc::clone(&target), stream, sink.clone(), given_up.clone());
        drains.tasks.push(tokio::spawn(task));
        Box::new(writer) as Writer
    };
    let (out, err) = (pipe(Stream::Stdout), pipe(Stream::Stderr));
    Ok((out, err, drains))
}

/// Whether `dir` can take the output files, made if it is not there.
pub(crate) fn prepare(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes the lines of `target`'s `stream` as they come out of `from`, until it ends or the
/// target is given up: then what the pipe already holds is written, and the partial line.
async fn drain(
    mut from: impl AsyncRead + Unpin,
    target: Arc<str>,
    stream: Stream,
    sink: Sink,
    mut given_up: watch::Receiver<bool>,
) {
    let mut lines = Lines::default();
    let mut buf = vec![0; PIPE_LEN];
    loop {
        let read = tokio::select! {
            // What is in the pipe first: a target that ended has all its output there.
            biased;
            read = from.read(&mut buf) => read,
            _ = given_up.wait_for(|&given_up| given_up) => break,
        };
        let Ok(len @ 1..) = read else { break };
        // A slice at a time: a line grows by its prefix as it is formatted (a JSON record of a
        // bare newline is a hundred bytes), so formatting a whole read of short lines at once
        // would hold a hundred times the read while it waits for the stream.
        for slice in buf.get(..len).unwrap_or_default().chunks(FORMAT_SLICE) {
            let mut text = Vec::new();
            lines.feed(slice, |piece| sink.format(&mut text, &target, stream, piece));
            Sink::write(sink.stream(stream), &text).await;
        }
    }
    let mut text = Vec::new();
    lines.finish(|piece| sink.format(&mut text, &target, stream, piece));
    Sink::write(sink.stream(stream), &text).await;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// What a sink wrote, readable by the test.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Captured {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl AsyncWrite for Captured {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A sink writing into the two captures returned with it.
    pub(crate) fn captured(json: bool) -> (Sink, Captured, Captured) {
        let (out, err) = (Captured::default(), Captured::default());
        (Sink::new(Box::new(out.clone()), Box::new(err.clone()), json), out, err)
    }

    fn pieces(feeds: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Lines::default();
        let mut pieces = Vec::new();
        for feed in feeds {
            lines.feed(feed, |piece| pieces.push(piece.to_vec()));
        }
        lines.finish(|piece| pieces.push(piece.to_vec()));
        pieces
    }

    #[test]
    fn lines_come_whole_however_the_bytes_are_cut() {
        let expected: Vec<Vec<u8>> = vec![b"one\n".to_vec(), b"two\n".to_vec(), b"three".to_vec()];
        assert_eq!(pieces(&[b"one\ntwo\nthree"]), expected);
        assert_eq!(pieces(&[b"o", b"ne\nt", b"wo", b"\nthr", b"ee"]), expected);
        assert_eq!(pieces(&[b"\n\n"]), vec![b"\n".to_vec(), b"\n".to_vec()]);
        assert!(pieces(&[b""]).is_empty());
    }

    #[test]
    fn a_partial_line_is_let_go_at_its_bound() {
        let long = vec![b'x'; MAX_PARTIAL * 2 + 10];
        let pieces = pieces(&[&long[..100], &long[100..], b"\n"]);
        let lens: Vec<usize> = pieces.iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_PARTIAL, MAX_PARTIAL, 11]);
        assert_eq!(pieces[2].last(), Some(&b'\n'));
        // A newline just past the bound: the bound first, then the rest of the line.
        let mut just = vec![b'y'; MAX_PARTIAL];
        just.push(b'\n');
        let lens: Vec<usize> = self::pieces(&[&just]).iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_PARTIAL, 1]);
    }

    #[tokio::test]
    async fn prefixed_lines_name_their_target_and_keep_their_stream() {
        let (sink, out, err) = captured(false);
        let (mut stdout, mut stderr, drains) = ends(&Mode::Prefixed, &sink, "web-1").await.unwrap();
        stdout.write_all(b"a\nb").await.unwrap();
        stderr.write_all(b"oops\n").await.unwrap();
        stdout.write_all(b"c\nlast").await.unwrap();
        drains.finish().await;
        assert_eq!(out.text(), "web-1: a\nweb-1: bc\nweb-1: last\n");
        assert_eq!(err.text(), "web-1: oops\n");
        sink.status("web-1", &Status::TimedOut, None).await;
        assert_eq!(err.text(), "web-1: oops\n[web-1] timed out\n");
    }

    #[tokio::test]
    async fn json_lines_hold_the_bytes_exactly_as_they_came() {
        let (sink, out, err) = captured(true);
        let (mut stdout, mut stderr, drains) = ends(&Mode::Json, &sink, "db-1").await.unwrap();
        stdout.write_all(b"x \"quoted\"\nno newline").await.unwrap();
        stderr.write_all(b"e\n").await.unwrap();
        drains.finish().await;
        sink.status("db-1", &Status::Succeeded, Some("tester-0123456789abcdef")).await;
        let records: Vec<serde_json::Value> =
            out.text().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let data = |stream: &str| -> String {
            records.iter().filter(|r| r["stream"] == stream).map(|r| r["data"].as_str().unwrap()).collect()
        };
        assert_eq!(data("stdout"), "x \"quoted\"\nno newline");
        assert_eq!(data("stderr"), "e\n");
        assert!(records.iter().all(|r| r["target"] == "db-1"));
        let status = records.last().unwrap();
        assert_eq!(status["status"], "succeeded");
        assert_eq!(status["session"], "tester-0123456789abcdef");
        // Statuses still reach stderr as lines, for the person watching.
        assert_eq!(err.text(), "[db-1] succeeded\n");
    }

    #[tokio::test]
    async fn output_files_hold_each_stream_as_it_came() {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("out");
        prepare(&out_dir).unwrap();
        let (sink, out, _) = captured(false);
        let mode = Mode::Dir(out_dir.clone());
        let (mut stdout, mut stderr, drains) = ends(&mode, &sink, "web-1").await.unwrap();
        stdout.write_all(b"partial").await.unwrap();
        stderr.write_all(b"e\n").await.unwrap();
        stdout.flush().await.unwrap();
        stderr.flush().await.unwrap();
        drains.finish().await;
        assert_eq!(std::fs::read(out_dir.join("web-1.stdout")).unwrap(), b"partial");
        assert_eq!(std::fs::read(out_dir.join("web-1.stderr")).unwrap(), b"e\n");
        assert_eq!(out.text(), "");
    }

    #[tokio::test]
    async fn a_target_given_up_still_has_what_came_written() {
        let (sink, out, _) = captured(false);
        let (mut stdout, _stderr, drains) = ends(&Mode::Prefixed, &sink, "w").await.unwrap();
        stdout.write_all(b"before\nhalf").await.unwrap();
        // The writer stays open, as a channel's does while it closes.
        drains.finish().await;
        assert_eq!(out.text(), "w: before\nw: half\n");
        // Nobody reads any more: a late write fails instead of blocking.
        assert!(stdout.write_all(&[b'z'; PIPE_LEN * 2]).await.is_err());
    }
}
