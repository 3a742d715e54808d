//! The instance's side of `cp` and `ls`: the requests answered with Entries (Home, Stat,
//! List) and Mkdir, each a File channel on the one connection (spec 5.19).

use session_client::{Connection, FileChannel, FileNews};
use session_proto::file::FileRequest;
use session_proto::owned::{OwnedFileEvent, OwnedFileRequest};
use session_proto::{Entry, EntryKind, FileError, Record};
use tokio::sync::OnceCell;

use super::Failure;
use super::paths;

/// How many symbolic links are followed to find what a target names, as a kernel gives up
/// on a loop.
const MAX_LINKS: usize = 16;

/// One file as the instance describes it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteEntry {
    /// A file name in a listing; a path for Home and Stat.
    pub(crate) name: Vec<u8>,
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: u64,
    /// A symbolic link's target; empty otherwise.
    pub(crate) target: Vec<u8>,
}

impl RemoteEntry {
    fn new(entry: &Entry<'_>) -> RemoteEntry {
        // An unknown kind means "other" (spec 5.19).
        let kind = if entry.kind.0 > EntryKind::OTHER.0 { EntryKind::OTHER } else { entry.kind };
        RemoteEntry {
            name: entry.name.to_vec(),
            kind,
            size: entry.size,
            mode: entry.mode,
            mtime: entry.mtime,
            target: entry.target.to_vec(),
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind == EntryKind::DIRECTORY
    }
}

/// An instance's files, reached over one connection to the relay.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) connection: Connection,
    pub(crate) instance: String,
    home: OnceCell<Vec<u8>>,
}

impl Remote {
    pub(crate) fn new(connection: Connection, instance: &str) -> Remote {
        Remote { connection, instance: instance.to_owned(), home: OnceCell::new() }
    }

    /// `path` for people: `web-1:/srv/app`.
    pub(crate) fn shown(&self, path: &[u8]) -> String {
        paths::shown(&self.instance, path)
    }

    /// The failure the instance's Failed says.
    pub(crate) fn failed(&self, error: FileError, message: &str) -> Failure {
        Failure::Remote { instance: self.instance.clone(), error, message: message.to_owned() }
    }

    /// Opens a File channel for `request`.
    pub(crate) async fn open(&self, request: &FileRequest<'_>) -> Result<FileChannel, Failure> {
        let request = OwnedFileRequest::new(request).map_err(|e| {
            Failure::Usage(format!("{}: not a path the instance can take: {e}", self.instance))
        })?;
        Ok(self.connection.open_file(request).await?)
    }

    /// A path as typed after `instance:`, made absolute: relative ones are in the login
    /// user's home directory, asked of the instance once.
    pub(crate) async fn resolve(&self, typed: &[u8]) -> Result<Vec<u8>, Failure> {
        let home: &[u8] = if paths::is_relative(typed) { self.home().await? } else { b"/" };
        Ok(paths::resolve(typed, home))
    }

    /// The login user's home directory.
    pub(crate) async fn home(&self) -> Result<&[u8], Failure> {
        let home = self
            .home
            .get_or_try_init(|| async {
                let mut entries = self.entries(&FileRequest::Home, "home directory", false).await?;
                match entries.pop() {
                    Some(entry)
                        if entries.is_empty() && session_proto::file::check_path(&entry.name).is_ok() =>
                    {
                        Ok(entry.name)
                    }
                    _ => Err(Failure::peer(
                        format!("{}: home directory", self.instance),
                        "the instance's answer is not one absolute path",
                    )),
                }
            })
            .await?;
        Ok(home)
    }

