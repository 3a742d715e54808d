//! Replays `spec/vectors/*.json` against session-proto: every valid vector decodes to its JSON
//! form and encodes back to the same bytes; every invalid vector fails with its named error.

use serde_json::Value;
use session_proto::{Entry, Error, Message, Record};
use session_tests::json::{entry_to_json, to_json};
use session_tests::vectors::VECTOR_MAX_FRAME;
use session_tests::vectors_dir;

fn load(file: &str) -> Vec<Value> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn field<'a>(vector: &'a Value, key: &str) -> &'a str {
    vector[key].as_str().unwrap_or_else(|| panic!("vector without {key}: {vector}"))
}

const ALL_ERRORS: [Error; 10] = [
    Error::Truncated,
    Error::FrameTooLarge,
    Error::TrailingBytes,
    Error::BadVarint,
    Error::BadUtf8,
    Error::TooLong,
    Error::InvalidValue,
    Error::UnknownType,
    Error::BadChannel,
    Error::UnsupportedVersion,
];

#[test]
fn valid_vectors_decode_to_their_form_and_encode_to_their_bytes() {
    let vectors = load("valid.json");
    assert!(vectors.len() >= 50, "valid.json lost vectors: {}", vectors.len());
    for vector in &vectors {
        let name = field(vector, "name");
        let bytes = hex::decode(field(vector, "hex")).expect("hex");
        let message = Message::decode(&bytes, VECTOR_MAX_FRAME)
            .unwrap_or_else(|e| panic!("{name}: valid vector fails to decode: {e}"));
        assert_eq!(to_json(&message), vector["decoded"], "{name}: decoded form differs");
        assert_eq!(message.encoded_len(), bytes.len(), "{name}: encoded_len");
        let mut out = vec![0; bytes.len()];
        assert_eq!(message.encode(&mut out), Ok(bytes.len()), "{name}: encode");
        assert_eq!(out, bytes, "{name}: re-encoding gives other bytes");
    }
}

#[test]
fn invalid_vectors_fail_with_their_error() {
    let vectors = load("invalid.json");
    for vector in &vectors {
        let name = field(vector, "name");
        let bytes = hex::decode(field(vector, "hex")).expect("hex");
        let expected = field(vector, "error");
        match Message::decode(&bytes, VECTOR_MAX_FRAME) {
            Ok(message) => panic!("{name}: decoded as {message:?}, expected {expected}"),
            Err(error) => assert_eq!(error.name(), expected, "{name}"),
        }
    }
}

#[test]
fn every_message_type_and_every_decode_error_has_a_vector() {
    let valid = load("valid.json");
    for kind in [
        "Hello",
        "Ping",
        "Pong",
        "Ack",
        "GoAway",
        "Open",
        "Accept",
        "Refuse",
        "Data",
        "Credit",
        "Resize",
        "Signal",
        "Eof",
        "Exit",
        "Close",
        "File",
        "OpenOn",
        "Reason",
        "Session",
        "Extension",
    ] {
        assert!(valid.iter().any(|v| v["decoded"]["type"] == kind), "no valid vector for {kind}");
    }
    let invalid = load("invalid.json");
    for error in ALL_ERRORS {
        assert!(invalid.iter().any(|v| v["error"] == error.name()), "no invalid vector for {}", error.name());
    }
}

/// Decodes `bytes` as exactly one Entry record (spec 10): a record cut short is `truncated`, and
/// bytes after it are `trailing_bytes`.
fn decode_one_record(bytes: &[u8]) -> Result<Entry<'_>, Error> {
    match Entry::decode_record(bytes)? {
        Record::Incomplete => Err(Error::Truncated),
        Record::Entry(entry, len) if len == bytes.len() => Ok(entry),
        Record::Entry(..) => Err(Error::TrailingBytes),
    }
}

#[test]
fn entry_vectors_decode_to_their_form_encode_to_their_bytes_or_fail_with_their_error() {
    let vectors = load("entries.json");
    assert!(vectors.len() >= 20, "entries.json lost vectors: {}", vectors.len());
    for vector in &vectors {
        let name = field(vector, "name");
        let bytes = hex::decode(field(vector, "hex")).expect("hex");
        match (decode_one_record(&bytes), vector.get("error").and_then(Value::as_str)) {
            (Ok(entry), None) => {
                assert_eq!(entry_to_json(&entry), vector["decoded"], "{name}: decoded form differs");
                let mut out = vec![0; entry.record_len()];
                assert_eq!(entry.encode_record(&mut out), Ok(bytes.len()), "{name}: encode");
                assert_eq!(out, bytes, "{name}: re-encoding gives other bytes");
            }
            (Err(error), Some(expected)) => assert_eq!(error.name(), expected, "{name}"),
            (outcome, expected) => panic!("{name}: got {outcome:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn vector_files_match_their_tables() {
    // The files are what other implementations read; the tables are where they are edited.
    // A difference means someone edited one and not the other.
    let valid = load("valid.json");
    let names: Vec<&str> = valid.iter().map(|v| field(v, "name")).collect();
    let table: Vec<String> = session_tests::vectors::valid().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, table, "valid.json is stale: run cargo run -p session-tests --bin gen-vectors");
    let invalid = load("invalid.json");
    let table = session_tests::vectors::invalid();
    assert_eq!(invalid.len(), table.len(), "invalid.json is stale: run the generator");
    for (vector, (name, bytes, error)) in invalid.iter().zip(table) {
        assert_eq!(field(vector, "name"), name);
        assert_eq!(field(vector, "hex"), hex::encode(bytes), "{name}");
        assert_eq!(field(vector, "error"), error.name(), "{name}");
    }
}
