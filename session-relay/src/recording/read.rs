//! Reading recordings back, a chunk at a time, each checked against the chain before it is
//! given out: what `session-relay admin recording` (verify, export, play), `/v1/recordings/<id>`
//! and a player use. Nothing here speaks HTTP: a player asks for the chunk that holds a byte
//! offset ([`Recording::chunk_at`]) or a time ([`Recording::chunk_at_time`]), reads chunk 0 for
//! the header and then from there on ([`Recording::read`]), and calls [`Recording::refresh`] to
//! follow a recording still being written. Every chunk starts at a line and ends with one, so
//! it can be parsed alone ([`super::parse_line`]); a player that seeks replays the output from
//! chunk 1 up to the time sought, as asciicast has no snapshots of the screen.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::time::Duration;

use super::asciicast::{Line, ToV2, parse_line};
use super::chain::{self, BadChain, Chain, Chunk, End, Hash};
use super::index::Entry;

/// Why a recording cannot be read, or does not verify.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// A file failed: `{path}: {error}`.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The chain cannot be read.
    Chain(BadChain),
    /// The chain names another recording: `the chain is recording {found}'s, not {id}'s`.
    OtherRecording {
        /// The recording asked for.
        id: String,
        /// The one the chain names.
        found: String,
    },
    /// A chunk's bytes are not those the chain hashed: `chunk {chunk} (bytes {offset}..{end})
    /// was changed`.
    Changed {
        /// Its number.
        chunk: u64,
        /// Where it starts.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// The `.cast` file ends before a chunk the chain names: `chunk {chunk} at byte {offset}
    /// is missing: the file ends at {length}`.
    Missing {
        /// Its number.
        chunk: u64,
        /// Where it starts.
        offset: u64,
        /// The file's length.
        length: u64,
    },
    /// The chain's chunks do not follow each other: a line was removed or changed.
    Broken {
        /// The chunk where the chain breaks.
        chunk: u64,
        /// How.
        problem: String,
    },
    /// The recording ended as it should, and its end disagrees with what is there.
    Truncated {
        /// What the end, or the store, says.
        expected: String,
        /// What is there.
        found: String,
    },
    /// A metadata entry has no file to read.
    NoFile(String),
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            ReadError::Chain(e) => write!(f, "{e}"),
            ReadError::OtherRecording { id, found } => {
                write!(f, "the chain is recording {found}'s, not {id}'s")
            }
            ReadError::Changed { chunk, offset, len } => {
                write!(
                    f,
                    "chunk {chunk} (bytes {offset}..{}) was changed: its hash is not the chain's",
                    offset + len
                )
            }
            ReadError::Missing { chunk, offset, length } => {
                write!(f, "chunk {chunk} at byte {offset} is missing: the file ends at byte {length}")
            }
            ReadError::Broken { chunk, problem } => write!(f, "the chain breaks at chunk {chunk}: {problem}"),
            ReadError::Truncated { expected, found } => {
                write!(f, "chunks were removed from the end: {expected}, but {found}")
            }
            ReadError::NoFile(id) => write!(f, "recording {id} has metadata only: no output was recorded"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { error, .. } => Some(error),
            ReadError::Chain(e) => Some(e),
            _ => None,
        }
    }
}

/// A recording's files, open for reading.
#[derive(Debug)]
pub struct Recording {
    id: String,
    path: PathBuf,
    cast: File,
    chain: Chain,
}

/// What [`Recording::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Chunks checked.
    pub chunks: u64,
    /// Bytes of the `.cast` they cover.
    pub length: u64,
    /// The recording ended as it should (its relay wrote its end); otherwise it is still being
    /// written, or its relay died.
    pub ended: bool,
    /// Bytes after the last chunk the chain names: a chunk whose write the relay did not finish
    /// (it was killed), left out of every read.
    pub unchained: u64,
    /// Bytes of output and input the recording says were not recorded.
    pub unrecorded: u64,
    /// The last chunk's hash, in hex.
    pub sha256: String,
}

impl Recording {
    /// Opens recording `id`, whose `.cast` is at `cast` (the chain beside it, `.chain`).
    pub fn open(id: &str, cast: &Path) -> Result<Recording, ReadError> {
        let file = File::open(cast).map_err(|error| ReadError::Io { path: cast.to_owned(), error })?;
        let chain = read_chain(&cast.with_extension("chain"))?;
        if chain.recording != id {
            return Err(ReadError::OtherRecording { id: id.to_owned(), found: chain.recording });
        }
        Ok(Recording { id: id.to_owned(), path: cast.to_owned(), cast: file, chain })
    }

    /// Opens the recording an index entry names.
    pub fn of(entry: &Entry) -> Result<Recording, ReadError> {
        let path = entry.path.as_deref().ok_or_else(|| ReadError::NoFile(entry.id.clone()))?;
        Recording::open(&entry.id, path)
    }

