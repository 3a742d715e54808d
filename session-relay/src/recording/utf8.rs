//! Terminal output as text: asciicast carries strings, a process writes bytes. A multi-byte
//! character may be split across two Data frames (a read returns whatever the pty had), so the
//! decoder carries an incomplete sequence over to the next bytes instead of replacing it; only
//! bytes that can never become UTF-8 are replaced, by U+FFFD, as `String::from_utf8_lossy`
//! would replace them in the whole stream.

/// The longest UTF-8 sequence: at most this minus one bytes are ever carried over.
const MAX_SEQUENCE: usize = 4;

/// A streaming UTF-8 decoder: [`Decoder::decode`] of the pieces of a byte stream, concatenated,
/// is `String::from_utf8_lossy` of the whole stream once [`Decoder::finish`] is added.
#[derive(Debug, Default, Clone)]
pub(crate) struct Decoder {
    /// The start of a sequence the last bytes did not complete.
    carried: heapless::Vec<u8, MAX_SEQUENCE>,
}

impl Decoder {
    /// The text of `bytes` after what was carried, keeping an incomplete sequence at the end.
    pub(crate) fn decode(&mut self, mut bytes: &[u8]) -> String {
        let mut text = String::with_capacity(bytes.len() + self.carried.len());
        // Complete the carried sequence first, a byte at a time: at most three bytes.
        while !self.carried.is_empty() {
            let Some((&next, rest)) = bytes.split_first() else { return text };
            // Full: the carried bytes were a sequence's start, so a fourth byte always decides.
            let _ = self.carried.push(next);
            match core::str::from_utf8(&self.carried) {
                Ok(c) => {
                    text.push_str(c);
                    self.carried.clear();
                    bytes = rest;
                }
                Err(e) if e.error_len().is_none() => bytes = rest,
                Err(_) => {
                    // Not a continuation: the carried bytes are invalid, and `next` starts anew.
                    self.carried.pop();
                    text.push(char::REPLACEMENT_CHARACTER);
                    self.carried.clear();
                }
            }
        }
        let mut chunks = bytes.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            text.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let last = chunks.peek().is_none();
            // The final invalid run is a truncated sequence when it is all that is left and
            // could still be completed; `utf8_chunks` reports such a run as one piece.
            if last && incomplete(invalid) {
                // At most three bytes: an incomplete sequence is shorter than a whole one.
                let _ = self.carried.extend_from_slice(invalid);
            } else {
                text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        text
    }

    /// What is left at the end of the stream, or before a gap in it: an incomplete sequence
    /// is replaced.
    pub(crate) fn finish(&mut self) -> Option<char> {
        let had = !self.carried.is_empty();
        self.carried.clear();
        had.then_some(char::REPLACEMENT_CHARACTER)
    }
}

/// Whether `bytes` (one invalid run of `utf8_chunks`, at the end) is the start of a valid
/// sequence that more bytes could complete.
fn incomplete(bytes: &[u8]) -> bool {
    match core::str::from_utf8(bytes) {
        Err(e) => e.valid_up_to() == 0 && e.error_len().is_none(),
        Ok(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream decoded in the given pieces, with its end.
    fn pieces(parts: &[&[u8]]) -> String {
        let mut decoder = Decoder::default();
        let mut text: String = parts.iter().map(|part| decoder.decode(part)).collect();
        text.extend(decoder.finish());
        text
    }

    #[test]
    fn a_character_split_anywhere_decodes_whole() {
        let whole = "a€b😀c é".as_bytes();
        for cut in 0..=whole.len() {
            let (left, right) = whole.split_at(cut);
            assert_eq!(pieces(&[left, right]), "a€b😀c é", "cut at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(pieces(&bytes), "a€b😀c é");
    }

    #[test]
    fn invalid_bytes_are_replaced_as_from_utf8_lossy_replaces_them() {
        for stream in [
            &b"ok\xffok"[..],
            b"\xe2\x82",
            b"\xe2\x82x",
            b"\xf0\x9f\x98",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"a\x80\x80b",
            b"\xe2\xe2\x82\xac",
            b"\xf4\x90\x80\x80",
        ] {
            let lossy = String::from_utf8_lossy(stream);
            assert_eq!(pieces(&[stream]), lossy, "{stream:x?}");
            for cut in 0..=stream.len() {
                let (left, right) = stream.split_at(cut);
                assert_eq!(pieces(&[left, right]), lossy, "{stream:x?} cut at {cut}");
            }
        }
    }

    #[test]
    fn nothing_is_carried_beyond_one_sequence() {
        let mut decoder = Decoder::default();
        assert_eq!(decoder.decode(b"\xf0\x9f"), "");
        assert_eq!(decoder.decode(b"\x98"), "");
        assert_eq!(decoder.decode(b"\x80!"), "😀!");
        assert_eq!(decoder.finish(), None);
        assert_eq!(decoder.decode(b"\xe2"), "");
        assert_eq!(decoder.finish(), Some(char::REPLACEMENT_CHARACTER), "cut off at a gap");
        assert_eq!(decoder.decode(b"\x82\xac"), "\u{fffd}\u{fffd}", "the rest alone is invalid");
    }
}
