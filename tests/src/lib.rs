//! Helpers shared by the conformance tests and the fuzz targets: the JSON form of messages used
//! by `spec/vectors/*.json`, the tables the vector files are generated from, and the properties
//! the fuzz targets check. The end-to-end tests' helpers are `session-test-kit`'s.

pub mod fuzz_checks;
pub mod json;
pub mod vectors;

use std::path::PathBuf;

/// The `spec/vectors` directory of the repository.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}

/// The `fuzz` directory of the repository.
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}