    /// Reads the chain again: a recording being written has more chunks since.
    pub fn refresh(&mut self) -> Result<(), ReadError> {
        let chain = read_chain(&self.path.with_extension("chain"))?;
        if chain.recording != self.id {
            return Err(ReadError::OtherRecording { id: self.id.clone(), found: chain.recording });
        }
        self.chain = chain;
        Ok(())
    }

    /// The chunks the chain names, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chain.chunks
    }

    /// The recording's end, once its relay wrote it.
    pub fn end(&self) -> Option<&End> {
        self.chain.end.as_ref()
    }

    /// The chunk holding byte `offset` of the `.cast`; `None` past the last one.
    pub fn chunk_at(&self, offset: u64) -> Option<usize> {
        let chunks = &self.chain.chunks;
        let after = chunks.partition_point(|c| c.offset <= offset);
        after.checked_sub(1).filter(|&i| chunks.get(i).is_some_and(|c| offset < c.offset + c.len))
    }

    /// The last chunk whose first event is at or before `micros` after the start (chunk 0, the
    /// header, for any time before the first event).
    pub fn chunk_at_time(&self, micros: u64) -> usize {
        self.chain.chunks.partition_point(|c| c.micros <= micros).saturating_sub(1)
    }

    /// Chunk `index`'s bytes, once they are checked against the chain: the hash of the chunk
    /// before, and their own.
    pub fn read(&mut self, index: usize) -> Result<Vec<u8>, ReadError> {
        let chunk =
            self.chain.chunks.get(index).cloned().ok_or_else(|| ReadError::Broken {
                chunk: index as u64,
                problem: "no such chunk".to_owned(),
            })?;
        let previous = match index.checked_sub(1) {
            None => chain::seed(&self.id),
            Some(before) => self.hash_of(before)?,
        };
        self.check_place(index)?;
        let bytes = self.bytes(&chunk)?;
        if hex::encode(chain::next(&previous, &bytes)) != chunk.sha256 {
            return Err(ReadError::Changed { chunk: chunk.chunk, offset: chunk.offset, len: chunk.len });
        }
        Ok(bytes)
    }

    /// Checks every chunk, in order, and the end if there is one.
    pub fn verify(&mut self) -> Result<Verified, ReadError> {
        let mut previous = chain::seed(&self.id);
        for index in 0..self.chain.chunks.len() {
            self.check_place(index)?;
            let chunk = self.chain.chunks[index].clone();
            let bytes = self.bytes(&chunk)?;
            let hash = chain::next(&previous, &bytes);
            if hex::encode(hash) != chunk.sha256 {
                return Err(ReadError::Changed { chunk: chunk.chunk, offset: chunk.offset, len: chunk.len });
            }
            previous = hash;
        }
        let length = self.chain.chunks.last().map_or(0, |c| c.offset + c.len);
        let file_length = self.file_length()?;
        let sha256 = hex::encode(previous);
        if let Some(end) = &self.chain.end {
            let found =
                format!("{} chunks, {length} bytes, {file_length} in the file", self.chain.chunks.len());
            if end.chunks != self.chain.chunks.len() as u64
                || end.length != length
                || file_length != length
                || end.sha256 != sha256
            {
                return Err(ReadError::Truncated {
                    expected: format!("its end names {} chunks and {} bytes", end.chunks, end.length),
                    found,
                });
            }
        }
        Ok(Verified {
            chunks: self.chain.chunks.len() as u64,
            length,
            ended: self.chain.end.is_some(),
            unchained: file_length.saturating_sub(length),
            unrecorded: self.chain.end.as_ref().map_or(0, |end| end.unrecorded),
            sha256,
        })
    }

    /// Checks `verified` against the store's entry, a second witness kept apart from the files:
    /// a recording whose files were rewritten whole, chain and all, disagrees with it.
    pub fn check_entry(verified: &Verified, entry: &Entry) -> Result<(), ReadError> {
        if let (Some(chunks), Some(sha256)) = (entry.chunks, &entry.sha256) {
            if chunks != verified.chunks || *sha256 != verified.sha256 {
                return Err(ReadError::Truncated {
                    expected: format!("the store's index names {chunks} chunks ending in {sha256}"),
                    found: format!("the files hold {} ending in {}", verified.chunks, verified.sha256),
                });
            }
        }
        Ok(())
    }

    /// Writes the recording, checked, to `out`: as it is (asciicast v3), or as v2. Every chunk
    /// is checked before anything is written, so that a changed recording is not half exported.
    pub fn export(&mut self, v2: bool, out: &mut impl Write) -> Result<Verified, ExportError> {
        let verified = self.verify()?;
        let mut converter = ToV2::default();
        for index in 0..self.chain.chunks.len() {
            let bytes = self.read(index)?;
            if !v2 {
                out.write_all(&bytes).map_err(ExportError::Write)?;
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines() {
                if let Some(line) = converter.line(line).map_err(|e| ExportError::Format(e.0))? {
                    out.write_all(line.as_bytes()).map_err(ExportError::Write)?;
                }
            }
        }
        out.flush().map_err(ExportError::Write)?;
        Ok(verified)
    }

    fn hash_of(&self, index: usize) -> Result<Hash, ReadError> {
        let chunk = &self.chain.chunks[index];
        let mut hash = [0; 32];
        hex::decode_to_slice(&chunk.sha256, &mut hash).map_err(|_| ReadError::Broken {
            chunk: chunk.chunk,
            problem: "its hash is not 64 hex digits".to_owned(),
        })?;
        Ok(hash)
    }

    /// That chunk `index` is where the one before ends, numbered after it.
    fn check_place(&self, index: usize) -> Result<(), ReadError> {
        let chunk = &self.chain.chunks[index];
        let (number, offset) = match index.checked_sub(1) {
            None => (0, 0),
            Some(before) => {
                let before = &self.chain.chunks[before];
                (before.chunk + 1, before.offset + before.len)
            }
        };
        if chunk.chunk != number || chunk.offset != offset {
            return Err(ReadError::Broken {
                chunk: number,
                problem: format!(
                    "chunk {number} should start at byte {offset}, and the chain names chunk {} at byte {}",
                    chunk.chunk, chunk.offset
                ),
            });
        }
        Ok(())
    }

    fn bytes(&mut self, chunk: &Chunk) -> Result<Vec<u8>, ReadError> {
        let io = |error| ReadError::Io { path: self.path.clone(), error };
        let length = self.file_length()?;
        let len = usize::try_from(chunk.len).ok().filter(|_| chunk.offset + chunk.len <= length);
        let Some(len) = len else {
            return Err(ReadError::Missing { chunk: chunk.chunk, offset: chunk.offset, length });
        };
        let mut bytes = vec![0; len];
        self.cast.seek(SeekFrom::Start(chunk.offset)).map_err(io)?;
        self.cast.read_exact(&mut bytes).map_err(|error| ReadError::Io { path: self.path.clone(), error })?;
        Ok(bytes)
    }

    fn file_length(&self) -> Result<u64, ReadError> {
        self.cast
            .metadata()
            .map(|m| m.len())
            .map_err(|error| ReadError::Io { path: self.path.clone(), error })
    }
}

