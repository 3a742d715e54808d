//! Writes `spec/vectors/valid.json` and `spec/vectors/invalid.json` from the tables in
//! `session_tests::vectors`, and the fuzz seed corpus under `fuzz/corpus/` from the same cases.
//! Run it after changing a table, review the diff, commit the files with the change.

use std::fs;
use std::path::PathBuf;

use serde_json::{Value, json};
use session_tests::{fuzz_dir, json::to_json, vectors, vectors_dir};

type Result<T = ()> = core::result::Result<T, Box<dyn core::error::Error>>;

fn main() -> Result {
    let valid: Vec<(String, Vec<u8>, Value)> = vectors::valid()
        .into_iter()
        .map(|(name, message)| {
            let mut bytes = vec![0; message.encoded_len()];
            message.encode(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
            Ok((name, bytes, to_json(&message)))
        })
        .collect::<Result<_>>()?;
    let invalid = vectors::invalid();
    write_vectors(&valid, &invalid)?;
    write_corpus(&valid, &invalid)
}

fn write_vectors(
    valid: &[(String, Vec<u8>, Value)],
    invalid: &[(String, Vec<u8>, session_proto::Error)],
) -> Result {
    let valid: Vec<Value> = valid
        .iter()
        .map(|(name, bytes, decoded)| json!({ "name": name, "hex": hex::encode(bytes), "decoded": decoded }))
        .collect();
    let invalid: Vec<Value> = invalid
        .iter()
        .map(|(name, bytes, error)| json!({ "name": name, "hex": hex::encode(bytes), "error": error.name() }))
        .collect();
    let dir = vectors_dir();
    for (file, cases) in [("valid.json", valid), ("invalid.json", invalid)] {
        let mut text = serde_json::to_string_pretty(&cases)?;
        text.push('\n');
        fs::write(dir.join(file), text)?;
        println!("spec/vectors/{file}: {} vectors", cases.len());
    }
    Ok(())
}

/// Seeds: every vector as one frame for the decode targets, and streams of whole vectors cut in
/// pieces of several sizes for the stream targets (the first four bytes choose the piece sizes).
fn write_corpus(
    valid: &[(String, Vec<u8>, Value)],
    invalid: &[(String, Vec<u8>, session_proto::Error)],
) -> Result {
    let frames: Vec<(String, &[u8])> = valid
        .iter()
        .map(|(name, bytes, _)| (format!("valid-{name}"), &bytes[..]))
        .chain(invalid.iter().map(|(name, bytes, _)| (format!("invalid-{name}"), &bytes[..])))
        .collect();
    for target in ["decode_frame", "roundtrip", "session"] {
        let dir = reset(target)?;
        for (name, bytes) in &frames {
            fs::write(dir.join(name), bytes)?;
        }
    }
    let small: Vec<u8> =
        valid.iter().filter(|(_, b, _)| b.len() < 64).flat_map(|(_, b, _)| b.clone()).collect();
    let with_errors: Vec<u8> = valid
        .iter()
        .map(|(_, b, _)| b)
        .zip(
            invalid
                .iter()
                .filter(|(_, b, e)| b.len() > 6 && *e != session_proto::Error::Truncated)
                .map(|(_, b, _)| b),
        )
        .flat_map(|(good, bad)| [good.clone(), bad.clone()].concat())
        .collect();
    let all: Vec<u8> = valid.iter().flat_map(|(_, b, _)| b.clone()).collect();
    let streams: [(&str, &[u8]); 3] = [("small", &small), ("with-errors", &with_errors), ("all-valid", &all)];
    for target in ["accumulator", "codec_stream"] {
        let dir = reset(target)?;
        for (name, stream) in streams {
            for sizes in [[1, 1, 1, 1], [6, 1, 7, 255], [255, 255, 255, 255], [3, 64, 2, 13]] {
                let file = format!("stream-{name}-{}", sizes.map(|s| s.to_string()).join("-"));
                fs::write(dir.join(file), [&sizes[..], stream].concat())?;
            }
        }
    }
    println!("fuzz/corpus: {} frames, 12 streams", frames.len());
    Ok(())
}

/// The corpus directory of `target`, without the seeds an earlier run wrote (so cases removed
/// from a table leave none behind). Inputs that fuzzing found, named by their hash, stay.
fn reset(target: &str) -> Result<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir)?;
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if SEED_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
            fs::remove_file(&path)?;
        }
    }
    Ok(dir)
}

const SEED_PREFIXES: [&str; 3] = ["valid-", "invalid-", "stream-"];
