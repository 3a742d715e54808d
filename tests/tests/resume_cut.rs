//! The agent's connection is cut in the middle of 100 MB of output, twice; the agent dials
//! again, resumes its session, and the client receives every byte exactly once.

use core::time::Duration;

use session_proto::ExitStatus;
use session_test_kit::measure::random_file;
use session_test_kit::{Proxy, System, exec, pipes};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

const TOTAL: usize = 100_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_survives_cuts_of_the_agent_connection_without_loss_or_duplication() {
    let (path, expected) = random_file("session-resume", TOTAL);
    let mut system = System::start(None).await;
    let proxy = Proxy::start(system.relay.addr).await;
    system.agent_via("i-001", &format!("ws://{}", proxy.addr)).await;
    let connection = system.connect("i-001").await;

    let (io, _input, mut output, _) = pipes();
    let kind = exec(&format!("cat {}", path.display()));
    let running = tokio::spawn(async move { connection.open(kind, io).await });
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut received, mut cuts) = (0usize, 0);
    let cut_at = [TOTAL / 3, 2 * TOTAL / 3];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), output.read(&mut buf)).await.unwrap().unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        received += n;
        if cuts < cut_at.len() && received >= cut_at[cuts] {
            assert_eq!(proxy.cut(), 1, "the agent's connection was up");
            cuts += 1;
        }
        if received >= TOTAL {
            break;
        }
    }
    let outcome = tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap().unwrap();
    let _ = std::fs::remove_file(&path);

    assert_eq!(cuts, 2);
    assert_eq!(received, TOTAL, "no byte lost or duplicated");
    assert_eq!(<[u8; 32]>::from(hash.finalize()), expected, "the output arrived intact");
    assert_eq!(outcome.exit, Some(ExitStatus::Code(0)));
}
