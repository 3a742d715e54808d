//! The listening port: connections accepted, TLS when configured, the WebSocket handshake
//! (whose request [`admission`](crate::admission) judges), and each admitted peer handed to
//! its task.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::SinkExt;
use session_codec::websocket::{SUBPROTOCOL, ws_config};
use session_link::Transport;
use session_link::identity::CHALLENGE_HEADER;
use session_proto::DEFAULT_MAX_FRAME;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tracing::{debug, info, warn};

use crate::admission::{self, Admitted, ClientClaim, FLEET_HEADER, FleetClaim, Gate};
use crate::clients::Clients;
use crate::console::{self, Console};
use crate::handshakes::{Handshakes, Slot, off_workers};
use crate::http::{Prefixed, read_head};
use crate::registry::Registry;
use crate::sessions::Sessions;
use crate::usage::Usage;
use crate::{HANDSHAKE_TIMEOUT, RelayConfig, agent, client, watch};

/// What every connection's task shares.
#[derive(Debug, Clone)]
struct Shared {
    registry: Registry,
    sessions: Sessions,
    usage: Usage,
    clients: Clients,
    console: Console,
    config: RelayConfig,
}

/// Accepts connections on `listener` for ever: through TLS when the config has it.
pub async fn serve(listener: TcpListener, registry: Registry, config: RelayConfig) {
    let handshakes = Handshakes::new(config.handshakes);
    let console = Console::new(&config.console_origins, config.tls.is_some());
    let sessions = Sessions::default();
    // Named by where it listens, for an operator; it ends when this future is dropped.
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    let listening =
        listener.local_addr().map_or_else(|_| "unknown address".to_owned(), |a| format!("{scheme}://{a}"));
    let address = config.advertise.clone().unwrap_or(listening);
    let _watching = watch::start(&config.access, sessions.clone(), registry.clone(), address);
    let shared =
        Shared { registry, sessions, usage: Usage::default(), clients: Clients::default(), console, config };
    let mut quiet = Quiet::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: the listener itself is fine; wait a little.
                if let Some(also) = quiet.say() {
                    warn!(error = %e, also, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match handshakes.enter(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                // Closed at once: its descriptor goes back before it can be held.
                drop(stream);
                if let Some(also) = quiet.say() {
                    warn!(%peer, limit = ?full, also, "too many connections in their handshake: refused");
                }
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = stream.set_nodelay(true) {
                debug!(%peer, error = %e, "connection lost");
                return;
            }
            let result = match shared.config.tls.clone() {
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Box::pin(tls.accept(stream))).await {
                        Ok(Ok(stream)) => Box::pin(connection(stream, peer, shared, slot)).await,
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                        Err(_) => Err("TLS handshake timed out".to_owned()),
                    }
                }
                None => Box::pin(connection(stream, peer, shared, slot)).await,
            };
            if let Err(e) = result {
                // Any peer can cause these at will: what matters of them is audited (sampled)
                // and logged where admission decides; here only for debugging.
                debug!(%peer, reason = %e, "connection ended in its handshake");
            }
        });
    }
}