    /// The Entry of `path` itself (a symbolic link is not followed), or `None` if there is
    /// nothing at `path`.
    pub(crate) async fn stat(&self, path: &[u8]) -> Result<Option<RemoteEntry>, Failure> {
        match self.entries(&FileRequest::Stat { path }, &self.shown(path), false).await {
            Ok(mut entries) if entries.len() == 1 => Ok(entries.pop()),
            Ok(_) => Err(Failure::peer(self.shown(path), "the instance's answer is not one entry")),
            Err(Failure::Remote { error: FileError::NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What `path` names once symbolic links are followed (as a `cp` into a link to a
    /// directory must): its Entry, or `None` if nothing is there.
    pub(crate) async fn stat_following(&self, path: &[u8]) -> Result<Option<RemoteEntry>, Failure> {
        let mut path = path.to_vec();
        for _ in 0..MAX_LINKS {
            let Some(entry) = self.stat(&path).await? else { return Ok(None) };
            if entry.kind != EntryKind::SYMLINK {
                return Ok(Some(entry));
            }
            // A relative target is in the link's directory.
            let dir = paths::split(&path).map_or(&b"/"[..], |(dir, _)| dir);
            path = paths::resolve(&entry.target, dir);
        }
        Err(self.failed(FileError::IO, &format!("too many levels of symbolic links: {}", self.shown(&path))))
    }

    /// The entries of the directory `path`, sorted by name, byte for byte.
    pub(crate) async fn list(&self, path: &[u8]) -> Result<Vec<RemoteEntry>, Failure> {
        let mut entries = self.entries(&FileRequest::List { path }, &self.shown(path), true).await?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Makes the directory `path`; one that is there already is fine.
    pub(crate) async fn mkdir(&self, path: &[u8], mode: u32) -> Result<(), Failure> {
        match self.done(&FileRequest::Mkdir { path, mode }, &self.shown(path)).await {
            Err(exists @ Failure::Remote { error: FileError::EXISTS, .. }) => {
                match self.stat_following(path).await {
                    Ok(Some(entry)) if entry.is_dir() => Ok(()),
                    // Not to be looked at: taken as the directory it is meant to be; were it a
                    // file, each copy into it fails, saying so.
                    Err(failure) if failure.is_prohibited() => Ok(()),
                    Ok(_) => Err(exists),
                    Err(failure) => Err(failure),
                }
            }
            other => other,
        }
    }

    /// Runs a request answered by Done alone.
    async fn done(&self, request: &FileRequest<'_>, what: &str) -> Result<(), Failure> {
        let entries = self.entries(request, what, false).await?;
        if entries.is_empty() {
            Ok(())
        } else {
            Err(Failure::peer(what, "the instance sent entries unasked"))
        }
    }

    /// Runs a request answered by Entry records and Done (or Failed): the entries. In a
    /// listing (`listing`), a name must be a file name (spec 5.19).
    async fn entries(
        &self,
        request: &FileRequest<'_>,
        what: &str,
        listing: bool,
    ) -> Result<Vec<RemoteEntry>, Failure> {
        let mut channel = self.open(request).await?;
        let mut buffered: Vec<u8> = Vec::new();
        let mut entries = Vec::new();
        let mut answer: Option<Result<(), Failure>> = None;
        let mut reason = None;
        loop {
            match channel.next().await? {
                FileNews::Data(bytes) => {
                    channel.consume(bytes.len());
                    if answer.is_some() {
                        return Err(Failure::peer(what, "the instance sent entries after its answer"));
                    }
                    buffered.extend_from_slice(&bytes);
                    let taken = decode(&buffered, &mut entries, listing)
                        .map_err(|e| Failure::peer(what, format!("a malformed entry: {e}")))?;
                    buffered.drain(..taken);
                }
                FileNews::File(OwnedFileEvent::Done) if answer.is_none() => answer = Some(Ok(())),
                FileNews::File(OwnedFileEvent::Failed { error, message }) if answer.is_none() => {
                    answer = Some(Err(self.failed(error, &message)));
                }
                FileNews::File(_) => return Err(Failure::peer(what, "the instance answered out of turn")),
                FileNews::Reason(code, message) => reason = Some((code, message)),
                FileNews::Closed => break,
                // The session's id, the Eof before the Close: nothing to act on.
                _ => {}
            }
        }
        match answer {
            Some(Ok(())) if buffered.is_empty() => Ok(entries),
            Some(Ok(())) => Err(Failure::peer(what, "the instance's last entry is cut short")),
            Some(Err(failure)) => Err(failure),
            None if reason.is_some() => Err(Failure::Session(session_client::Error::Ended { reason })),
            None => Err(Failure::peer(what, "the instance ended the request without an answer")),
        }
    }
}

/// Decodes the whole records at the start of `input` into `entries`: how many bytes they took.
fn decode(
    input: &[u8],
    entries: &mut Vec<RemoteEntry>,
    listing: bool,
) -> Result<usize, session_proto::Error> {
    let mut taken = 0;
    while let Some(rest) = input.get(taken..).filter(|rest| !rest.is_empty()) {
        match Entry::decode_record(rest)? {
            Record::Entry(entry, len) => {
                if listing && (entry.name.contains(&b'/') || matches!(entry.name, b"." | b"..")) {
                    return Err(session_proto::Error::InvalidValue);
                }
                entries.push(RemoteEntry::new(&entry));
                taken += len;
            }
            Record::Incomplete => break,
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &[u8]) -> Vec<u8> {
        let entry = Entry { name, kind: EntryKind::FILE, size: 3, mode: 0o644, mtime: 9, target: b"" };
        let mut buf = vec![0; entry.record_len()];
        entry.encode_record(&mut buf).unwrap();
        buf
    }

    #[test]
    fn records_split_anywhere_decode_once_whole() {
        let stream = [record(b"a b"), record(b"\xff.bin")].concat();
        for cut in 0..stream.len() {
            let mut entries = Vec::new();
            let mut buffered = stream[..cut].to_vec();
            let taken = decode(&buffered, &mut entries, true).unwrap();
            buffered.drain(..taken);
            buffered.extend_from_slice(&stream[cut..]);
            let taken = decode(&buffered, &mut entries, true).unwrap();
            assert_eq!(taken, buffered.len());
            let names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
            assert_eq!(names, [b"a b".to_vec(), b"\xff.bin".to_vec()], "cut at {cut}");
        }
    }

    #[test]
    fn a_listing_name_with_a_slash_or_dots_is_malformed() {
        for bad in [&b"a/b"[..], b".", b".."] {
            assert!(decode(&record(bad), &mut Vec::new(), true).is_err());
            assert!(decode(&record(bad), &mut Vec::new(), false).is_ok());
        }
    }
}
