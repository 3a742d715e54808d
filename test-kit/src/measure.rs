//! What the tests measure of themselves: memory, and files of known content.

use std::io::Write;

use sha2::Digest;

/// The process's peak resident memory so far, in bytes (Linux's VmHWM).
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Writes `len` pseudo-random bytes to a new file and returns its path and hash.
pub fn random_file(name: &str, len: usize) -> (std::path::PathBuf, [u8; 32]) {
    let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut hash = sha2::Sha256::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for byte in chunk.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let part = &chunk[..left.min(chunk.len())];
        file.write_all(part).unwrap();
        hash.update(part);
        left -= part.len();
    }
    file.flush().unwrap();
    (path, hash.finalize().into())
}
