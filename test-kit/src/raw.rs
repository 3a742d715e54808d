//! A raw client for the hostile-peer tests: a Connection driven by hand over a WebSocket, so a test can
//! stop reading, send odd messages, or vanish.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use session_codec::websocket::{SUBPROTOCOL, ws_config};
use session_proto::DEFAULT_MAX_FRAME;
use session_proto::connection::{Config, Connection, Event, Instant, Role};
use session_proto::frame::peek_len;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client connection driven by hand: the state machine, its WebSocket, and its clock.
#[allow(missing_debug_implementations, reason = "the WebSocket is not Debug")]
pub struct Raw {
    pub ws: Ws,
    pub conn: Box<Connection<'static, 64>>,
    pub start: std::time::Instant,
    /// Every Data payload received, of every channel, in order.
    pub output: Vec<u8>,
    /// The same, by channel: what each channel's peer sent, however the channels interleave.
    pub outputs: std::collections::BTreeMap<u16, Vec<u8>>,
}

/// The handshake of a client connection to `instance` with `token`.
fn request(
    url: &str,
    token: &str,
    instance: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    request_to(url, token, &format!("/v1/client/{instance}"))
}

/// The header of the relay's 101 to `/v1/fleet` that names the fleet command (spec 11.1).
pub const FLEET_HEADER: &str = "x-session-fleet";

/// The handshake of a user's connection to `path` with `token`.
fn request_to(
    url: &str,
    token: &str,
    path: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("{url}{path}").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    request
}

