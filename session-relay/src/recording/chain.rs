//! The hash chain beside each recording, in `<id>.chain`: a first line naming the recording,
//! then one line per chunk of the `.cast` file (where it is, how long, the time of its first
//! event, and its SHA-256 chained to the chunk before's), and, when the recording ended as it
//! should, a last line saying how many chunks there are. The `.cast` file stays plain asciicast
//! for any player; the chain is what `admin recording verify` and every read check it against.
//!
//! A chunk's hash is `SHA-256(previous hash ‖ chunk bytes)`, the first chunk's previous hash
//! `SHA-256("session-relay recording v1\0" ‖ id)`: a changed chunk changes its hash; a removed
//! one shifts the offsets of all after it (or, removed from the chain too, breaks the chain at
//! the next); and a chain cannot be moved to another recording's file.

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

/// A SHA-256 digest.
pub(crate) type Hash = [u8; 32];

/// The hash that comes before the first chunk of recording `id`.
pub(crate) fn seed(id: &str) -> Hash {
    let mut context = Context::new(&SHA256);
    context.update(b"session-relay recording v1\0");
    context.update(id.as_bytes());
    digest(context)
}

/// The hash of `chunk` after `previous`.
pub(crate) fn next(previous: &Hash, chunk: &[u8]) -> Hash {
    let mut context = Context::new(&SHA256);
    context.update(previous);
    context.update(chunk);
    digest(context)
}

fn digest(context: Context) -> Hash {
    let mut hash = [0; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// The chain's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    recording: String,
    version: u8,
    hash: String,
}

/// One chunk of the `.cast` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunk {
    /// Its place in the chain, from 0 (the header line).
    pub chunk: u64,
    /// Where it starts in the `.cast` file.
    pub offset: u64,
    /// Its bytes.
    pub len: u64,
    /// The time of its first event, in microseconds since the session started: where a player
    /// seeks to.
    pub micros: u64,
    /// Its hash, in hex, chained to the chunk before's.
    pub sha256: String,
}

/// The last line, once the recording ended as it should.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// How many chunks there are.
    pub chunks: u64,
    /// The `.cast` file's length.
    pub length: u64,
    /// The last chunk's hash.
    pub sha256: String,
    /// Bytes of output and input that were not recorded (the recorder fell behind, or the
    /// recording reached its limit).
    pub unrecorded: u64,
}

/// A line of the chain, as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum ChainLine {
    Head(Head),
    Chunk(Chunk),
    End { end: End },
}

/// The first line of recording `id`'s chain.
pub(crate) fn head_line(id: &str) -> Vec<u8> {
    line(&ChainLine::Head(Head { recording: id.to_owned(), version: 1, hash: "sha256".to_owned() }))
}

/// The line of `chunk`.
pub(crate) fn chunk_line(chunk: &Chunk) -> Vec<u8> {
    line(&ChainLine::Chunk(chunk.clone()))
}

/// The line of a recording's clean end.
pub(crate) fn end_line(end: &End) -> Vec<u8> {
    line(&ChainLine::End { end: end.clone() })
}

fn line(value: &ChainLine) -> Vec<u8> {
    // Strings and numbers always serialize.
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// A chain as read back: what the lines say, not yet checked against the `.cast` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The recording it names.
    pub recording: String,
    /// Its chunks, in order.
    pub chunks: Vec<Chunk>,
    /// Its end, when the recording ended as it should.
    pub end: Option<End>,
}

/// Why a chain cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChain {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl core::fmt::Display for BadChain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "line {} of the chain: {}", self.line, self.problem)
    }
}

impl std::error::Error for BadChain {}

/// Reads a chain. A last line without its newline is a write the relay did not finish (it was
/// killed mid-line), and is left out, as its chunk is.
pub(crate) fn parse(text: &str) -> Result<Chain, BadChain> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut lines = complete.split('\n').enumerate().filter(|(_, line)| !line.is_empty());
    let bad = |line: usize, problem: String| BadChain { line: line + 1, problem };
    let recording = match lines.next() {
        Some((i, line)) => match serde_json::from_str(line) {
            Ok(ChainLine::Head(head)) if head.version == 1 && head.hash == "sha256" => head.recording,
            _ => return Err(bad(i, "not the head of a version 1 SHA-256 chain".to_owned())),
        },
        None => return Err(bad(0, "empty".to_owned())),
    };
    let mut chain = Chain { recording, chunks: Vec::new(), end: None };
    for (i, line) in lines {
        if chain.end.is_some() {
            return Err(bad(i, "a line after the end".to_owned()));
        }
        match serde_json::from_str(line) {
            Ok(ChainLine::Chunk(chunk)) => chain.chunks.push(chunk),
            Ok(ChainLine::End { end }) => chain.end = Some(end),
            Ok(ChainLine::Head(_)) => return Err(bad(i, "a second head".to_owned())),
            Err(e) => return Err(bad(i, format!("not a chunk: {e}"))),
        }
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_and_a_torn_last_line_is_left_out() {
        let chunk = Chunk { chunk: 0, offset: 0, len: 5, micros: 0, sha256: hex::encode(seed("a")) };
        let end = End { chunks: 1, length: 5, sha256: chunk.sha256.clone(), unrecorded: 0 };
        let mut text = [head_line("a"), chunk_line(&chunk), end_line(&end)].concat();
        let chain = parse(core::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(chain, Chain { recording: "a".into(), chunks: vec![chunk.clone()], end: Some(end) });
        text.truncate(text.len() - 10);
        let chain = parse(core::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!((chain.chunks.len(), chain.end), (1, None));
        assert_eq!(parse("{\"x\": 1}\n").unwrap_err().line, 1);
    }

    #[test]
    fn the_chain_depends_on_every_byte_and_the_recording() {
        let a = next(&seed("r1"), b"chunk");
        assert_ne!(a, next(&seed("r2"), b"chunk"));
        assert_ne!(a, next(&seed("r1"), b"chunK"));
        assert_eq!(a, next(&seed("r1"), b"chunk"));
    }
}
