//! The replay buffer: frames sent but not yet acknowledged, over storage the caller lends, so
//! that a re-attach can retransmit exactly what the peer missed (spec 7.4).

/// Where the replay buffer lives: lent by the caller, or (with `alloc`) owned, so that a std
/// relay can keep detached sessions without borrowing their buffers from somewhere. An owned
/// one grows as frames wait for their Ack, up to its bound, and is released once all are
/// acknowledged and it is larger than what waited since the last such moment needed: a
/// connection that sends little holds little, and an idle one nothing, while a busy one keeps
/// its size instead of growing it anew, page by fresh page, after every Ack that empties it.
#[derive(Debug)]
pub(super) enum Storage<'r> {
    Borrowed(&'r mut [u8]),
    #[cfg(feature = "alloc")]
    Owned {
        buf: alloc::vec::Vec<u8>,
        bound: usize,
    },
}

/// The first size of an owned buffer, and the size below which an empty one is kept while the
/// connection has channels. A page: the frames of a command, or of typing, that wait for an Ack
/// fit in it, and each connection with a session touches all of it (memory the allocator hands
/// out again is zeroed whole); a busy one grows it by doubling.
#[cfg(feature = "alloc")]
const FIRST_OWNED: usize = 4 * 1024;

impl Storage<'_> {
    /// The most it may hold.
    pub(super) fn bound(&self) -> usize {
        match self {
            Storage::Borrowed(buf) => buf.len(),
            #[cfg(feature = "alloc")]
            Storage::Owned { bound, .. } => *bound,
        }
    }
}

impl core::ops::Deref for Storage<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Storage::Borrowed(buf) => buf,
            #[cfg(feature = "alloc")]
            Storage::Owned { buf, .. } => buf,
        }
    }
}

impl core::ops::DerefMut for Storage<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Borrowed(buf) => buf,
            #[cfg(feature = "alloc")]
            Storage::Owned { buf, .. } => buf,
        }
    }
}

/// A byte ring holding the sent stream from offset `start` to `start + len`.
#[derive(Debug)]
pub(super) struct Replay<'r> {
    buf: Storage<'r>,
    /// Index in `buf` of the byte at offset `start`.
    head: usize,
    len: usize,
    /// Stream offset of the oldest byte kept.
    start: u64,
    /// The most held since everything was last acknowledged.
    #[cfg(feature = "alloc")]
    peak: usize,
}

impl<'r> Replay<'r> {
    pub(super) fn new(buf: Storage<'r>) -> Self {
        Replay {
            buf,
            head: 0,
            len: 0,
            start: 0,
            #[cfg(feature = "alloc")]
            peak: 0,
        }
    }

    /// Bytes of storage it takes now.
    pub(super) fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Stream offset just past the newest byte kept: how much has been sent.
    pub(super) fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// Stream offset of the oldest byte kept.
    pub(super) fn start(&self) -> u64 {
        self.start
    }

    pub(super) fn room(&self) -> usize {
        self.buf.bound() - self.len
    }

    /// Appends `bytes`, which the caller checked fit in [`Replay::room`].
    pub(super) fn push(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.room() {
            return false;
        }
        #[cfg(feature = "alloc")]
        self.grow_for(bytes.len());
        let cap = self.buf.len();
        let tail = (self.head + self.len) % cap.max(1);
        let first = bytes.len().min(cap - tail);
        let (a, b) = bytes.split_at(first);
        if let Some(dst) = self.buf.get_mut(tail..tail + first) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.buf.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        self.len += bytes.len();
        #[cfg(feature = "alloc")]
        {
            self.peak = self.peak.max(self.len);
        }
        true
    }

    /// Makes an owned buffer large enough for `more` bytes, keeping what it holds; within the
    /// bound, which [`Replay::push`] checked.
    #[cfg(feature = "alloc")]
    fn grow_for(&mut self, more: usize) {
        let cap = self.buf.len();
        let Storage::Owned { bound, .. } = self.buf else { return };
        if self.len + more <= cap {
            return;
        }
        let size = (self.len + more).max(cap * 2).max(FIRST_OWNED).min(bound);
        // Made zeroed by the allocator: of a large buffer only the pages written are resident.
        let mut grown = alloc::vec![0; size];
        let kept = self.copy_from(self.start, grown.get_mut(..self.len).unwrap_or_default());
        debug_assert_eq!(kept, self.len);
        self.buf = Storage::Owned { buf: grown, bound };
        self.head = 0;
    }

