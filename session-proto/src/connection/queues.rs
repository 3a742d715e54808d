//! The connection's bounded queues: the encoded control frames waiting to go, and the ids freed
//! and not yet told. Without `alloc` their room is inline; with it they are allocated as they
//! fill and released once empty, so that an idle connection holds none of their room (about
//! 11 KiB for 1,024 channels). Either way the bound is the same.

#[cfg(feature = "alloc")]
use alloc::{collections::VecDeque, vec::Vec};

/// Encoded control frames, at most `N` bytes.
#[derive(Debug)]
pub(super) struct Frames<const N: usize> {
    #[cfg(feature = "alloc")]
    bytes: Vec<u8>,
    #[cfg(not(feature = "alloc"))]
    bytes: heapless::Vec<u8, N>,
}

impl<const N: usize> Frames<N> {
    pub(super) const fn new() -> Self {
        #[cfg(feature = "alloc")]
        let bytes = Vec::new();
        #[cfg(not(feature = "alloc"))]
        let bytes = heapless::Vec::new();
        Frames { bytes }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(super) fn get(&self, range: impl core::slice::SliceIndex<[u8], Output = [u8]>) -> Option<&[u8]> {
        self.bytes.get(range)
    }

    /// `len` more zeroed bytes at the end, to write a frame into; `None` past `N`.
    pub(super) fn grow(&mut self, len: usize) -> Option<&mut [u8]> {
        let start = self.bytes.len();
        let end = start.checked_add(len).filter(|&end| end <= N)?;
        #[cfg(feature = "alloc")]
        self.bytes.resize(end, 0);
        #[cfg(not(feature = "alloc"))]
        self.bytes.resize(end, 0).ok()?;
        self.bytes.get_mut(start..)
    }

    /// Keeps the first `len` bytes.
    pub(super) fn truncate(&mut self, len: usize) {
        self.bytes.truncate(len);
        self.release_if_empty();
    }

    /// Drops the first `len` bytes: they went.
    pub(super) fn consume(&mut self, len: usize) {
        let len = len.min(self.bytes.len());
        let remaining = self.bytes.len() - len;
        self.bytes.copy_within(len.., 0);
        self.truncate(remaining);
    }

    fn release_if_empty(&mut self) {
        #[cfg(feature = "alloc")]
        if self.bytes.is_empty() {
            self.bytes = Vec::new();
        }
    }
}

/// Channel ids, oldest first, at most `C`.
#[derive(Debug)]
pub(super) struct Ids<const C: usize> {
    #[cfg(feature = "alloc")]
    ids: VecDeque<u16>,
    #[cfg(not(feature = "alloc"))]
    ids: heapless::Deque<u16, C>,
}

impl<const C: usize> Ids<C> {
    pub(super) const fn new() -> Self {
        #[cfg(feature = "alloc")]
        let ids = VecDeque::new();
        #[cfg(not(feature = "alloc"))]
        let ids = heapless::Deque::new();
        Ids { ids }
    }

    pub(super) fn is_full(&self) -> bool {
        self.ids.len() >= C
    }

    /// Adds `id` at the back; `Err(id)` when `C` are queued.
    pub(super) fn push_back(&mut self, id: u16) -> Result<(), u16> {
        if self.is_full() {
            return Err(id);
        }
        #[cfg(feature = "alloc")]
        {
            self.ids.push_back(id);
            Ok(())
        }
        #[cfg(not(feature = "alloc"))]
        self.ids.push_back(id)
    }

    pub(super) fn pop_front(&mut self) -> Option<u16> {
        let id = self.ids.pop_front();
        #[cfg(feature = "alloc")]
        if self.ids.is_empty() {
            self.ids = VecDeque::new();
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_hold_n_bytes_and_give_them_back_in_order() {
        let mut frames = Frames::<8>::new();
        assert_eq!(frames.grow(5).map(|room| room.copy_from_slice(b"hello")), Some(()));
        assert!(frames.grow(4).is_none(), "past N");
        assert_eq!(frames.grow(3).map(|room| room.copy_from_slice(b"abc")), Some(()));
        frames.consume(5);
        assert_eq!(frames.get(..), Some(&b"abc"[..]));
        frames.consume(3);
        assert!(frames.is_empty());
        #[cfg(feature = "alloc")]
        assert_eq!(frames.bytes.capacity(), 0, "released once empty");
    }

    #[test]
    fn ids_hold_c_and_come_out_oldest_first() {
        let mut ids = Ids::<2>::new();
        assert_eq!((ids.push_back(1), ids.push_back(2), ids.push_back(3)), (Ok(()), Ok(()), Err(3)));
        assert!(ids.is_full());
        assert_eq!((ids.pop_front(), ids.pop_front(), ids.pop_front()), (Some(1), Some(2), None));
        #[cfg(feature = "alloc")]
        assert_eq!(ids.ids.capacity(), 0, "released once empty");
    }
}