fn read_chain(path: &Path) -> Result<Chain, ReadError> {
    let text = std::fs::read(path).map_err(|error| ReadError::Io { path: path.to_owned(), error })?;
    chain::parse(&String::from_utf8_lossy(&text)).map_err(ReadError::Chain)
}

/// Why an export stopped.
#[derive(Debug)]
pub enum ExportError {
    /// The recording does not verify, or cannot be read.
    Read(ReadError),
    /// A verified chunk is not asciicast: a bug of the writer's, not a change.
    Format(String),
    /// The output failed.
    Write(std::io::Error),
}

impl From<ReadError> for ExportError {
    fn from(e: ReadError) -> Self {
        ExportError::Read(e)
    }
}

impl core::fmt::Display for ExportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ExportError::Read(e) => write!(f, "{e}"),
            ExportError::Format(e) => write!(f, "not asciicast: {e}"),
            ExportError::Write(e) => write!(f, "writing the export: {e}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// How [`play`] paces a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// How many times faster than it happened: 1 is real time.
    pub speed: f64,
    /// The longest pause between two events, after the speed; `None` keeps every pause.
    pub max_wait: Option<Duration>,
}

/// Plays a recording's output to `out` at `pace`, checking each chunk as it comes, and waiting
/// with `sleep`: a terminal shows it as it was shown. Input, resizes and markers are not
/// written (the terminal playing it has its own size).
pub fn play(
    recording: &mut Recording,
    pace: Pace,
    out: &mut impl Write,
    mut sleep: impl FnMut(Duration),
) -> Result<(), ExportError> {
    for index in 0..recording.chunks().len() {
        let bytes = recording.read(index)?;
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let Line::Event { micros, code, data } =
                parse_line(line).map_err(|e| ExportError::Format(e.0))?
            else {
                continue;
            };
            let wait = Duration::from_micros(micros).div_f64(pace.speed.max(f64::MIN_POSITIVE));
            let wait = pace.max_wait.map_or(wait, |most| wait.min(most));
            if !wait.is_zero() {
                out.flush().map_err(ExportError::Write)?;
                sleep(wait);
            }
            if code == "o" {
                out.write_all(data.as_bytes()).map_err(ExportError::Write)?;
            }
        }
    }
    out.flush().map_err(ExportError::Write)
}
