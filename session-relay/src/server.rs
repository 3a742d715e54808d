//! The listening port: WebSocket handshakes, routed by path to agents, clients and the list.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::SinkExt;
use session_codec::Frame;
use session_codec::link::{Clock, Transport};
use session_codec::proto::{DEFAULT_MAX_FRAME, ErrorCode, Message};
use session_codec::websocket::{SUBPROTOCOL, ws_config};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tracing::{debug, info, warn};

use crate::RelayConfig;
use crate::agent_link::{AgentTask, Reattach, new_connection};
use crate::client_link::ClientTask;
use crate::registry::{Entry, Registry};

/// How long a peer may take for its WebSocket handshake and its Hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Agent sessions are numbered so that a replaced one cannot unregister its successor.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// What the request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Agent { name: String, version: String },
    Client { instance: String, user: String },
    Instances,
}

/// Accepts connections on `listener` for ever.
pub async fn serve(listener: TcpListener, registry: Registry, config: RelayConfig) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: the listener itself is fine; wait a little.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (registry, config) = (registry.clone(), config.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, peer, registry, config).await {
                debug!(%peer, error = %e, "connection refused");
            }
        });
    }
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    registry: Registry,
    config: RelayConfig,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut target = None;
    #[allow(clippy::result_large_err, reason = "the callback type is tungstenite's")]
    let callback = |request: &Request, mut response: Response| {
        target = Some(parse_target(request).ok_or_else(not_found)?);
        let asked = request.headers().get_all("sec-websocket-protocol");
        if asked.iter().any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL))) {
            response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        }
        Ok(response)
    };
    let accept =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config(DEFAULT_MAX_FRAME)));
    let mut ws = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    match target.ok_or("no target")? {
        Target::Instances => {
            let listing = registry.status().to_string();
            ws.send(WsMessage::text(listing)).await.map_err(|e| e.to_string())?;
            let _ = ws.close(None).await;
            Ok(())
        }
        Target::Client { instance, user } => {
            info!(%peer, %user, %instance, "client connected");
            let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
            let audit = config.audit.clone();
            ClientTask { user, instance, transport, registry, audit }.run().await;
            info!(%peer, "client disconnected");
            Ok(())
        }
        Target::Agent { name, version } => {
            let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
            agent(transport, peer, name, version, registry, config).await
        }
    }
}

/// An agent's transport: a fresh session, or a new transport for a detached one.
async fn agent(
    mut transport: Transport,
    peer: SocketAddr,
    name: String,
    version: String,
    registry: Registry,
    config: RelayConfig,
) -> Result<(), String> {
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, transport.next()).await {
        Ok(Some(Ok(frame))) => frame,
        _ => return Err("no Hello".to_owned()),
    };
    let resume_token = match hello.message() {
        Ok(Message::Hello(h)) => h.resume.map(|r| r.token.to_vec()),
        _ => None,
    };
    if let Some(token) = resume_token {
        let entry = registry.get(&name).filter(|e| constant_time_eq(&e.token, &token));
        let Some(entry) = entry else {
            info!(%peer, instance = %name, "resume refused: no such session");
            return refuse(transport, ErrorCode::RESUME_REJECTED, "no session for this token").await;
        };
        info!(%peer, instance = %name, "agent re-attaching");
        return entry
            .reattach
            .send(Reattach { transport, hello })
            .map_err(|_| "session just ended".to_owned());
    }
    let clock = Clock::default();
    let (conn, token) = new_connection(&clock, config.replay_len).map_err(|e| e.to_string())?;
    let (to_agent, requests) = mpsc::unbounded_channel();
    let (reattach, reattaches) = mpsc::unbounded_channel();
    let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    let entry =
        Entry { serial, to_agent, reattach, token, online: false, version, last_seen: SystemTime::now() };
    if registry.insert(&name, entry).is_some() {
        // A fresh session replaces the old one; the old task notices when its agent is gone.
        info!(instance = %name, "agent replaced its previous session");
    }
    info!(%peer, instance = %name, "agent connected");
    let task = AgentTask {
        name,
        serial,
        conn,
        transport: Some(transport),
        clock,
        registry,
        requests,
        reattach: reattaches,
        detach_timeout: config.detach_timeout,
    };
    task.run(hello).await;
    Ok(())
}

/// Answers a transport with GoAway and closes it.
async fn refuse(transport: Transport, code: ErrorCode, message: &'static str) -> Result<(), String> {
    let frame = Frame::new(&Message::GoAway { code, message }).map_err(|e| e.to_string())?;
    transport.send(frame);
    // Give the writer a moment to send it; the socket closes when the transport drops.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(message.to_owned())
}

fn not_found() -> ErrorResponse {
    let message = "unknown path: use /v1/agent/<name>, /v1/client/<instance> or /v1/instances";
    let mut response = ErrorResponse::new(Some(message.to_owned()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn parse_target(request: &Request) -> Option<Target> {
    let uri = request.uri();
    let query = uri.query().unwrap_or_default();
    let param = |key: &str| {
        query.split('&').find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    };
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "agent", name] if valid_name(name) => {
            let version = param("version").filter(|v| v.len() <= 64).unwrap_or("unknown");
            Some(Target::Agent { name: (*name).to_owned(), version: version.to_owned() })
        }
        ["v1", "client", instance] if valid_name(instance) => {
            // Who the client says it is; the identity of the next issue replaces this claim.
            let user = request
                .headers()
                .get("x-session-user")
                .and_then(|v| v.to_str().ok())
                .filter(|u| valid_name(u))
                .unwrap_or("anonymous");
            Some(Target::Client { instance: (*instance).to_owned(), user: user.to_owned() })
        }
        ["v1", "instances"] => Some(Target::Instances),
        _ => None,
    }
}

/// Names of instances and users: 1 to 64 characters of letters, digits, `-`, `_` and `.`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Compares secrets without a timing signal of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
