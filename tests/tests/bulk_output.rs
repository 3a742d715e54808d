//! 100 MB of a process's output through agent, relay and client, compared by hash, while the
//! memory of the whole system (all three run in this process) stays bounded far below it.

use core::time::Duration;
use std::time::Instant;

use session_proto::ExitStatus;
use session_test_kit::measure::{peak_rss, random_file};
use session_test_kit::{System, exec, pipes};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

const TOTAL: usize = 100_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_arrive_intact_in_bounded_memory() {
    let (path, expected) = random_file("session-bulk", TOTAL);
    let mut system = System::start(None).await;
    system.agent("i-001").await;
    let connection = system.connect("i-001").await;
    let before = peak_rss();

    let (io, _input, mut output, _) = pipes();
    let kind = exec(&format!("cat {}", path.display()));
    let running = tokio::spawn(async move { connection.open(kind, io).await });
    let started = Instant::now();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut received, mut paused) = (0usize, false);
    loop {
        let n = output.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        received += n;
        if !paused && received > TOTAL / 2 {
            // A reader that stops: every buffer on the path fills to its bound, no further.
            paused = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if received >= TOTAL {
            break;
        }
    }
    let elapsed = started.elapsed();
    let outcome = tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap().unwrap();
    let growth = peak_rss().saturating_sub(before);
    let _ = std::fs::remove_file(&path);

    assert_eq!(received, TOTAL);
    assert_eq!(<[u8; 32]>::from(hash.finalize()), expected, "the output arrived intact");
    assert_eq!(outcome.exit, Some(ExitStatus::Code(0)));
    eprintln!(
        "100 MB in {elapsed:?} ({:.0} MB/s, a 1 s pause included); peak memory grew by {} KiB",
        TOTAL as f64 / 1e6 / elapsed.as_secs_f64(),
        growth / 1024
    );
    assert!(growth < 48 << 20, "peak memory grew by {} MiB for 100 MB of output", growth >> 20);
}
