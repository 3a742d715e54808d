//! Input for a far end that does not read waits gathered: the bytes arrive whole and in order,
//! in far fewer writes (and credit returns) than the frames they came in.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "test scaffolding")]

use bytes::Bytes;
use session_link::pipe::{EndOfInput, PipeEvent, spawn_writer};
use session_proto::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

#[tokio::test]
async fn one_byte_writes_to_a_blocked_far_end_are_gathered_and_kept_in_order() {
    // A far end that takes 64 bytes, then nothing until the test reads.
    let (far, mut near) = tokio::io::duplex(64);
    let (events, mut reports) = mpsc::unbounded_channel::<PipeEvent>();
    let (writer, task) = spawn_writer(1, Stream::Stdin, Box::new(far), EndOfInput::Shutdown, events);
    let sent: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    for byte in &sent {
        writer.write(Bytes::copy_from_slice(&[*byte]));
    }
    writer.end();
    drop(writer);
    let mut received = Vec::new();
    near.read_to_end(&mut received).await.unwrap();
    task.await.unwrap();
    assert_eq!(received, sent, "every byte, in order, then the end of input");
    let mut writes = Vec::new();
    while let Ok(PipeEvent::Written { len, .. }) = reports.try_recv() {
        writes.push(len);
    }
    assert_eq!(writes.iter().sum::<usize>(), sent.len(), "each byte's credit returns once");
    assert!(writes.len() < 100, "{} writes for {} one-byte frames", writes.len(), sent.len());
}
