//! The accumulator yields the same frames and errors however a stream is cut into pieces.

mod common;

use proptest::prelude::*;
use session_proto::{Accumulator, Error, Feed, HEADER_LEN, MIN_MAX_FRAME, Message, Stream};

const N: usize = HEADER_LEN + MIN_MAX_FRAME;

/// What a frame decoded to, in owned form: its canonical bytes, or its error.
type Outcome = Result<Vec<u8>, Error>;

fn canonical(message: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0; message.encoded_len()];
    message.encode(&mut out).expect("a decoded message encodes");
    out
}

/// Feeds `stream` in pieces of the given sizes (cycled), collecting every outcome.
fn feed_in_pieces(stream: &[u8], sizes: &[usize]) -> Vec<Outcome> {
    let mut acc = Accumulator::<N>::new();
    let mut outcomes = Vec::new();
    let mut offset = 0;
    for &size in sizes.iter().cycle() {
        if offset >= stream.len() {
            break;
        }
        let end = (offset + size.max(1)).min(stream.len());
        let mut input = &stream[offset..end];
        offset = end;
        loop {
            match acc.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { message, rest } => {
                    outcomes.push(Ok(canonical(&message)));
                    input = rest;
                }
                Feed::Error { error, rest } => {
                    outcomes.push(Err(error));
                    if error == Error::FrameTooLarge {
                        return outcomes;
                    }
                    input = rest;
                }
            }
        }
    }
    outcomes
}

/// Decodes frame after frame from one buffer, as a receiver holding the whole stream would.
fn decode_whole(stream: &[u8]) -> Vec<Outcome> {
    let max = N - HEADER_LEN;
    let mut outcomes = Vec::new();
    let mut rest = stream;
    while let Ok(Some(len)) = session_proto::frame::peek_len(rest, max) {
        if len > rest.len() {
            break;
        }
        let (frame, tail) = rest.split_at(len);
        outcomes.push(Message::decode(frame, max).map(|m| canonical(&m)));
        rest = tail;
    }
    if session_proto::frame::peek_len(rest, max) == Err(Error::FrameTooLarge) {
        outcomes.push(Err(Error::FrameTooLarge));
    }
    outcomes
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
        stream.extend(canonical(&m));
    }
    stream.extend(BAD_CREDIT);
    stream.extend(canonical(&Message::Close { channel: 1 }));
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
    assert_eq!(
        acc.feed(&[0x00, 0x40, 0x01, 0x13, 0x00, 0x01, 0xaa]),
        Feed::Error { error: Error::FrameTooLarge, rest: &[0xaa] }
    );
}

#[test]
fn largest_accepted_frame_passes_through_the_buffer() {
    let payload = vec![0x5a; MIN_MAX_FRAME - 1];
    let frame = canonical(&Message::Data { channel: 2, stream: Stream::Stdout, payload: &payload });
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
    let frame = canonical(&Message::Data { channel: 1, stream: Stream::Stdin, payload: b"abc" });
    let mut acc = Accumulator::<N>::new();
    match acc.feed(&frame) {
        Feed::Frame { message: Message::Data { payload, .. }, .. } => {
            // Zero copy: the payload points into the caller's input.
            assert_eq!(payload.as_ptr(), frame[HEADER_LEN + 1..].as_ptr());
        }
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunking_of_any_stream_matches_one_piece(
        specs in prop::collection::vec(common::spec(300), 1..12),
        bad_at in prop::option::of(any::<prop::sample::Index>()),
        sizes in prop::collection::vec(1..64usize, 1..8),
    ) {
        let mut frames: Vec<Vec<u8>> = specs.iter().map(common::Spec::encode).collect();
        if let Some(at) = bad_at {
            frames.insert(at.index(frames.len() + 1), BAD_CREDIT.to_vec());
        }
        let stream = frames.concat();
        let whole = decode_whole(&stream);
        prop_assert_eq!(whole.len(), frames.len());
        prop_assert_eq!(feed_in_pieces(&stream, &sizes), whole);
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_pieces_never_panic(
        stream in prop::collection::vec(any::<u8>(), 0..256),
        sizes in prop::collection::vec(1..32usize, 1..8),
    ) {
        prop_assert_eq!(feed_in_pieces(&stream, &sizes), decode_whole(&stream));
    }
}
