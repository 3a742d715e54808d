//! Helpers shared by the conformance tests and the fuzz targets: the JSON form of messages used
//! by `spec/vectors/*.json`, the tables the vector files are generated from, and the properties
//! the fuzz targets check, and the whole system on loopback for the end-to-end tests.

pub mod agent_by_hand;
pub mod fuzz_checks;
pub mod json;
#[allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "scaffolding for std programs")]
pub mod system;
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
