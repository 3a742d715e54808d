//! The listening port: WebSocket handshakes, routed by path to agents, clients and the list.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use ring::signature::{ED25519, UnparsedPublicKey};
use session_codec::Frame;
use session_codec::link::identity::{
    ACTIVATION_HEADER, ADMITTED, AGENT_KEY_HEADER, CHALLENGE_HEADER, CHALLENGE_LEN, agent_proof_message,
};
use session_codec::link::{Clock, Transport};
use session_codec::proto::{DEFAULT_MAX_FRAME, ErrorCode, Message};
use session_codec::websocket::{SUBPROTOCOL, ws_config};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};

use crate::access::{
    Access, DESCRIBE_INSTANCE_STATUS, MODIFY_SETTINGS, START_PORT_FORWARD, START_SESSION, TERMINATE_SESSION,
};
use crate::agent_link::{AgentTask, Reattach, new_connection};
use crate::client_link::ClientTask;
use crate::registry::{Entry, Registry};
use crate::secret::{self, constant_time_eq};
use crate::sessions::Sessions;
use crate::store::{Instance, Principal, Refusal, StoreError};
use crate::{RelayConfig, clip};

/// The longest reason a WebSocket Close carries (RFC 6455, 5.5: 125 bytes of payload).
const MAX_CLOSE_REASON: usize = 123;

/// Bytes of an Ed25519 public key.
const ED25519_KEY_LEN: usize = 32;

/// How long a peer may take for its WebSocket handshake and its Hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Agent sessions are numbered so that a replaced one cannot unregister its successor.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// What the request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Agent { instance: String, version: String },
    Client { instance: String },
    Instances,
    Sessions,
    Terminate { session: String },
    Switch { account: String, enabled: bool },
}

/// What a handshake let in, with what comes after it.
#[derive(Debug)]
enum Admitted {
    /// An agent that has yet to prove it holds `key` by signing `challenge`.
    Agent(Box<AgentClaim>),
    /// A client's connection to an instance.
    Client { who: Principal, instance: Instance },
    /// A request answered at once: the answer goes as one text message.
    Answer(serde_json::Value),
}

#[derive(Debug)]
struct AgentClaim {
    instance: String,
    version: String,
    key: Vec<u8>,
    /// The code to register `key` with, when it is not registered yet.
    activation: Option<String>,
    challenge: [u8; CHALLENGE_LEN],
}

/// What every connection's task shares.
#[derive(Debug, Clone)]
struct Shared {
    registry: Registry,
    sessions: Sessions,
    config: RelayConfig,
}

/// Accepts connections on `listener` for ever: through TLS when the config has it.
pub async fn serve(listener: TcpListener, registry: Registry, config: RelayConfig) {
    let shared = Shared { registry, sessions: Sessions::default(), config };
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
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = stream.set_nodelay(true) {
                debug!(%peer, error = %e, "connection lost");
                return;
            }
            let result = match shared.config.tls.clone() {
                Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => handle(stream, peer, shared).await,
                    Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                    Err(_) => Err("TLS handshake timed out".to_owned()),
                },
                None => handle(stream, peer, shared).await,
            };
            if let Err(e) = result {
                info!(%peer, reason = %e, "connection refused");
            }
        });
    }
}

async fn handle<S>(stream: S, peer: SocketAddr, shared: Shared) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut admitted = None;
    #[allow(clippy::result_large_err, reason = "the callback type is tungstenite's")]
    let callback = |request: &Request, mut response: Response| {
        let Some(target) = parse_target(request) else {
            let path = request.uri().path();
            shared.config.access.audit.write(serde_json::json!({
                "event": "refused", "peer": peer.to_string(), "path": clip(path, 128), "status": 404,
                "reason": "unknown path",
            }));
            return Err(refusal(StatusCode::NOT_FOUND, NOT_FOUND));
        };
        let admission = admit(&shared, request, target).map_err(|(status, message)| {
            info!(%peer, %status, reason = %message, "handshake refused");
            // Refusals by policy (403) are audited where they are decided.
            if status != StatusCode::FORBIDDEN {
                shared.config.access.audit.write(serde_json::json!({
                    "event": "refused", "peer": peer.to_string(), "path": request.uri().path(),
                    "status": status.as_u16(), "reason": message,
                }));
            }
            refusal(status, &message)
        })?;
        if let Admitted::Agent(claim) = &admission {
            let challenge = HeaderValue::from_str(&hex::encode(claim.challenge)).map_err(|_| internal())?;
            response.headers_mut().insert(CHALLENGE_HEADER, challenge);
        }
        admitted = Some(admission);
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
    match admitted.ok_or("no target")? {
        Admitted::Answer(answer) => {
            ws.send(WsMessage::text(answer.to_string())).await.map_err(|e| e.to_string())?;
            let _ = ws.close(None).await;
            Ok(())
        }
        Admitted::Client { who, instance } => {
            info!(%peer, user = %who.user, instance = %instance.id, "client connected");
            let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
            let Shared { registry, sessions, config } = shared;
            let instance = instance.id;
            ClientTask { who, instance, transport, registry, access: config.access, sessions }.run().await;
            info!(%peer, "client disconnected");
            Ok(())
        }
        Admitted::Agent(claim) => {
            prove(&mut ws, &claim, &shared.config.access).await?;
            let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
            let AgentClaim { instance, key, .. } = *claim;
            agent(transport, peer, instance, key, shared.registry, shared.config).await
        }
    }
}

