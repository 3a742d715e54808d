//! One file down or up, as spec 5.19 exchanges it: Start says where the bytes begin, the Data
//! follows under credit, and End states the whole file's size and SHA-256, which the receiving
//! side checks before the file counts as copied.
//!
//! Resume: a download continues from the local partial file when its SHA-256 is the prefix of
//! the instance's file; an upload continues from the agent's partial file (`Stat` of
//! `.<name>.session-partial` beside the target says how long it is) when the first that many
//! bytes of the local file hash to what the agent holds. Either side may answer Start 0: the
//! bytes held were not a prefix, and the whole file goes.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use session_client::FileNews;
use session_proto::EntryKind;
use session_proto::file::FileRequest;
use session_proto::owned::OwnedFileEvent;
use sha2::{Digest as _, Sha256};
use tracing::info;

use super::Failure;
use super::local::{self, Sink, Source};
use super::paths;
use super::progress::Progress;
use super::remote::Remote;

/// How copies are made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Continue from partial files.
    pub(crate) resume: bool,
    /// Replace files at the target.
    pub(crate) force: bool,
    /// The process's umask, applied to the mode a download takes from its source.
    pub(crate) umask: u32,
}

/// What a Start says.
#[derive(Debug, Clone, Copy)]
struct Start {
    offset: u64,
    size: u64,
    mode: u32,
}

/// Waits for the instance's Start (or its Failed).
async fn start(
    channel: &mut session_client::FileChannel,
    remote: &Remote,
    what: &str,
) -> Result<Start, Failure> {
    let mut reason = None;
    loop {
        match channel.next().await? {
            FileNews::File(OwnedFileEvent::Start { offset, size, mode, .. }) if offset <= size => {
                return Ok(Start { offset, size, mode });
            }
            FileNews::File(OwnedFileEvent::Failed { error, message }) => {
                return Err(remote.failed(error, &message));
            }
            FileNews::Session(_) => {}
            FileNews::Reason(code, message) => reason = Some((code, message)),
            FileNews::Closed => return Err(ended(what, reason)),
            _ => return Err(Failure::peer(what, "the instance did not start the transfer as it must")),
        }
    }
}

/// The channel closed without the transfer's end.
fn ended(what: &str, reason: Option<(session_proto::EndReason, String)>) -> Failure {
    match reason {
        Some(reason) => Failure::Session(session_client::Error::Ended { reason: Some(reason) }),
        None => Failure::peer(what, "the instance ended the transfer before its end"),
    }
}

/// Reads what is left of the channel (its Eof and Close), so that the relay records the
/// transfer's end; the copy is already complete, so a connection lost now changes nothing.
async fn drain(mut channel: session_client::FileChannel) {
    while let Ok(news) = channel.next().await {
        match news {
            FileNews::Data(bytes) => channel.consume(bytes.len()),
            FileNews::Closed => return,
            _ => {}
        }
    }
}

