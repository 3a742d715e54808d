//! A File channel at the agent (spec 5.19, 12.11): one task per channel owns the channel's
//! worker, turns its records into the channel's File frames and Data, and feeds it an upload.
//!
//! What the task hands the agent's loop travels on the loop's one queue of [`Local`] events, in
//! the order the worker wrote it, so the loop queues Start before the Data it announces and End
//! after it. Memory is bounded as a process's output is: the worker's records are read one at
//! a time, and each Data frame holds one of [`CHUNKS_IN_FLIGHT`] permits until it was sent; an
//! upload waits in the queue to the task only as far as the credit this side granted, since
//! that credit returns once the worker took the bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use session_codec::Frame;
use session_link::Outbound;
use session_link::pipe::CHUNKS_IN_FLIGHT;
use session_proto::frame::{DATA_PREFIX_LEN, data_prefix};
use session_proto::owned::{OwnedFileEvent, owned_str};
use session_proto::{Digest, FileError, FileRequest, MAX_BODY_LEN, MAX_MESSAGE_LEN, Stream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::{Record, Request, Worker};
use crate::channel::Local;
use crate::process::LoginUser;

/// What the agent's loop passes to a File channel's task.
#[derive(Debug)]
pub(crate) enum Input {
    /// Upload bytes from the client.
    Data(Bytes),
    /// The client's End: the upload's size and SHA-256.
    End { size: u64, sha256: Digest },
}

/// A File channel's task and the way to its upload. Dropping it stops the task, which kills
/// the worker: an upload cut so keeps its partial file for a resume (spec 12.11).
#[derive(Debug)]
pub(crate) struct FileChannel {
    input: Option<mpsc::UnboundedSender<Input>>,
    task: JoinHandle<()>,
}

impl FileChannel {
    /// Starts the task for `request` on `channel`, as `user`.
    pub(crate) fn start(
        channel: u16,
        (user, program): (&LoginUser, Option<&Path>),
        request: Request,
        local: &mpsc::UnboundedSender<Local>,
    ) -> FileChannel {
        let uploads = matches!(request, Request::Write { .. });
        let (input, inputs) = mpsc::unbounded_channel();
        let to_loop = Tell { channel, local: local.clone() };
        let program = program.map(Path::to_path_buf);
        let task = tokio::spawn(serve((user.clone(), program), request, inputs, to_loop));
        FileChannel { input: uploads.then_some(input), task }
    }

    /// Upload bytes or the client's End; `false` when the channel takes no upload (its credit
    /// is the caller's to return).
    pub(crate) fn input(&self, input: Input) -> bool {
        self.input.as_ref().is_some_and(|tx| tx.send(input).is_ok())
    }
}

impl Drop for FileChannel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A File channel's reports to the agent's loop.
#[derive(Debug)]
pub(crate) enum FileLocal {
    /// A File frame to queue.
    Event(Box<OwnedFileEvent>),
    /// Data to queue, holding its permit.
    Data(Outbound),
    /// The worker took this many upload bytes: their credit returns.
    Written(usize),
    /// The worker is done: Eof and Close follow what was queued.
    Ended,
}

#[derive(Debug, Clone)]
struct Tell {
    channel: u16,
    local: mpsc::UnboundedSender<Local>,
}

impl Tell {
    fn send(&self, what: FileLocal) {
        let _ = self.local.send(Local::File { channel: self.channel, what });
    }

    fn event(&self, event: OwnedFileEvent) {
        self.send(FileLocal::Event(Box::new(event)));
    }

    fn failed(&self, error: FileError, message: &str) {
        let message = owned_str(session_link::clip(message, MAX_MESSAGE_LEN)).unwrap_or_default();
        self.event(OwnedFileEvent::Failed { error, message });
    }
}

async fn serve(
    (user, program): (LoginUser, Option<PathBuf>),
    request: Request,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    tell: Tell,
) {
    let uploads = matches!(request, Request::Write { .. });
    let spawned = match &program {
        Some(program) => Worker::spawn_program(program, &user, &request).await,
        None => Worker::spawn(&user, &request).await,
    };
    match spawned {
        Ok(mut worker) => {
            let permits = Arc::new(Semaphore::new(CHUNKS_IN_FLIGHT));
            // An upload's records stop at its Start: the client's bytes go in, then the rest.
            let answered = match relay_records(&mut worker, &tell, &permits, uploads).await {
                Relayed::Started => {
                    upload(&mut worker, &mut inputs, &tell).await;
                    matches!(relay_records(&mut worker, &tell, &permits, false).await, Relayed::Answered)
                }
                Relayed::Answered => true,
                Relayed::Cut => false,
            };
            if !answered {
                tell.failed(FileError::IO, "the file worker ended without an answer");
            }
            // It exits after its last record: reaped here rather than left to the runtime.
            let _ = worker.wait().await;
        }
        Err(e) => tell.failed(FileError::IO, &format!("cannot start the file worker: {e}")),
    }
    tell.send(FileLocal::Ended);
}

enum Relayed {
    /// An upload's Start went: the upload goes in next.
    Started,
    /// The last record (End, Done or Failed) went.
    Answered,
    /// The worker's output ended, or broke, before its last record.
    Cut,
}

/// Passes the worker's records on until its last one, or until an upload's Start when
/// `until_start`.
async fn relay_records(
    worker: &mut Worker,
    tell: &Tell,
    permits: &Arc<Semaphore>,
    until_start: bool,
) -> Relayed {
    loop {
        let record = match worker.next().await {
            Ok(Some(record)) => record,
            Ok(None) => return Relayed::Cut,
            Err(e) => {
                tell.failed(FileError::IO, &format!("the file worker failed: {e}"));
                return Relayed::Answered;
            }
        };
        match record {
            Record::Start(start) => {
                let super::Start { offset, size, mode, mtime } = start;
                tell.event(OwnedFileEvent::Start { offset, size, mode, mtime });
                if until_start {
                    return Relayed::Started;
                }
            }
            Record::Data(bytes) => {
                // A record is at most 64 KiB: one Data frame, sent without a further copy.
                let Ok(permit) = Arc::clone(permits).acquire_owned().await else { return Relayed::Cut };
                match data_frame(tell.channel, bytes) {
                    Some(data) => tell.send(FileLocal::Data(data.holding(permit))),
                    None => return Relayed::Cut,
                }
            }
            Record::End(end) => {
                tell.event(OwnedFileEvent::End { size: end.size, sha256: end.sha256 });
                return Relayed::Answered;
            }
            Record::Done => {
                tell.event(OwnedFileEvent::Done);
                return Relayed::Answered;
            }
            Record::Failed(failure) => {
                tell.failed(FileError(failure.code.to_u32()), &failure.message);
                return Relayed::Answered;
            }
        }
    }
}

/// Feeds the client's upload to the worker until its End. A worker that stopped taking it
/// (it failed, and says why in its next record) has what is left dropped, its credit returned.
async fn upload(worker: &mut Worker, inputs: &mut mpsc::UnboundedReceiver<Input>, tell: &Tell) {
    let mut broken = false;
    while let Some(input) = inputs.recv().await {
        match input {
            Input::Data(bytes) => {
                if !broken {
                    broken = worker.send_data(&bytes).await.is_err();
                }
                tell.send(FileLocal::Written(bytes.len()));
            }
            Input::End { size, sha256 } => {
                if !broken {
                    let _ = worker.send_end(size, sha256).await;
                }
                return;
            }
        }
    }
    // The channel went without an End: the upload is cancelled, its partial file kept.
    worker.close_input();
}

fn data_frame(channel: u16, payload: &[u8]) -> Option<Outbound> {
    let prefix = data_prefix(channel, Stream::Stdout, payload.len()).ok()?;
    let mut frame = BytesMut::with_capacity(DATA_PREFIX_LEN + payload.len());
    frame.put_slice(&prefix);
    frame.put_slice(payload);
    Outbound::frame(Frame::from_bytes(frame.freeze(), MAX_BODY_LEN).ok()?)
}

impl Request {
    /// The operation's name, for logs.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Request::Home => "home",
            Request::Stat { .. } => "stat",
            Request::List { .. } => "list",
            Request::Read { .. } => "read",
            Request::Write { .. } => "write",
            Request::Mkdir { .. } => "mkdir",
            Request::Rename { .. } => "rename",
            Request::Remove { .. } => "remove",
            Request::Chmod { .. } => "chmod",
        }
    }

    /// The worker's request for a File Open's, or `None` for a request this agent does not know
    /// (the connection refuses those before they reach here).
    pub(crate) fn from_wire(request: &FileRequest<'_>) -> Option<Request> {
        let path = |path: &[u8]| path.to_vec();
        Some(match *request {
            FileRequest::Home => Request::Home,
            FileRequest::Stat { path: p } => Request::Stat { path: path(p) },
            FileRequest::List { path: p } => Request::List { path: path(p) },
            FileRequest::Read { path: p, offset, prefix } => Request::Read { path: path(p), offset, prefix },
            FileRequest::Write { path: p, size, mode, overwrite, offset, prefix } => {
                Request::Write { path: path(p), size, mode, overwrite, offset, prefix }
            }
            FileRequest::Mkdir { path: p, mode } => Request::Mkdir { path: path(p), mode },
            FileRequest::Rename { from, to, overwrite } => {
                Request::Rename { from: path(from), to: path(to), overwrite }
            }
            FileRequest::Remove { path: p } => Request::Remove { path: path(p) },
            FileRequest::Chmod { path: p, mode } => Request::Chmod { path: path(p), mode },
            _ => return None,
        })
    }
}
