//! A frame accumulator for byte streams that arrive in pieces, in fixed storage.

use heapless::Vec;

use crate::{Error, HEADER_LEN, MAX_BODY_LEN, MIN_MAX_FRAME, Message, frame};

/// Gathers frames from a byte stream that arrives in pieces of any size (a UART, a TCP stack's
/// receive callback) into a buffer of `N` bytes, with no allocator.
///
/// It accepts bodies of up to `N - HEADER_LEN` bytes: announce [`Accumulator::max_frame`] in
/// Hello. `N` must leave room for [`MIN_MAX_FRAME`], which every peer may send, and no more than
/// the largest frame; any other `N` fails to compile when the accumulator is created. A frame that lies whole in the input is decoded where it lies, without a
/// copy; only a frame split across inputs is copied, once.
#[derive(Debug)]
pub struct Accumulator<const N: usize> {
    buf: Vec<u8, N>,
}

/// What [`Accumulator::feed`] found. The message borrows from the accumulator or the input
/// (`'m`); the unused input keeps the input's own lifetime (`'a`), so it can be fed back in once
/// the message is dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Feed<'m, 'a> {
    /// All input was taken and no frame is complete yet.
    Consumed,
    /// A frame is complete; `rest` is the input it did not use: feed it next.
    Frame {
        /// The decoded frame.
        message: Message<'m>,
        /// Unused input.
        rest: &'a [u8],
    },
    /// A frame failed to decode; `rest` is the input after it. After
    /// [`Error::FrameTooLarge`] the stream cannot be resynchronised and `rest` starts inside
    /// the oversized body: close the connection.
    Error {
        /// Why.
        error: Error,
        /// Unused input.
        rest: &'a [u8],
    },
}

impl<const N: usize> Accumulator<N> {
    const SIZE_IN_RANGE: () = {
        assert!(N >= HEADER_LEN + MIN_MAX_FRAME, "accumulator below MIN_MAX_FRAME");
        assert!(N <= HEADER_LEN + MAX_BODY_LEN, "accumulator above the largest frame");
    };

    /// An empty accumulator.
    pub const fn new() -> Self {
        let () = Self::SIZE_IN_RANGE;
        Accumulator { buf: Vec::new() }
    }

    /// The largest body it accepts: announce this as `max_frame` in Hello.
    pub const fn max_frame(&self) -> usize {
        N - HEADER_LEN
    }

    /// Bytes of a partial frame held from earlier input.
    pub fn buffered(&self) -> usize {
        if self.holds_delivered_frame() { 0 } else { self.buf.len() }
    }

    /// A frame delivered by the previous call still sits in the buffer (its message borrowed
    /// it); it is dropped when the next call starts.
    fn holds_delivered_frame(&self) -> bool {
        matches!(frame::peek_len(&self.buf, self.max_frame()), Ok(Some(len)) if len == self.buf.len())
    }

    /// Takes bytes from `input` until one frame is complete or the input runs out. Call it again
    /// with `rest` until it answers [`Feed::Consumed`].
    pub fn feed<'m, 'a: 'm>(&'m mut self, input: &'a [u8]) -> Feed<'m, 'a> {
        if self.holds_delivered_frame() {
            self.buf.clear();
        }
        let max = self.max_frame();
        if self.buf.is_empty() {
            // The common case: decode straight from the input, copying nothing.
            return match frame::peek_len(input, max) {
                Ok(Some(len)) if len <= input.len() => {
                    let (whole, rest) = input.split_at(len);
                    decoded(Message::decode(whole, max), rest)
                }
                Ok(_) => self.keep(input),
                Err(error) => too_large(error, input),
            };
        }
        // Complete the header first: only it says how much more to take.
        let (head, input) = input.split_at(HEADER_LEN.saturating_sub(self.buf.len()).min(input.len()));
        if self.buf.extend_from_slice(head).is_err() {
            return self.fail(Error::FrameTooLarge, input);
        }
        let len = match frame::peek_len(&self.buf, max) {
            Ok(Some(len)) => len,
            Ok(None) => return Feed::Consumed,
            Err(error) => return self.fail(error, input),
        };
        let (body, rest) = input.split_at((len - self.buf.len()).min(input.len()));
        if self.buf.extend_from_slice(body).is_err() {
            return self.fail(Error::FrameTooLarge, rest);
        }
        if self.buf.len() < len {
            return Feed::Consumed;
        }
        decoded(Message::decode(&self.buf, max), rest)
    }

    /// Keeps the start of a frame that `input` does not finish.
    fn keep<'m, 'a>(&mut self, input: &'a [u8]) -> Feed<'m, 'a> {
        match self.buf.extend_from_slice(input) {
            Ok(()) => Feed::Consumed,
            // Unreachable: a partial frame within the checked maximum fits. Fail closed anyway.
            Err(_) => self.fail(Error::FrameTooLarge, &[]),
        }
    }

    fn fail<'m, 'a>(&mut self, error: Error, rest: &'a [u8]) -> Feed<'m, 'a> {
        self.buf.clear();
        Feed::Error { error, rest }
    }
}

impl<const N: usize> Default for Accumulator<N> {
    fn default() -> Self {
        // Through `new`, so that the size check runs.
        Accumulator::new()
    }
}

fn decoded<'m, 'a>(result: Result<Message<'m>, Error>, rest: &'a [u8]) -> Feed<'m, 'a> {
    match result {
        Ok(message) => Feed::Frame { message, rest },
        Err(error) => Feed::Error { error, rest },
    }
}

/// The header claimed too much: skip past it so the caller sees where the body would begin.
fn too_large<'m, 'a>(error: Error, input: &'a [u8]) -> Feed<'m, 'a> {
    Feed::Error { error, rest: input.get(HEADER_LEN..).unwrap_or_default() }
}
