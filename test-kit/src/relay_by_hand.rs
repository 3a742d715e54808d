//! A relay's side driven by hand, for what the real relay does not do (yet): it admits any
//! agent without checking its proof and, once the Hellos are through, ends the connection with
//! a GoAway code the test chooses.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use session_codec::websocket::{SUBPROTOCOL, ws_config};
use session_link::identity::{ADMITTED, CHALLENGE_HEADER};
use session_link::{Clock, Driver, Transport, Wake};
use session_proto::connection::{Config, Connection, Event, Role};
use session_proto::{DEFAULT_MAX_FRAME, ErrorCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;

/// A relay by hand on a loopback port; it stops when dropped.
#[derive(Debug)]
pub struct RelayByHand {
    /// `ws://` and its address.
    pub url: String,
    /// Agent connections admitted so far.
    pub admitted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RelayByHand {
    /// Admits every agent and, once its Hello came and ours went, says GoAway `code` with
    /// `message` to it.
    pub async fn ending_with(code: ErrorCode, message: &'static str) -> RelayByHand {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay by hand");
        let url = format!("ws://{}", listener.local_addr().expect("its address"));
        let admitted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&admitted);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    #[allow(clippy::result_large_err, reason = "the callback type is tungstenite's")]
                    let callback = |_: &Request, mut response: Response| {
                        let headers = response.headers_mut();
                        headers.insert(CHALLENGE_HEADER, HeaderValue::from_str(&"ab".repeat(32)).unwrap());
                        headers.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
                        Ok(response)
                    };
                    let config = Some(ws_config(DEFAULT_MAX_FRAME));
                    let Ok(mut ws) =
                        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, config).await
                    else {
                        return;
                    };
                    // The proof, taken on trust.
                    let Some(Ok(WsMessage::Text(_))) = ws.next().await else { return };
                    if ws.send(WsMessage::text(ADMITTED)).await.is_err() {
                        return;
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    serve(Transport::new(ws, DEFAULT_MAX_FRAME), code, message).await;
                });
            }
        });
        RelayByHand { url, admitted, task }
    }
}

/// Answers the agent's Hello, then says GoAway and drives the connection to its end.
async fn serve(transport: Transport, code: ErrorCode, message: &'static str) {
    let clock = Clock::default();
    let conn = Box::new(Connection::<'static, 64>::new(Config::new(Role::Acceptor), clock.now()));
    let mut driver = Driver::new(conn, clock);
    driver.attach(transport);
    let (_inputs, mut inputs) = tokio::sync::mpsc::unbounded_channel::<()>();
    loop {
        match driver.next(&mut inputs).await {
            Wake::Frame(frame) => {
                if let Some(Event::Connected) = driver.handle(&frame) {
                    driver.go_away(code, message);
                }
            }
            Wake::Ended(_) => return,
            _ => {}
        }
    }
}

impl Drop for RelayByHand {
    fn drop(&mut self) {
        self.task.abort();
    }
}