/// Copies `source` on the instance to `target` here.
pub(crate) async fn download(
    remote: &Remote,
    source: &[u8],
    target: &Path,
    settings: Settings,
    progress: &Progress,
) -> Result<(), Failure> {
    let what = remote.shown(source);
    let shown_target = target.display().to_string();
    match target.symlink_metadata() {
        Ok(meta) if meta.is_dir() => return Err(Failure::Other(format!("{shown_target}: is a directory"))),
        Ok(_) if !settings.force => return Err(Failure::LocalExists { path: shown_target }),
        _ => {}
    }
    let partial = paths::local_partial(target)
        .ok_or_else(|| Failure::Usage(format!("{shown_target}: not a file name to copy to")))?;
    // Said of the directory, before the instance is asked for anything.
    let dir = target.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(Failure::Other(format!("{}: not a directory", dir.display()))),
        Err(e) => return Err(Failure::local(dir.display(), e)),
    }

    // What a cut download left, hashed to ask the instance to go on from there.
    let held = match settings.resume {
        true => {
            let held = partial.clone();
            blocking(move || match held.symlink_metadata() {
                Ok(meta) if meta.is_file() && meta.len() > 0 => {
                    Ok(local::hash_prefix(&held, meta.len())?.map(|hasher| (meta.len(), hasher)))
                }
                _ => Ok(None),
            })
            .await
            .map_err(|e| Failure::local(partial.display(), e))?
        }
        false => None,
    };
    let (offset, prefix) = match &held {
        Some((len, hasher)) => (*len, Some(hasher.clone().finalize().into())),
        None => (0, None),
    };
    let mut channel = remote.open(&FileRequest::Read { path: source, offset, prefix }).await?;
    let start = start(&mut channel, remote, &what).await?;
    let resumed = match (start.offset, held) {
        (0, held) => {
            if held.is_some() {
                info!(file = %what, "the partial download is not a prefix of the file: starting over");
            }
            None
        }
        (offset, Some((len, hasher))) if offset == len => {
            info!(file = %what, offset, "continuing the download from byte {offset}");
            Some((len, hasher))
        }
        (offset, _) => {
            return Err(Failure::peer(&what, format!("the instance starts at byte {offset}, not asked")));
        }
    };
    let bar = progress.bar(&name_of(source), start.size, start.offset);
    let credit = channel.credit();
    let sink = Sink::start(&partial, resumed, move |len| credit.consume(len), bar.clone())
        .map_err(|e| Failure::local(partial.display(), e))?;
    let expected = start.size - start.offset;
    let mut received = 0u64;
    let mut reason = None;
    let end = loop {
        let news = match channel.next().await {
            Ok(news) => news,
            // Cut: what arrived stays in the partial file, for --resume.
            Err(e) => {
                bar.clear();
                let _ = sink.finish().await;
                return Err(e.into());
            }
        };
        match news {
            FileNews::Data(bytes) => {
                received += bytes.len() as u64;
                if received > expected {
                    bar.clear();
                    return Err(Failure::peer(&what, "the instance sent more than the file's size"));
                }
                if sink.write(bytes).is_err() {
                    // The writing thread stopped: its error says why.
                    break None;
                }
            }
            FileNews::File(OwnedFileEvent::End { size, sha256 }) => break Some((size, sha256)),
            FileNews::File(OwnedFileEvent::Failed { error, message }) => {
                bar.clear();
                drop(sink);
                let _ = std::fs::remove_file(&partial);
                return Err(remote.failed(error, &message));
            }
            FileNews::Reason(code, message) => reason = Some((code, message)),
            FileNews::Closed => {
                bar.clear();
                let _ = sink.finish().await;
                return Err(ended(&what, reason));
            }
            FileNews::File(_) => {
                bar.clear();
                return Err(Failure::peer(&what, "the instance answered out of turn"));
            }
            _ => {}
        }
    };
    let written = sink.finish().await.map_err(|e| Failure::local(partial.display(), e));
    let (written, (size, sha256)) = match (written, end) {
        (Ok(written), Some(end)) => (written, end),
        (Err(e), _) => {
            bar.clear();
            return Err(e);
        }
        (Ok(_), None) => return Err(Failure::Other(format!("{}: the write stopped", partial.display()))),
    };
    if (written.len, written.sha256) != (size, sha256) || size != start.size {
        bar.clear();
        let _ = std::fs::remove_file(&partial);
        let detail = format!(
            "{} bytes with SHA-256 {} arrived; the instance states {size} bytes with SHA-256 {}",
            written.len,
            hex(&written.sha256),
            hex(&sha256)
        );
        return Err(Failure::Verification { what, detail });
    }
    let mode = start.mode & 0o777 & !settings.umask;
    let (force, placed) = (settings.force, target.to_path_buf());
    let partial_path = partial.clone();
    let installed = blocking(move || local::install(written, &partial_path, &placed, mode, force)).await;
    match installed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bar.clear();
            let _ = std::fs::remove_file(&partial);
            return Err(Failure::LocalExists { path: shown_target });
        }
        Err(e) => {
            bar.clear();
            return Err(Failure::local(&shown_target, e));
        }
    }
    bar.finish();
    info!(file = %what, to = %shown_target, size, sha256 = %hex(&sha256), "downloaded and verified");
    drain(channel).await;
    Ok(())
}