    /// Forgets everything before stream offset `offset` (the peer acknowledged it).
    pub(super) fn release_to(&mut self, offset: u64) {
        let drop = offset.saturating_sub(self.start).min(self.len as u64) as usize;
        if drop > 0 {
            self.head = (self.head + drop) % self.buf.len().max(1);
            self.len -= drop;
            self.start += drop as u64;
        }
        // Everything acknowledged: the room goes back if what waited since the last time was
        // at most a quarter of it, keeping the first size, which a connection in use would
        // otherwise allocate anew for each frame. A buffer as large as its traffic stays.
        #[cfg(feature = "alloc")]
        if self.len == 0 {
            let peak = core::mem::take(&mut self.peak);
            self.release_above(FIRST_OWNED.max(peak.saturating_mul(4)));
        }
    }

    /// Gives an owned buffer's room back when it holds nothing and is larger than `keep` bytes.
    #[cfg(feature = "alloc")]
    pub(super) fn release_above(&mut self, keep: usize) {
        if let Storage::Owned { buf, .. } = &mut self.buf {
            if self.len == 0 && buf.len() > keep {
                *buf = alloc::vec::Vec::new();
                self.head = 0;
            }
        }
    }

    /// Copies bytes from stream offset `from` into `out`; returns how many.
    pub(super) fn copy_from(&self, from: u64, out: &mut [u8]) -> usize {
        let Some(skip) = from.checked_sub(self.start).filter(|&s| s <= self.len as u64) else { return 0 };
        let skip = skip as usize;
        let n = out.len().min(self.len - skip);
        let cap = self.buf.len();
        let begin = (self.head + skip) % cap.max(1);
        let first = n.min(cap - begin);
        let (a, b) = out.split_at_mut(first);
        if let Some(src) = self.buf.get(begin..begin + first) {
            a.copy_from_slice(src);
        }
        if let (Some(dst), Some(src)) = (b.get_mut(..n - first), self.buf.get(..n - first)) {
            dst.copy_from_slice(src);
        }
        n
    }

    /// The byte at stream offset `at`, if kept.
    fn byte_at(&self, at: u64) -> Option<u8> {
        let skip = usize::try_from(at.checked_sub(self.start)?).ok().filter(|&s| s < self.len)?;
        self.buf.get((self.head + skip) % self.buf.len().max(1)).copied()
    }

