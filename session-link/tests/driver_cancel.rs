//! The driver's `next()` is cancel-safe: a caller that drops it (a select! with a shutdown
//! signal, a timeout) loses nothing, even while the connection's last frame cannot go because
//! the peer does not read: `Wake::Ended` still comes.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "test scaffolding")]

use core::time::Duration;

use session_link::{Clock, Driver, Transport, Wake};
use session_proto::ErrorCode;
use session_proto::connection::{Config, Connection, Instant, Role};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

#[tokio::test]
async fn ended_still_comes_after_a_next_that_was_cancelled_while_closing() {
    // A peer that never reads, behind a pipe too small for even the GoAway: the transport's
    // writer blocks, so closing it takes as long as WRITE_TIMEOUT allows.
    let (mine, _theirs) = tokio::io::duplex(8);
    let ws = WebSocketStream::from_raw_socket(mine, WsRole::Client, None).await;
    let conn = Connection::<4>::new(Config::new(Role::Initiator), Instant::from_millis(0));
    let mut driver = Driver::new(Box::new(conn), Clock::default());
    assert!(driver.attach(Transport::new(ws, 131_072)));
    let (_keep, mut inputs) = tokio::sync::mpsc::unbounded_channel::<()>();

    driver.go_away(ErrorCode::NO_ERROR, "done");
    // A caller that gives up waiting (a select! with a shutdown signal, a timeout) drops next().
    let first = tokio::time::timeout(Duration::from_millis(300), driver.next(&mut inputs)).await;
    match first {
        Ok(Wake::Ended(_)) => return,
        Ok(other) => panic!("unexpected wake before the end: {other:?}"),
        Err(_) => eprintln!("next() was cancelled while the transport closed"),
    }
    let again = tokio::time::timeout(Duration::from_secs(3), driver.next(&mut inputs)).await;
    assert!(
        matches!(again, Ok(Wake::Ended(_))),
        "the end of the connection was lost with the cancelled next(): {again:?}"
    );
}
