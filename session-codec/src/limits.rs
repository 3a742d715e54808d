//! The two frame-size limits of a connection, shared by the codec and the WebSocket adapter.

use session_proto::{DEFAULT_MAX_FRAME, MAX_BODY_LEN, MIN_MAX_FRAME};

use crate::CodecError;

/// What this side accepts and what the peer accepts, in body bytes, each within the range a
/// Hello may announce ([`MIN_MAX_FRAME`] to [`MAX_BODY_LEN`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    max_frame: usize,
    peer_max_frame: usize,
}

impl Limits {
    /// [`DEFAULT_MAX_FRAME`] accepted, and [`MIN_MAX_FRAME`] sent until the peer's Hello says
    /// more (spec section 2.3).
    pub(crate) const fn new() -> Self {
        Limits { max_frame: DEFAULT_MAX_FRAME, peer_max_frame: MIN_MAX_FRAME }
    }

    pub(crate) fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame.clamp(MIN_MAX_FRAME, MAX_BODY_LEN);
    }

    pub(crate) fn set_peer_max_frame(&mut self, max_frame: usize) {
        self.peer_max_frame = max_frame.clamp(MIN_MAX_FRAME, MAX_BODY_LEN);
    }

    pub(crate) const fn max_frame(&self) -> usize {
        self.max_frame
    }

    pub(crate) const fn peer_max_frame(&self) -> usize {
        self.peer_max_frame
    }

    /// Fails with [`CodecError::SendTooLarge`] for a body the peer does not accept.
    pub(crate) fn check_send(&self, body_len: usize) -> Result<(), CodecError> {
        if body_len > self.peer_max_frame {
            return Err(CodecError::SendTooLarge { len: body_len, max: self.peer_max_frame });
        }
        Ok(())
    }
}