    /// Length of the whole frame that starts at stream offset `at`, if kept whole.
    pub(super) fn frame_len_at(&self, at: u64) -> Option<usize> {
        let [l0, l1, l2] = [self.byte_at(at)?, self.byte_at(at + 1)?, self.byte_at(at + 2)?];
        let len = crate::HEADER_LEN + (usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2));
        (at + len as u64 <= self.end()).then_some(len)
    }

    /// Forgets everything before `offset` if it is a frame boundary; false (and nothing
    /// forgotten) otherwise. Walks only the frames released, so acknowledging costs no more than
    /// sending did.
    pub(super) fn release_to_frame(&mut self, offset: u64) -> bool {
        let mut at = self.start;
        while at < offset {
            let Some(len) = self.frame_len_at(at) else { return false };
            at += len as u64;
        }
        if at != offset {
            return false;
        }
        self.release_to(offset);
        true
    }

    /// The longest frame kept from `from` on, header included.
    pub(super) fn largest_frame_from(&self, from: u64) -> usize {
        let mut at = from;
        let mut largest = 0;
        while let Some(len) = self.frame_len_at(at) {
            largest = largest.max(len);
            at += len as u64;
        }
        largest
    }

    /// Whether `offset` falls on a frame boundary of the kept stream (or at its end): a peer's
    /// offset anywhere else would make the retransmission start inside a frame.
    pub(super) fn is_boundary(&self, offset: u64) -> bool {
        let mut at = self.start;
        while at < offset {
            let Some(len) = self.frame_len_at(at) else { return false };
            at += len as u64;
        }
        at == offset && offset <= self.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_wrap_and_copies_come_back_whole() {
        let mut storage = [0u8; 10];
        let mut ring = Replay::new(Storage::Borrowed(&mut storage));
        assert!(ring.push(b"abcdef"));
        ring.release_to(4);
        assert!(ring.push(b"ghijkl"), "wraps around the end");
        assert!(!ring.push(b"xyz"), "full");
        assert_eq!((ring.start(), ring.end()), (4, 12));
        let mut out = [0u8; 8];
        assert_eq!(ring.copy_from(4, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        assert_eq!(ring.copy_from(9, &mut out), 3);
        assert_eq!(&out[..3], b"jkl");
        assert_eq!(ring.copy_from(3, &mut out), 0, "released");
        assert_eq!(ring.copy_from(13, &mut out), 0, "never sent");
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn an_owned_buffer_grows_to_its_bound_keeps_its_bytes_and_goes_once_traffic_is_smaller() {
        let bound = 4 * FIRST_OWNED;
        let mut ring = Replay::new(Storage::Owned { buf: alloc::vec::Vec::new(), bound });
        assert_eq!((ring.buf.len(), ring.room()), (0, bound), "nothing held before anything is sent");
        let chunk: alloc::vec::Vec<u8> = (0..FIRST_OWNED).map(|i| (i % 251) as u8).collect();
        assert!(ring.push(&chunk) && ring.push(&chunk));
        ring.release_to(FIRST_OWNED as u64 / 2);
        assert!(ring.push(&chunk) && ring.push(&chunk));
        assert_eq!(ring.buf.len(), bound, "grown to the bound, no further");
        assert!(!ring.push(&chunk[..FIRST_OWNED / 2 + 1]), "full at the bound");
        let mut out = alloc::vec![0; FIRST_OWNED];
        assert_eq!(ring.copy_from(FIRST_OWNED as u64, &mut out), FIRST_OWNED);
        assert_eq!(out, chunk, "the bytes survive each growth, in order");
        ring.release_to(ring.end());
        assert_eq!(ring.buf.len(), bound, "kept while the traffic fills it");
        assert!(ring.push(&chunk));
        ring.release_to(ring.end());
        assert_eq!(ring.buf.len(), bound, "a quarter of it filled still");
        assert!(ring.push(&chunk[..FIRST_OWNED - 1]));
        ring.release_to(ring.end());
        assert_eq!((ring.buf.len(), ring.room()), (0, bound), "released once less than a quarter waited");
        assert!(ring.push(b"again") && ring.copy_from(ring.start(), &mut out) == 5);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn the_first_size_is_kept_between_acknowledgements_until_released_whole() {
        let mut ring = Replay::new(Storage::Owned { buf: alloc::vec::Vec::new(), bound: 4 * FIRST_OWNED });
        assert!(ring.push(b"frame"));
        ring.release_to(ring.end());
        assert_eq!(ring.buf.len(), FIRST_OWNED, "kept for the next frame of a connection in use");
        assert!(ring.push(b"more"));
        ring.release_above(0);
        assert_eq!(ring.buf.len(), FIRST_OWNED, "not while it holds a frame");
        ring.release_to(ring.end());
        ring.release_above(0);
        assert_eq!((ring.buf.len(), ring.room()), (0, 4 * FIRST_OWNED), "released whole once idle");
        assert!(ring.push(b"again") && ring.start() == 9, "the stream goes on where it was");
    }

    #[test]
    fn boundaries_follow_the_frame_headers() {
        let mut storage = [0u8; 64];
        let mut ring = Replay::new(Storage::Borrowed(&mut storage));
        ring.push(&[0, 0, 1, 0x14, 0, 1, 5]); // 7 bytes
        ring.push(&[0, 0, 0, 0x19, 0, 1]); // 6 bytes
        assert!(ring.is_boundary(0) && ring.is_boundary(7) && ring.is_boundary(13));
        assert!(!ring.is_boundary(3) && !ring.is_boundary(8) && !ring.is_boundary(14));
    }
}
