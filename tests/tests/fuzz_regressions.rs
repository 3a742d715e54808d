//! Replays every committed fuzz input, seeds and past crashes alike, through the properties the
//! fuzz targets check: a crash saved under `fuzz/regressions/<target>/` stays fixed.

use std::path::Path;

use session_tests::{fuzz_checks, fuzz_dir};

fn replay(target: &str, check: fn(&[u8])) {
    let mut replayed = 0;
    for dir in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.expect("readable directory").path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", Path::new(&path).display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "{target}: no corpus committed");
}

#[test]
fn decode_frame_inputs_hold() {
    replay("decode_frame", fuzz_checks::decode_frame);
}

#[test]
fn roundtrip_inputs_hold() {
    replay("roundtrip", fuzz_checks::roundtrip);
}

#[test]
fn accumulator_inputs_hold() {
    replay("accumulator", fuzz_checks::accumulator);
}

#[test]
fn codec_stream_inputs_hold() {
    replay("codec_stream", fuzz_checks::codec_stream);
}

#[test]
fn session_inputs_hold() {
    replay("session", fuzz_checks::session);
}

#[test]
fn listing_inputs_hold() {
    replay("listing", fuzz_checks::listing);
}
