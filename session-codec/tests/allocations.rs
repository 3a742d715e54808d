//! Decoding Data frames allocates nothing once the read buffer is warm: each frame is a view of
//! the buffer, and the buffer is reused once the frames are dropped. dhat counts every heap
//! block of the process, so this runs without libtest's harness: no other thread allocates while
//! it counts.

use bytes::BytesMut;
use session_codec::SessionCodec;
use session_codec::proto::{Message, Stream};
use tokio_util::codec::{Decoder, Encoder};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let payload = vec![0x42u8; 1024];
    let mut codec = SessionCodec::new();
    let mut wire = BytesMut::new();
    for channel in 1..=64 {
        codec
            .encode(Message::Data { channel, stream: Stream::Stdout, payload: &payload }, &mut wire)
            .unwrap();
    }
    let mut buf = BytesMut::with_capacity(2 * wire.len());
    let mut round = |buf: &mut BytesMut| {
        buf.extend_from_slice(&wire);
        let mut frames = 0;
        while let Some(frame) = codec.decode(buf).unwrap() {
            assert_eq!(frame.payload().map(|p| p.len()), Some(1024));
            frames += 1;
        }
        assert_eq!(frames, 64);
    };
    round(&mut buf); // the first split makes the buffer shareable: one allocation
    let before = dhat::HeapStats::get();
    assert!(before.total_blocks > 0, "dhat is counting");
    for _ in 0..100 {
        round(&mut buf);
    }
    let allocated = dhat::HeapStats::get().total_blocks - before.total_blocks;
    assert_eq!(allocated, 0, "6400 frames decoded with {allocated} allocations");
    println!("decoding Data frames once warm: 6400 frames, 0 allocations");
}
