//! The connection's output onto its transport: the reusable transmit buffer, and the calls that
//! fill it in the order the state machine requires.

use bytes::{Bytes, BytesMut};
use session_codec::Frame;
use session_proto::MAX_BODY_LEN;
use session_proto::connection::{CommandError, Connection};
use session_proto::frame::{DATA_PREFIX_LEN, peek_len};

use crate::{Outbound, Transport};

#[derive(Debug, Default)]
pub(crate) struct Transmit {
    buf: Vec<u8>,
}

impl Transmit {
    /// Queues every frame the connection has due (control frames, retransmissions), while the
    /// backlog has room.
    pub(crate) fn flush<const C: usize>(&mut self, conn: &mut Connection<'_, C>, transport: &Transport) {
        while transport.has_room() {
            let n = conn.poll_transmit(self.room(conn.transmit_buffer_len()));
            if n == 0 {
                break;
            }
            self.queue_frames(n, transport);
        }
    }

    /// Sends as much of `data` on `channel` as credit, the replay buffer and the backlog allow,
    /// between flushes of what is due; returns the payload bytes sent and leaves the rest in `data`.
    /// A whole frame that fits goes as it is, relabelled in place; otherwise its payload is
    /// framed anew in parts.
    pub(crate) fn push_data<const C: usize>(
        &mut self,
        conn: &mut Connection<'_, C>,
        transport: &Transport,
        channel: u16,
        data: &mut Outbound,
    ) -> Result<usize, CommandError> {
        self.flush(conn, transport);
        let mut sent = 0;
        while !data.is_empty() && transport.has_room() {
            let len = data.len();
            if let Some(frame) = data.take_frame() {
                // Relabelling needs the bytes to ourselves; they usually are (one frame per
                // message, its reader gone), else this is the one copy.
                let mut frame = BytesMut::from(frame);
                let fits = conn.send_frame(channel, &mut frame);
                let frame = frame.freeze();
                if fits.as_ref().is_ok_and(|fits| *fits) {
                    data.advance(len);
                    self.queue_whole(frame, transport);
                    self.flush(conn, transport);
                    return Ok(sent + len);
                }
                data.restore_frame(frame);
                fits?;
            }
            let Some(stream) = data.stream() else { break };
            let next = data.next_bytes().len();
            let room = self.room(DATA_PREFIX_LEN + next.min(conn.transmit_buffer_len()));
            let went = conn.send(channel, stream, data.next_bytes(), room)?;
            if went.payload == 0 {
                break;
            }
            data.advance(went.payload);
            sent += went.payload;
            self.queue_frames(went.written, transport);
        }
        // An Ack owed travels right behind the Data, in the same message if the writer has not
        // taken the Data yet (spec 7.4).
        self.flush(conn, transport);
        Ok(sent)
    }

    /// The first `len` bytes of the transmit buffer. It only ever grows, so that it is zeroed
    /// once, not at every call; and it is made zeroed by the allocator rather than written, so
    /// that of its size (the largest frame the peer takes, 128 KiB by default) an idle
    /// connection keeps resident only the pages its control frames touched.
    fn room(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < len {
            self.buf = vec![0; len];
        }
        self.buf.get_mut(..len).unwrap_or_default()
    }

    /// Hands the first `n` bytes of the buffer, whole frames, to the transport one by one.
    fn queue_frames(&mut self, n: usize, transport: &Transport) {
        // Copied out, so that the buffer is reused rather than pinned by small frames: the
        // backlog counts frame bytes, which must be what the frames keep alive.
        let mut bytes = Bytes::copy_from_slice(self.buf.get(..n).unwrap_or_default());
        while let Ok(Some(len)) = peek_len(&bytes, usize::MAX) {
            if len > bytes.len() {
                break;
            }
            self.queue_whole(bytes.split_to(len), transport);
        }
    }

    fn queue_whole(&self, bytes: Bytes, transport: &Transport) {
        // The connection wrote or checked it: it is one valid frame.
        if let Ok(frame) = Frame::from_bytes(bytes, MAX_BODY_LEN) {
            transport.send(frame);
        }
    }
}