impl Raw {
    pub async fn connect(url: &str, token: &str, instance: &str, config: Config) -> Raw {
        let request = request(url, token, instance);
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(ws_config(DEFAULT_MAX_FRAME)), true)
                .await
                .unwrap();
        Raw::hello(ws, config).await
    }

    /// As `connect`, over a socket with a small receive buffer.
    pub async fn connect_small(url: &str, token: &str, instance: &str, config: Config) -> Raw {
        let addr: std::net::SocketAddr = url.trim_start_matches("ws://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let request = request(url, token, instance);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            request,
            MaybeTlsStream::Plain(stream),
            Some(ws_config(DEFAULT_MAX_FRAME)),
        )
        .await
        .unwrap();
        Raw::hello(ws, config).await
    }

    /// A fleet connection (`/v1/fleet`, spec 11.4) with `token`, offering FLEET and FILES, its
    /// channels opened with `conn.open_on`; with the fleet command id the relay's 101 named.
    /// With `resume`, offering RESUME too.
    pub async fn connect_fleet(url: &str, token: &str, resume: bool) -> (Raw, String) {
        let (ws, fleet) = Raw::dial_fleet(url, token).await;
        let config = Config { fleet: true, files: true, ..Config::new(Role::Initiator) };
        let conn = if resume {
            Connection::with_owned_resume(config, 1 << 20, &[], Instant::from_millis(0)).unwrap()
        } else {
            Connection::new(config, Instant::from_millis(0))
        };
        (Raw::start(ws, Box::new(conn)).await, fleet)
    }

    /// As `reattach`, for a fleet connection: returns the notices, and the fleet command id
    /// the new connection's 101 named.
    pub async fn reattach_fleet(&mut self, url: &str, token: &str) -> (Vec<String>, String) {
        let (ws, fleet) = Raw::dial_fleet(url, token).await;
        self.ws = ws;
        self.conn.detach();
        let now = self.now();
        self.conn.reattach(now).unwrap();
        (self.flush().await, fleet)
    }

    async fn dial_fleet(url: &str, token: &str) -> (Ws, String) {
        let request = request_to(url, token, "/v1/fleet");
        let config = Some(ws_config(DEFAULT_MAX_FRAME));
        let (ws, response) =
            tokio_tungstenite::connect_async_with_config(request, config, true).await.unwrap();
        let fleet = response.headers().get(FLEET_HEADER).expect("the fleet command id");
        (ws, fleet.to_str().expect("visible ASCII").to_owned())
    }

    /// As `connect`, offering RESUME: the relay keeps the session when the WebSocket drops.
    pub async fn connect_resumable(url: &str, token: &str, instance: &str) -> Raw {
        let conn = Connection::with_owned_resume(
            Config::new(Role::Initiator),
            1 << 20,
            &[],
            Instant::from_millis(0),
        )
        .unwrap();
        Raw::start(Raw::dial(url, token, instance).await, Box::new(conn)).await
    }

    /// Drops the WebSocket, dials again, and re-attaches the session over the new one.
    pub async fn reattach(&mut self, url: &str, token: &str, instance: &str) -> Vec<String> {
        self.ws = Raw::dial(url, token, instance).await;
        self.conn.detach();
        let now = self.now();
        self.conn.reattach(now).unwrap();
        self.flush().await
    }

    async fn dial(url: &str, token: &str, instance: &str) -> Ws {
        let request = request(url, token, instance);
        let config = Some(ws_config(DEFAULT_MAX_FRAME));
        tokio_tungstenite::connect_async_with_config(request, config, true).await.unwrap().0
    }

    /// Starts a connection of `config` over `ws` and waits until it is established.
    async fn hello(ws: Ws, config: Config) -> Raw {
        Raw::start(ws, Box::new(Connection::new(config, Instant::from_millis(0)))).await
    }

    async fn start(ws: Ws, conn: Box<Connection<'static, 64>>) -> Raw {
        let mut raw = Raw {
            ws,
            conn,
            start: std::time::Instant::now(),
            output: Vec::new(),
            outputs: Default::default(),
        };
        raw.flush().await;
        raw.until(|e| e.starts_with("Connected"), 5).await;
        raw
    }

    pub fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    /// Sends everything the connection has to send; returns the notices that raised.
    pub async fn flush(&mut self) -> Vec<String> {
        let mut buf = vec![0u8; self.conn.transmit_buffer_len()];
        let mut notices = Vec::new();
        loop {
            let n = self.conn.poll_transmit(&mut buf);
            notices.extend(self.notices());
            if n == 0 {
                return notices;
            }
            self.ws.send(WsMessage::binary(buf[..n].to_vec())).await.unwrap();
        }
    }

    /// Puts `bytes`, frames the connection wrote, on the WebSocket.
    pub async fn ws_send(&mut self, bytes: &[u8]) {
        self.ws.send(WsMessage::binary(bytes.to_vec())).await.unwrap();
    }

    /// The connection's notices, read as they must be after each `handle` and `poll_transmit`.
    fn notices(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.conn.poll_event()).map(|notice| format!("{notice:?}")).collect()
    }

    /// Reads one message, handles its frames (consuming Data), returns the events and notices.
    pub async fn step(&mut self) -> Vec<String> {
        let msg = self.ws.next().await.expect("open").expect("ok");
        let WsMessage::Binary(bytes) = msg else { return vec![] };
        let mut rest = &bytes[..];
        let mut events = Vec::new();
        while let Ok(Some(len)) = peek_len(rest, usize::MAX) {
            let (frame, tail) = rest.split_at(len);
            let now = self.now();
            match self.conn.handle(frame, now) {
                Ok(Some(event)) => {
                    if let Event::Data { channel, payload, .. } = event {
                        let n = payload.len();
                        self.output.extend_from_slice(payload);
                        self.outputs.entry(channel).or_default().extend_from_slice(payload);
                        events.push(format!("Data {channel} {n}"));
                        let _ = self.conn.consume(channel, n);
                    } else {
                        events.push(format!("{event:?}"));
                    }
                }
                Ok(None) => {}
                Err(e) => events.push(format!("Error {e}")),
            }
            events.extend(self.notices());
            rest = tail;
        }
        events.extend(self.flush().await);
        events
    }

    pub async fn until(&mut self, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                for e in self.step().await {
                    if pred(&e) {
                        return e;
                    }
                }
            }
        })
        .await
        .expect("event in time")
    }
}

/// Whether a process whose command line contains `marker` runs.
pub fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(marker))
            .unwrap_or(false)
    })
}