/// One accepted connection: a WebSocket handshake, admitted or refused, and then the task of
/// what it was admitted as; or the console's plain HTTP requests.
async fn connection<S>(mut stream: S, peer: SocketAddr, shared: Shared, slot: Slot) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut head_bytes = Vec::new();
    let head = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head(&mut stream, &mut head_bytes)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return Err("closed before a request".to_owned()),
        Ok(Err(e)) => {
            console::refuse_head(&mut stream, &e).await;
            return Err(e.to_string());
        }
        Err(_) => return Err("handshake timed out".to_owned()),
    };
    if !head.is_upgrade() {
        // The console's requests hold the handshake slot: whoever sends them has proved nothing,
        // until a file request proves who sent it (and the connection ends with that request).
        let place = console::Place {
            console: &shared.console,
            access: &shared.config.access,
            registry: &shared.registry,
            sessions: &shared.sessions,
            usage: &shared.usage,
            limits: &shared.config.limits,
            peer,
        };
        return Box::pin(console::serve(stream, head_bytes, head, place, slot)).await;
    }
    drop(head);
    // The WebSocket handshake reads the request again.
    let stream = Prefixed::new(head_bytes, stream);
    let gate = Gate {
        access: &shared.config.access,
        registry: &shared.registry,
        sessions: &shared.sessions,
        usage: &shared.usage,
        limits: &shared.config.limits,
        console: &shared.console,
    };
    let mut admitted = None;
    #[allow(clippy::result_large_err, reason = "the callback type is tungstenite's")]
    let callback = |request: &Request, mut response: Response| {
        let admission = off_workers(|| gate.admit(request, peer)).map_err(|refused| {
            let mut response = refusal(refused.status, &refused.reason);
            if let Some(location) = refused.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                response.headers_mut().insert("location", location);
            }
            response
        })?;
        if let Admitted::Agent(claim) = &admission {
            let challenge = HeaderValue::from_str(&hex::encode(claim.challenge))
                .map_err(|_| refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
            response.headers_mut().insert(CHALLENGE_HEADER, challenge);
        }
        if let Admitted::Fleet(claim) = &admission {
            // The id every session of the fleet command is audited with (spec 11.4).
            let id = HeaderValue::from_str(&claim.id)
                .map_err(|_| refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
            response.headers_mut().insert(FLEET_HEADER, id);
        }
        admitted = Some(admission);
        // Admission checked that the peer offered it.
        response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        Ok(response)
    };
    // Each stage is boxed: the task of a connection would otherwise keep, for as long as the
    // connection lasts, room for the largest stage it ever went through (13.5 KiB a task).
    let accept = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(ws_config(DEFAULT_MAX_FRAME)),
    ));
    let mut ws = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let admitted = admitted.ok_or("no target")?;
    // A client has proved who it is; an agent has yet to sign its challenge.
    let slot = match admitted {
        Admitted::Agent(_) => Some(slot),
        _ => {
            drop(slot);
            None
        }
    };
    match admitted {
        Admitted::Answer(answer) => {
            ws.send(WsMessage::text(answer.0)).await.map_err(|e| e.to_string())?;
            let _ = ws.close(None).await;
            Ok(())
        }
        Admitted::Recording(stream) => Box::pin(stream.serve(&mut ws)).await,
        Admitted::Client(claim) => {
            let ClientClaim { who, instance, lease } = *claim;
            info!(%peer, user = %who.user, instance = %instance.id, "client connected");
            let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
            Box::pin(client::serve(transport, who, client::Scope::Instance(instance.id), place(shared)))
                .await;
            drop(lease);
            info!(%peer, "client disconnected");
            Ok(())
        }
        Admitted::Fleet(claim) => {
            let FleetClaim { who, id, lease } = *claim;
            info!(%peer, user = %who.user, fleet = %id, "fleet client connected");
            let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
            Box::pin(client::serve(transport, who, client::Scope::Fleet(id), place(shared))).await;
            drop(lease);
            info!(%peer, "fleet client disconnected");
            Ok(())
        }
        Admitted::Agent(claim) => {
            Box::pin(admission::prove(&mut ws, &claim, &shared.config.access, peer)).await?;
            drop(slot);
            let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
            let config = &shared.config;
            Box::pin(agent::serve(transport, peer, claim.instance, claim.key, shared.registry, config)).await
        }
    }
}

/// What a client's task reaches, of what every connection shares.
fn place(shared: Shared) -> client::Place {
    let Shared { registry, sessions, usage, clients, config, .. } = shared;
    client::Place {
        registry,
        access: config.access,
        sessions,
        usage,
        limits: config.limits,
        clients,
        detach_timeout: config.detach_timeout,
        replay_len: config.replay_len,
    }
}

fn refusal(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

/// Says a recurring warning at most once a second, with how many were not said meanwhile: a
/// flood must not become a flood of log lines.
#[derive(Debug, Default)]
struct Quiet {
    last: Option<std::time::Instant>,
    held: u64,
}

impl Quiet {
    /// `Some(held back since the last)` when the warning is to be said now.
    fn say(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(core::mem::take(&mut self.held))
    }
}