type Refused = (StatusCode, String);

fn unauthorized(refusal: &Refusal) -> Refused {
    let status = match refusal {
        Refusal::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    (status, refusal.to_string())
}

fn forbidden(message: String) -> Refused {
    (StatusCode::FORBIDDEN, message)
}

fn unavailable(e: &StoreError) -> Refused {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The gate of the handshake: who the peer is, and whether it may ask for `target`.
fn admit(shared: &Shared, request: &Request, target: Target) -> Result<Admitted, Refused> {
    let access = &shared.config.access;
    if let Target::Agent { instance, version } = target {
        return admit_agent(access, request, instance, version);
    }
    let who = authenticate(access, request)?;
    match target {
        Target::Agent { .. } => Err((StatusCode::NOT_FOUND, NOT_FOUND.to_owned())),
        Target::Client { instance } => {
            let Some(instance) = access.store.instance(&instance).map_err(|e| unavailable(&e))? else {
                return Err((StatusCode::NOT_FOUND, format!("unknown instance {instance}")));
            };
            // Holding a connection needs leave to start something; each Open is checked again.
            let resource = access.instance(&instance.account, &instance.id);
            if !access.allowed(&who, START_PORT_FORWARD)(&resource) {
                access.check(&who, START_SESSION, &resource).map_err(forbidden)?;
            }
            Ok(Admitted::Client { who, instance })
        }
        Target::Instances => Ok(Admitted::Answer(status(shared, &who).map_err(|e| unavailable(&e))?)),
        Target::Sessions => Ok(Admitted::Answer(shared.sessions.of(&who.user))),
        Target::Terminate { session } => {
            let Some(active) = shared.sessions.get(&session) else {
                return Err((StatusCode::NOT_FOUND, format!("no session {session} in progress")));
            };
            if active.owner != who.user {
                let message = format!("session {session} belongs to another user");
                access.audit.write(serde_json::json!({
                    "event": "refused", "user": who.user, "action": TERMINATE_SESSION,
                    "session": session, "reason": message,
                }));
                return Err(forbidden(message));
            }
            access
                .check(&who, TERMINATE_SESSION, &access.session(&active.account, &session))
                .map_err(forbidden)?;
            if !active.terminate() {
                return Err((StatusCode::NOT_FOUND, format!("session {session} just ended")));
            }
            Ok(Admitted::Answer(serde_json::json!({ "terminated": session })))
        }
        Target::Switch { account, enabled } => {
            access.check(&who, MODIFY_SETTINGS, &access.settings(&account)).map_err(forbidden)?;
            access.store.set_sessions_enabled(&account, enabled).map_err(|e| unavailable(&e))?;
            access.audit.write(serde_json::json!({
                "event": "settings", "user": who.user, "account": account, "sessions_enabled": enabled,
            }));
            Ok(Admitted::Answer(serde_json::json!({ "account": account, "sessions_enabled": enabled })))
        }
    }
}

/// The user a bearer token names.
fn authenticate(access: &Access, request: &Request) -> Result<Principal, Refused> {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        .and_then(|v| v.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]))
        .ok_or(Refusal::Missing("bearer token"))
        .map_err(|e| unauthorized(&e))?;
    access.store.authenticate(token.trim()).map_err(|e| unauthorized(&e))
}

/// An agent's claim to `instance`: a registered key, or a usable activation code to register
/// a new one with; the proof of the key follows the handshake.
fn admit_agent(
    access: &Access,
    request: &Request,
    instance: String,
    version: String,
) -> Result<Admitted, Refused> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let key = header(AGENT_KEY_HEADER).ok_or(Refusal::Missing("agent key")).map_err(|e| unauthorized(&e))?;
    let key = hex::decode(key)
        .ok()
        .filter(|k| k.len() == ED25519_KEY_LEN)
        .ok_or(Refusal::Malformed("agent key"))
        .map_err(|e| unauthorized(&e))?;
    let activation = match access.store.instance(&instance).map_err(|e| unavailable(&e))? {
        Some(registered) if constant_time_eq(&registered.public_key, &key) => None,
        Some(_) => return Err(unauthorized(&Refusal::Unknown("agent key for this instance"))),
        None => {
            let Some(code) = header(ACTIVATION_HEADER) else {
                let message =
                    format!("instance {instance} is not registered: give its agent an activation code");
                return Err((StatusCode::UNAUTHORIZED, message));
            };
            access.store.check_activation(code).map_err(|e| unauthorized(&e))?;
            Some(code.to_owned())
        }
    };
    let challenge = secret::random().map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Admitted::Agent(Box::new(AgentClaim { instance, version, key, activation, challenge })))
}

