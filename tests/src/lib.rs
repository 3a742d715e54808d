//! Helpers shared by the conformance tests: the JSON form of messages used by
//! `spec/vectors/*.json`, and the tables the vector files are generated from.

pub mod json;
pub mod vectors;

use std::path::PathBuf;

/// The `spec/vectors` directory of the repository.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}