/// Copies `source` here to `target` on the instance.
pub(crate) async fn upload(
    remote: &Remote,
    source: &Path,
    target: &[u8],
    settings: Settings,
    progress: &Progress,
) -> Result<(), Failure> {
    let what = remote.shown(target);
    let meta = std::fs::metadata(source).map_err(|e| Failure::local(source.display(), e))?;
    if !meta.is_file() {
        return Err(Failure::Other(format!("{}: not a regular file", source.display())));
    }
    let size = meta.len();
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;

    // What a cut upload left at the agent (spec 12.11), and the hash of as much of this file.
    let held = match (settings.resume, paths::split(target)) {
        (true, Some((dir, name))) => {
            let partial = paths::join(dir, &paths::partial_name(name));
            let found = match remote.stat(&partial).await {
                Ok(found) => found,
                // Allowed to write there but not to look: no resume, the whole file goes.
                Err(failure) if failure.is_prohibited() => {
                    info!(file = %what, "not allowed to look for a partial upload: sending it all");
                    None
                }
                Err(failure) => return Err(failure),
            };
            match found {
                Some(entry) if entry.kind == EntryKind::FILE && entry.size > 0 && entry.size <= size => {
                    let (path, len) = (source.to_path_buf(), entry.size);
                    blocking(move || local::hash_prefix(&path, len))
                        .await
                        .map_err(|e| Failure::local(source.display(), e))?
                        .map(|hasher| (len, hasher))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let (offset, prefix) = match &held {
        Some((len, hasher)) => (*len, Some(hasher.clone().finalize().into())),
        None => (0, None),
    };
    let request = FileRequest::Write { path: target, size, mode, overwrite: settings.force, offset, prefix };
    let mut channel = remote.open(&request).await?;
    let start = start(&mut channel, remote, &what).await?;
    // The agent says where it goes on from; this side never decides it (spec 5.19).
    let (from, hasher) = match (start.offset, held) {
        (0, held) => {
            if held.is_some() {
                info!(file = %what, "the agent's partial upload is not a prefix of this file: starting over");
            }
            (0, Sha256::new())
        }
        (offset, Some((len, hasher))) if offset == len => {
            info!(file = %what, offset, "continuing the upload from byte {offset}");
            (offset, hasher)
        }
        (offset, _) => {
            return Err(Failure::peer(&what, format!("the agent continues from byte {offset}, not asked")));
        }
    };
    let bar = progress.bar(&name_of(source.as_os_str().as_bytes()), size, from);
    let (input, hashed) = Source::start(source, from, size - from, hasher, bar.clone())
        .map_err(|e| Failure::local(source.display(), e))?;
    channel.send(Box::new(input));
    let mut hashed = Some(hashed);
    let mut ours = None;
    let mut reason = None;
    loop {
        let news = channel.next().await.inspect_err(|_| bar.clear())?;
        match news {
            FileNews::Sent => {
                let sha256 = match hashed.take() {
                    Some(hashed) => hashed
                        .await
                        .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread failed"))),
                    None => continue,
                };
                match sha256 {
                    Ok(sha256) => {
                        channel.end(size, sha256);
                        ours = Some(sha256);
                    }
                    // The agent keeps what it has for a resume; the channel is cancelled.
                    Err(e) => {
                        bar.clear();
                        return Err(Failure::local(source.display(), e));
                    }
                }
            }
            FileNews::File(OwnedFileEvent::End { size: stated, sha256 }) => {
                bar.clear();
                let Some(ours) = ours else {
                    return Err(Failure::peer(&what, "the agent ended the upload before this side did"));
                };
                if (stated, sha256) != (size, ours) {
                    let detail = format!(
                        "the agent states {stated} bytes with SHA-256 {}; {size} were sent with {}",
                        hex(&sha256),
                        hex(&ours)
                    );
                    return Err(Failure::Verification { what, detail });
                }
                break;
            }
            FileNews::File(OwnedFileEvent::Failed { error, message }) => {
                bar.clear();
                return Err(remote.failed(error, &message));
            }
            FileNews::Reason(code, message) => reason = Some((code, message)),
            FileNews::Closed => {
                bar.clear();
                return Err(ended(&what, reason));
            }
            FileNews::File(_) => {
                bar.clear();
                return Err(Failure::peer(&what, "the agent answered out of turn"));
            }
            FileNews::Data(bytes) => {
                channel.consume(bytes.len());
                return Err(Failure::peer(&what, "the agent sent Data on an upload"));
            }
            _ => {}
        }
    }
    bar.finish();
    info!(file = %what, size, sha256 = %ours.map(|s| hex(&s)).unwrap_or_default(), "uploaded and verified");
    drain(channel).await;
    Ok(())
}

/// A path's last component, for a bar.
fn name_of(path: &[u8]) -> String {
    let name = path.rsplit(|&b| b == b'/').find(|part| !part.is_empty()).unwrap_or(path);
    String::from_utf8_lossy(name).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `work` on a thread where blocking is expected.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("a worker thread failed")))
}
