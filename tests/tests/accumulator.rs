//! The no-alloc accumulator yields the same frames and errors however a stream is cut into
//! pieces, refuses an oversize claim from its header, and decodes a whole frame where it lies.

use proptest::prelude::*;
use session_proto::{Accumulator, Error, Feed, HEADER_LEN, MIN_MAX_FRAME, Message, Stream};
use session_tests::fuzz_checks::{ACCUMULATOR_LEN, decode_whole, feed_in_pieces};
use session_tests::vectors;

const N: usize = ACCUMULATOR_LEN;

fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0; message.encoded_len()];
    message.encode(&mut out).expect("a valid message");
    out
}

/// A frame that decodes to an error without breaking the stream: Credit of 0.
const BAD_CREDIT: [u8; 7] = [0, 0, 1, 0x14, 0, 1, 0];

#[test]
fn split_at_every_byte_position_matches_one_piece() {
    let mut stream = Vec::new();
    for m in [
        Message::Data { channel: 1, stream: Stream::Stdin, payload: b"hello" },
        Message::Credit { channel: 1, increment: 300 },
        Message::Eof { channel: 1 },
    ] {
        stream.extend(encode(&m));
    }
    stream.extend(BAD_CREDIT);
    stream.extend(encode(&Message::Close { channel: 1 }));
    let whole = decode_whole(&stream);
    assert_eq!(whole.len(), 5);
    assert_eq!(whole[3], Err(Error::InvalidValue));
    for cut in 0..=stream.len() {
        assert_eq!(feed_in_pieces(&stream, &[cut, stream.len()]), whole, "cut at {cut}");
    }
    assert_eq!(feed_in_pieces(&stream, &[1]), whole, "byte by byte");
}

#[test]
fn oversize_header_is_refused_before_its_body_arrives() {
    let mut acc = Accumulator::<N>::new();
    let header = [0x00, 0x40, 0x01, 0x13, 0x00, 0x01]; // claims 16385 bytes
    assert_eq!(acc.feed(&header[..4]), Feed::Consumed);
    assert_eq!(acc.feed(&header[4..]), Feed::Error { error: Error::FrameTooLarge, rest: &[] });
    assert_eq!(acc.buffered(), 0);
    let with_body = [0x00, 0x40, 0x01, 0x13, 0x00, 0x01, 0xaa];
    assert_eq!(acc.feed(&with_body), Feed::Error { error: Error::FrameTooLarge, rest: &[0xaa] });
}

#[test]
fn largest_accepted_frame_passes_through_the_buffer() {
    let payload = vec![0x5a; MIN_MAX_FRAME - 1];
    let frame = encode(&Message::Data { channel: 2, stream: Stream::Stdout, payload: &payload });
    assert_eq!(frame.len(), N);
    let mut acc = Accumulator::<N>::default();
    assert_eq!(acc.max_frame(), MIN_MAX_FRAME);
    assert_eq!(acc.feed(&frame[..100]), Feed::Consumed);
    assert_eq!(acc.buffered(), 100);
    match acc.feed(&frame[100..]) {
        Feed::Frame { message: Message::Data { payload: got, .. }, rest } => {
            assert_eq!(got, &payload[..]);
            assert!(rest.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_whole_frame_in_the_input_is_decoded_where_it_lies() {
    let frame = encode(&Message::Data { channel: 1, stream: Stream::Stdin, payload: b"abc" });
    let mut acc = Accumulator::<N>::new();
    match acc.feed(&frame) {
        // Zero copy: the payload points into the caller's input.
        Feed::Frame { message: Message::Data { payload, .. }, .. } => {
            assert_eq!(payload.as_ptr(), frame[HEADER_LEN + 1..].as_ptr())
        }
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunking_of_any_stream_of_vectors_matches_one_piece(
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..16),
        sizes in prop::collection::vec(1..64usize, 1..8),
    ) {
        // Valid frames from the spec's vectors, and invalid ones that keep the stream in step.
        let valid = vectors::valid().into_iter().map(|(_, m)| encode(&m));
        let invalid = vectors::invalid().into_iter().filter(|(_, b, e)| *e != Error::Truncated && b.len() > 6);
        let pool: Vec<Vec<u8>> = valid.chain(invalid.map(|(_, b, _)| b)).collect();
        let stream: Vec<u8> = picks.iter().flat_map(|i| i.get(&pool).clone()).collect();
        prop_assert_eq!(feed_in_pieces(&stream, &sizes), decode_whole(&stream));
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_pieces_never_panic(
        stream in prop::collection::vec(any::<u8>(), 0..256),
        sizes in prop::collection::vec(1..32usize, 1..8),
    ) {
        prop_assert_eq!(feed_in_pieces(&stream, &sizes), decode_whole(&stream));
    }
}
