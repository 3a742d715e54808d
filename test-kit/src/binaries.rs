//! The workspace's programs, for tests that run them as processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The `session-agent` binary: the program an agent embedded in a test starts its file workers
/// from (spec 12.11), since the test's own executable cannot be one.
///
/// Under `cargo test --workspace`, as in CI, cargo built it beside the tests (`target/<profile>/`).
/// Otherwise cargo builds it here, as it would for the agent's own integration tests, and says
/// where it put it.
pub fn agent_binary() -> &'static Path {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(|| {
        beside_the_tests("session-agent").unwrap_or_else(|| build("session-agent", "files_worker"))
    })
}

/// The `session-client` binary, for tests that run the CLI as a user does, found or built as
/// [`agent_binary`] is (as for session-client's own `cli` test).
pub fn client_binary() -> &'static Path {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(|| beside_the_tests("session-client").unwrap_or_else(|| build("session-client", "cli")))
}

/// `target/<profile>/<name>`, when the running test is in `target/<profile>/deps/` and it exists.
fn beside_the_tests(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join(name);
    path.is_file().then_some(path)
}

/// Builds the package's binary `name` as cargo does for its integration test `test`, and
/// returns where cargo put it.
fn build(name: &str, test: &str) -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["test", "--quiet", "--workspace", "--no-run", "--test", test, "--message-format=json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo test --workspace --no-run --test {test} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        // The binary itself, not the harness of its unit tests, which has its name too.
        .filter(|message| message["target"]["name"] == name && message["profile"]["test"] == false)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo names the {name} executable"))
}
