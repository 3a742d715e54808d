//! Property tests of the decoding contract: every valid message round-trips exactly, and no
//! input whatsoever panics or decodes to something that re-encodes differently.

mod common;

use proptest::prelude::*;
use session_proto::{DEFAULT_MAX_FRAME, HEADER_LEN, MAX_BODY_LEN, Message};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_message_encodes_to_its_encoded_len_and_decodes_equal(spec in common::spec(600)) {
        spec.with(|message| {
            let mut buf = vec![0xa5; message.encoded_len() + 8];
            let len = message.encode(&mut buf).expect("valid message");
            prop_assert_eq!(len, message.encoded_len());
            let decoded = Message::decode(&buf[..len], MAX_BODY_LEN).expect("decodes");
            prop_assert_eq!(decoded, message);
            Ok(())
        })?;
    }

    #[test]
    fn any_message_refuses_a_buffer_one_byte_short(spec in common::spec(64)) {
        spec.with(|message| {
            let mut buf = vec![0; message.encoded_len() - 1];
            prop_assert_eq!(message.encode(&mut buf), Err(session_proto::Error::BufferTooSmall));
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_bodies_decode_canonically_or_fail(
        frame_type in prop_oneof![0x00..=0x1fu8, 0x7e..=0x81u8],
        channel in prop_oneof![Just(0u16), 1..=3u16],
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut frame = vec![0, 0, body.len() as u8, frame_type];
        frame.extend_from_slice(&channel.to_be_bytes());
        frame.extend_from_slice(&body);
        if let Ok(message) = Message::decode(&frame, DEFAULT_MAX_FRAME) {
            // One encoding per value: whatever decodes re-encodes to the very same bytes.
            let mut out = vec![0; message.encoded_len()];
            prop_assert_eq!(message.encode(&mut out), Ok(frame.len()));
            prop_assert_eq!(out, frame);
        }
    }

    #[test]
    fn mutated_frames_decode_canonically_or_fail(
        spec in common::spec(32),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let mut frame = spec.encode();
        for (at, byte, op) in edits {
            let i = at.index(frame.len() + 1);
            match op {
                0 if i < frame.len() => frame[i] = byte,
                1 => frame.insert(i, byte),
                _ if i < frame.len() => { frame.remove(i); }
                _ => {}
            }
        }
        // Keep the length field truthful half the time, so bodies get exercised too.
        if frame.len() >= HEADER_LEN && frame[3] & 1 == 0 {
            let body = frame.len() - HEADER_LEN;
            frame[..3].copy_from_slice(&(body as u32).to_be_bytes()[1..]);
        }
        if let Ok(message) = Message::decode(&frame, MAX_BODY_LEN) {
            let mut out = vec![0; message.encoded_len()];
            prop_assert_eq!(message.encode(&mut out), Ok(frame.len()));
            prop_assert_eq!(out, frame);
        }
    }

    #[test]
    fn any_bytes_give_a_message_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..48), max in 0..64usize) {
        let _ = Message::decode(&bytes, max);
    }
}