/// The agent's first message must be its signature of the challenge; then a code it came with
/// registers its key. It is told `ok`, or why not in a Close.
async fn prove<S>(ws: &mut WebSocketStream<S>, claim: &AgentClaim, access: &Access) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let proof = match tokio::time::timeout(HANDSHAKE_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) => hex::decode(text.as_str()).ok(),
        _ => None,
    };
    let message = agent_proof_message(&claim.instance, &claim.challenge);
    let key = UnparsedPublicKey::new(&ED25519, &claim.key);
    let mut outcome = match proof {
        Some(signature) if key.verify(&message, &signature).is_ok() => Ok(()),
        _ => Err("the agent's proof of its key is wrong".to_owned()),
    };
    if let (Ok(()), Some(code)) = (&outcome, &claim.activation) {
        outcome = match access.store.register(&claim.instance, &claim.key, code) {
            Ok(registered) => {
                info!(instance = %claim.instance, account = %registered.account, "agent registered its key");
                Ok(())
            }
            Err(refusal) => Err(refusal.to_string()),
        };
    }
    if outcome.is_ok() {
        if let Err(e) = access.store.seen(&claim.instance, &claim.version) {
            outcome = Err(e.to_string());
        }
    }
    match outcome {
        Ok(()) => ws.send(WsMessage::text(ADMITTED)).await.map_err(|e| e.to_string()),
        Err(reason) => {
            access.audit.write(serde_json::json!({
                "event": "refused", "path": format!("/v1/agent/{}", claim.instance), "reason": reason,
            }));
            let frame =
                CloseFrame { code: CloseCode::Policy, reason: clip(&reason, MAX_CLOSE_REASON).into() };
            let _ = ws.close(Some(frame)).await;
            Err(reason)
        }
    }
}

/// The instances `who` may see, with their status and labels.
fn status(shared: &Shared, who: &Principal) -> Result<serde_json::Value, StoreError> {
    let access = &shared.config.access;
    let describes = access.allowed(who, DESCRIBE_INSTANCE_STATUS);
    let instances: Vec<serde_json::Value> = access
        .store
        .instances()?
        .into_iter()
        .filter(|i| describes(&access.instance(&i.account, &i.id)))
        .map(|i| {
            // An agent whose key the store no longer holds does not make its name online.
            let presence = shared.registry.presence(&i.id, &i.public_key);
            let status = match presence {
                Some((true, _)) => "online",
                Some((false, _)) => "reconnecting",
                None => "offline",
            };
            let last_seen = presence.map_or(i.last_seen, |(_, seen)| Some(seen));
            serde_json::json!({
                "name": i.id,
                "status": status,
                "agent_version": i.agent_version,
                "last_seen": last_seen,
                "labels": { "region": access.region, "account": i.account, "name": i.label },
            })
        })
        .collect();
    Ok(serde_json::json!({ "instances": instances }))
}

/// An agent's transport: a fresh session, or a new transport for a detached one.
async fn agent(
    mut transport: Transport,
    peer: SocketAddr,
    name: String,
    key: Vec<u8>,
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
        // The session must be this instance's, and held by the key just proven.
        let entry = registry
            .get(&name)
            .filter(|e| constant_time_eq(&e.token, &token) && constant_time_eq(&e.key, &key));
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
    let entry = Entry { serial, to_agent, reattach, token, key, online: false, last_seen: SystemTime::now() };
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

const NOT_FOUND: &str = "unknown path: use /v1/agent/<id>, /v1/client/<instance>, /v1/instances, \
                         /v1/sessions, /v1/sessions/<id>/terminate or /v1/settings/<account>?sessions=on|off";

fn refusal(status: StatusCode, message: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(message.to_owned()));
    *response.status_mut() = status;
    response
}

fn internal() -> ErrorResponse {
    refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn parse_target(request: &Request) -> Option<Target> {
    let uri = request.uri();
    let query = uri.query().unwrap_or_default();
    let param = |key: &str| {
        query.split('&').find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    };
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let owned = |name: &&str| (*name).to_owned();
    match segments.as_slice() {
        ["v1", "agent", name] if valid_name(name) => {
            let version = param("version").filter(|v| valid_name(v)).unwrap_or("unknown");
            Some(Target::Agent { instance: owned(name), version: version.to_owned() })
        }
        ["v1", "client", instance] if valid_name(instance) => {
            Some(Target::Client { instance: owned(instance) })
        }
        ["v1", "instances"] => Some(Target::Instances),
        ["v1", "sessions"] => Some(Target::Sessions),
        ["v1", "sessions", session, "terminate"] if valid_session(session) => {
            Some(Target::Terminate { session: owned(session) })
        }
        ["v1", "settings", account] if valid_name(account) => {
            let enabled = match param("sessions")? {
                "on" => true,
                "off" => false,
                _ => return None,
            };
            Some(Target::Switch { account: owned(account), enabled })
        }
        _ => None,
    }
}

/// Names of instances, sessions and accounts: 1 to 64 of letters, digits, `-`, `_`, `.` and `@`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name_bytes(name)
}

/// A session id: its owner's name (up to 64), a dash and 16 hex digits.
fn valid_session(id: &str) -> bool {
    (18..=81).contains(&id.len()) && name_bytes(id)
}

fn name_bytes(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}
