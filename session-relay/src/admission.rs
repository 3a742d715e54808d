//! Admission: who a peer is and whether it may ask for what its handshake's path names (spec
//! section 11). Users prove themselves by a bearer token; agents by a key, registered once with
//! an activation code, whose proof follows the handshake. A refusal is an HTTP status with a
//! reason, or, for an agent's proof, a WebSocket Close; each is audited.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use ring::signature::{ED25519, UnparsedPublicKey};
use session_codec::websocket::SUBPROTOCOL;
use session_link::identity::{
    ACTIVATION_HEADER, ADMITTED, AGENT_KEY_HEADER, CHALLENGE_LEN, agent_proof_message,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::info;

use crate::access::{Access, DESCRIBE_INSTANCE_STATUS, MODIFY_SETTINGS, TERMINATE_SESSION};
use crate::answers::{Answer, InstanceStatus, Instances, Labels, RecordingSet, Switched, Terminated};
use crate::audit::{Kind, Outcome, Record};
use crate::console::Console;
use crate::handshakes::off_workers;
use crate::labels::LABELS_HEADER;
use crate::policy::Context;
use crate::recording::endpoint::{self, Denied, Stream};
use crate::recording::{Mode, Settings};
use crate::registry::Registry;
use crate::secret::{self, constant_time_eq};
use crate::sessions::{Sessions, terminated_by};
use crate::store::{Instance, Principal, Refusal, StoreError};
use crate::usage::{Lease, Limits, Usage};
use crate::{HANDSHAKE_TIMEOUT, clip};

/// The longest reason a WebSocket Close carries (RFC 6455, 5.5: 125 bytes of payload).
const MAX_CLOSE_REASON: usize = 123;

/// Bytes of an Ed25519 public key.
const ED25519_KEY_LEN: usize = 32;

/// What a handshake is refused with: its status and the reason, in the response's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
    /// The peer proved nothing (no token, a bad one, no key, not the subprotocol): its
    /// refusals are sampled in the audit, since it can cause them at will.
    pub(crate) unproven: bool,
    /// For a redirect: where to dial instead.
    pub(crate) location: Option<String>,
}

impl Refused {
    fn new(status: StatusCode, reason: impl Into<String>) -> Refused {
        Refused { status, reason: reason.into(), unproven: false, location: None }
    }

    fn unproven(status: StatusCode, reason: impl Into<String>) -> Refused {
        Refused { status, reason: reason.into(), unproven: true, location: None }
    }

    /// `307` to the same path and query at `relay`, the relay that holds the instance (spec
    /// C.2), saying so.
    fn redirect(instance: &str, relay: &str, request: &Request) -> Refused {
        let path = request.uri().path_and_query().map_or("", |p| p.as_str());
        let reason = format!("instance {instance} is connected to the relay at {relay}");
        Refused {
            location: Some(format!("{relay}{path}")),
            ..Refused::new(StatusCode::TEMPORARY_REDIRECT, reason)
        }
    }

    fn unauthorized(refusal: &Refusal) -> Refused {
        match refusal {
            Refusal::Store(_) => Refused::new(StatusCode::SERVICE_UNAVAILABLE, refusal.to_string()),
            _ => Refused::unproven(StatusCode::UNAUTHORIZED, refusal.to_string()),
        }
    }

    fn forbidden(reason: String) -> Refused {
        Refused::new(StatusCode::FORBIDDEN, reason)
    }

    fn unavailable(e: &StoreError) -> Refused {
        Refused::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// What the request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Agent {
        instance: String,
        version: String,
    },
    Client {
        instance: String,
    },
    /// `/v1/fleet`: a user's connection whose channels each name their instance.
    Fleet,
    Instances,
    Sessions,
    Terminate {
        session: String,
    },
    Switch {
        account: String,
        enabled: bool,
    },
    /// `/v1/settings/<account>?recording=...`: what the account's sessions leave recorded.
    Record {
        account: String,
        mode: Mode,
        input: Option<bool>,
    },
    Recordings {
        limit: u32,
    },
    Recording {
        id: String,
        from: u64,
        follow: bool,
    },
}

/// What a handshake let in, with what comes after it.
#[derive(Debug)]
pub(crate) enum Admitted {
    /// An agent that has yet to prove it holds its key.
    Agent(Box<AgentClaim>),
    /// A client's connection to an instance.
    Client(Box<ClientClaim>),
    /// A user's fleet connection, to every instance its Opens name.
    Fleet(Box<FleetClaim>),
    /// A request answered at once: the answer goes as one text message.
    Answer(Answer),
    /// A recording, read out in messages of one chunk each.
    Recording(Box<Stream>),
}

/// A user's connection to an instance, counted against the user's limit.
#[derive(Debug)]
pub(crate) struct ClientClaim {
    pub(crate) who: Principal,
    pub(crate) instance: Instance,
    pub(crate) lease: Lease,
}

/// A user's fleet connection, counted against the user's limit of fleet connections.
#[derive(Debug)]
pub(crate) struct FleetClaim {
    pub(crate) who: Principal,
    /// The fleet command id, `<user>-<16 hex digits>`, told in the 101's `x-session-fleet`.
    pub(crate) id: String,
    pub(crate) lease: Lease,
}

/// The response header that tells a fleet connection its fleet command id (spec 11.1).
pub(crate) const FLEET_HEADER: &str = "x-session-fleet";

/// An agent's claim to an instance, to prove by signing `challenge`.
#[derive(Debug)]
pub(crate) struct AgentClaim {
    pub(crate) instance: String,
    pub(crate) version: String,
    pub(crate) key: Vec<u8>,
    /// The code to register `key` with, when it is not registered yet.
    activation: Option<String>,
    /// The labels the agent gives its instance, stored once it proved its key.
    labels: crate::labels::Labels,
    pub(crate) challenge: [u8; CHALLENGE_LEN],
}

/// What admission reads besides the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gate<'a> {
    pub(crate) access: &'a Access,
    pub(crate) registry: &'a Registry,
    pub(crate) sessions: &'a Sessions,
    pub(crate) usage: &'a Usage,
    pub(crate) limits: &'a Limits,
    pub(crate) console: &'a Console,
}

const NOT_FOUND: &str = "unknown path: use /v1/agent/<id>, /v1/client/<instance>, /v1/fleet, /v1/instances, \
                         /v1/sessions, /v1/sessions/<id>/terminate, /v1/settings/<account>?sessions=on|off, \
                         /v1/settings/<account>?recording=off|metadata|full, /v1/recordings or \
                         /v1/recordings/<id>";

impl Gate<'_> {
    /// Who the peer of `request` is, and whether it may ask for what the path names. A refusal
    /// is audited here, with the peer's address.
    pub(crate) fn admit(&self, request: &Request, peer: SocketAddr) -> Result<Admitted, Refused> {
        let path = request.uri().path();
        let admitted = self.admit_target(request);
        if let Err(refusal) = &admitted {
            let record = Record {
                peer: Some(peer.to_string()),
                path: Some(clip(path, 128).to_owned()),
                status: Some(refusal.status.as_u16()),
                ..Record::refused(refusal.reason.as_str())
            };
            // A peer that proved nothing can cause these at will: sampled per source, and so
            // is the log line. Refusals by policy (403) are audited where they are decided.
            let written = if refusal.unproven {
                self.access.audit.write_unproven(peer.ip(), &record)
            } else {
                if refusal.status != StatusCode::FORBIDDEN {
                    self.access.audit.write(&record);
                }
                true
            };
            if written && refusal.location.is_some() {
                info!(%peer, reason = %refusal.reason, "handshake redirected");
            } else if written {
                info!(%peer, status = %refusal.status, reason = %refusal.reason, "handshake refused");
            }
        }
        admitted
    }

    fn admit_target(&self, request: &Request) -> Result<Admitted, Refused> {
        if !offers_subprotocol(request) {
            // Spec 2.4: a handshake without the subprotocol is not ours to accept.
            let reason = format!("the handshake must offer the WebSocket subprotocol {SUBPROTOCOL}");
            return Err(Refused::unproven(StatusCode::BAD_REQUEST, reason));
        }
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        if let Some(origin) = header("origin") {
            // A page from elsewhere must not use the browser's login here (spec 11.10).
            if !self.console.origin_allowed(origin, header("host")) {
                let reason = format!("origin {origin} may not open WebSockets here");
                return Err(Refused::unproven(StatusCode::FORBIDDEN, reason));
            }
        }
        let Some(target) = parse_target(request) else {
            return Err(Refused::unproven(StatusCode::NOT_FOUND, NOT_FOUND));
        };
        let access = self.access;
        if let Target::Agent { instance, version } = target {
            return admit_agent(access, request, instance, version);
        }
        let who = authenticate(access, self.console, request)?;
        match target {
            Target::Agent { .. } => Err(Refused::new(StatusCode::NOT_FOUND, NOT_FOUND)),
            Target::Client { instance } => {
                let Some(instance) =
                    access.store.instance(&instance).map_err(|e| Refused::unavailable(&e))?
                else {
                    return Err(Refused::new(StatusCode::NOT_FOUND, format!("unknown instance {instance}")));
                };
                // Holding a connection needs leave to start something or to touch files; each
                // Open is checked again. No forward target or path is named yet: one allowed
                // only for some admits the connection, and a Deny of only some does not refuse it.
                let resource = access.instance(&instance.account, &instance.id);
                access.check_client(&who, &resource, &instance.labels).map_err(Refused::forbidden)?;
                // Told only to whom the instance is open: where an agent is tells something.
                if self.registry.get(&instance.id).is_none() {
                    let elsewhere = access.store.agent_elsewhere(&instance.id, &access.relay);
                    if let Ok(Some(relay)) = elsewhere {
                        return Err(Refused::redirect(&instance.id, &relay, request));
                    }
                }
                let lease = self
                    .usage
                    .connect(&who.user, &instance.id, self.limits)
                    .map_err(|over| Refused::new(StatusCode::TOO_MANY_REQUESTS, over.0))?;
                Ok(Admitted::Client(Box::new(ClientClaim { who, instance, lease })))
            }
            Target::Fleet => {
                // A token alone: each Open names its instance and is checked then (spec 11.6).
                let lease = self
                    .usage
                    .connect_fleet(&who.user, self.limits)
                    .map_err(|over| Refused::new(StatusCode::TOO_MANY_REQUESTS, over.0))?;
                let suffix = secret::random::<8>()
                    .map_err(|e| Refused::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                let id = format!("{}-{}", who.user, hex::encode(suffix));
                Ok(Admitted::Fleet(Box::new(FleetClaim { who, id, lease })))
            }
            Target::Instances => {
                Ok(Admitted::Answer(Answer::of(&self.status(&who).map_err(|e| Refused::unavailable(&e))?)))
            }
            Target::Sessions => Ok(Admitted::Answer(Answer::of(&self.sessions.of(&who.user)))),
            Target::Terminate { session } => {
                let Some(active) = self.sessions.get(&session) else {
                    return Err(Refused::new(
                        StatusCode::NOT_FOUND,
                        format!("no session {session} in progress"),
                    ));
                };
                let resource = access.session(&active.account, &session);
                if active.owner != who.user {
                    let reason = format!("session {session} belongs to another user");
                    access.audit.write(&Record {
                        actor: Some(who.user.clone()),
                        action: Some(TERMINATE_SESSION.to_owned()),
                        resource: Some(resource),
                        session: Some(session.clone()),
                        ..Record::refused(reason.as_str())
                    });
                    return Err(Refused::forbidden(reason));
                }
                access.check(&who, TERMINATE_SESSION, &resource).map_err(Refused::forbidden)?;
                if !active.end(terminated_by(&who.user)) {
                    return Err(Refused::new(StatusCode::NOT_FOUND, format!("session {session} just ended")));
                }
                Ok(Admitted::Answer(Answer::of(&Terminated { terminated: session })))
            }
            Target::Switch { account, enabled } => {
                let resource = access.settings(&account);
                access.check(&who, MODIFY_SETTINGS, &resource).map_err(Refused::forbidden)?;
                // Only once the user may: whether an account exists is told to those alone.
                access.store.set_switch(&account, enabled).map_err(|e| match e {
                    StoreError::UnknownAccount(_) => Refused::new(StatusCode::NOT_FOUND, e.to_string()),
                    _ => Refused::unavailable(&e),
                })?;
                access.audit.write(&Record {
                    actor: Some(who.user),
                    action: Some(MODIFY_SETTINGS.to_owned()),
                    resource: Some(resource),
                    reason: Some(format!("sessions {}", if enabled { "on" } else { "off" })),
                    ..Record::new(Kind::Settings, Outcome::Allowed)
                });
                Ok(Admitted::Answer(Answer::of(&Switched { account, sessions_enabled: enabled })))
            }
            Target::Record { account, mode, input } => {
                let resource = access.settings(&account);
                access.check(&who, MODIFY_SETTINGS, &resource).map_err(Refused::forbidden)?;
                let unknown = |e: StoreError| match e {
                    StoreError::UnknownAccount(_) => Refused::new(StatusCode::NOT_FOUND, e.to_string()),
                    _ => Refused::unavailable(&e),
                };
                // Input stays as it was unless the request names it; off for an account never set.
                let before = access.store.recording(&account).map_err(unknown)?;
                let input = input.or(before.map(|s| s.input)).unwrap_or(false);
                let settings = Settings { mode, input };
                access.store.set_recording(&account, settings).map_err(unknown)?;
                access.audit.write(&Record {
                    actor: Some(who.user),
                    action: Some(MODIFY_SETTINGS.to_owned()),
                    resource: Some(resource),
                    reason: Some(format!("recording {mode}, input {}", if input { "on" } else { "off" })),
                    ..Record::new(Kind::Settings, Outcome::Allowed)
                });
                Ok(Admitted::Answer(Answer::of(&RecordingSet { account, recording: mode.as_str(), input })))
            }
            Target::Recordings { limit } => {
                let listing = endpoint::listing(access, &who, limit).map_err(denied)?;
                Ok(Admitted::Answer(Answer(listing)))
            }
            Target::Recording { id, from, follow } => {
                let stream =
                    endpoint::open(access, &who, &id, from, follow, self.sessions).map_err(denied)?;
                Ok(Admitted::Recording(Box::new(stream)))
            }
        }
    }

    /// The instances `who` may see, with their status and labels.
    fn status(&self, who: &Principal) -> Result<Instances, StoreError> {
        let access = self.access;
        let describes = access.allowed(who, DESCRIBE_INSTANCE_STATUS, Context::Empty);
        let elsewhere: std::collections::HashMap<String, String> =
            access.store.agents_elsewhere(&access.relay)?.into_iter().collect();
        let instances = access
            .store
            .instances()?
            .into_iter()
            .filter(|i| describes(&access.instance(&i.account, &i.id), Some(&i.labels)))
            .map(|i| {
                // An agent whose key the store no longer holds does not make its name online.
                let presence = self.registry.presence(&i.id, &i.public_key);
                let relay = presence.is_none().then(|| elsewhere.get(&i.id).cloned()).flatten();
                let status = match (presence, &relay) {
                    (Some((true, _)), _) => "online",
                    (Some((false, _)), _) => "reconnecting",
                    (None, Some(_)) => "elsewhere",
                    (None, None) => "offline",
                };
                InstanceStatus {
                    status,
                    relay,
                    agent_version: i.agent_version,
                    last_seen: presence.map_or(i.last_seen, |(_, seen)| Some(seen)),
                    labels: Labels {
                        region: access.region.clone(),
                        account: i.account,
                        name: i.label,
                        agent: i.labels,
                    },
                    name: i.id,
                }
            })
            .collect();
        Ok(Instances { instances })
    }
}

/// A refusal of the recordings' endpoints, as the handshake's.
fn denied(denied: Denied) -> Refused {
    match denied {
        Denied::NotFound(reason) => Refused::new(StatusCode::NOT_FOUND, reason),
        Denied::Forbidden(reason) => Refused::forbidden(reason),
        Denied::Unavailable(reason) => Refused::new(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

/// The user a bearer token names, or else a console login's cookie.
fn authenticate(access: &Access, console: &Console, request: &Request) -> Result<Principal, Refused> {
    let authorization = request.headers().get("authorization");
    if authorization.is_none() {
        let cookies = request.headers().get("cookie").and_then(|v| v.to_str().ok());
        if let Some(who) = console.who(cookies) {
            // The token the login was made with may have been revoked or have expired since.
            access.store.token_valid(&who.token).map_err(|e| Refused::unauthorized(&e))?;
            return Ok(who);
        }
    }
    let token = authorization
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        .and_then(|v| {
            v.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer ")).and_then(|_| v.get(7..))
        })
        .ok_or(Refusal::Missing("bearer token"))
        .map_err(|e| Refused::unauthorized(&e))?;
    access.store.authenticate(token.trim()).map_err(|e| Refused::unauthorized(&e))
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
    // Before the key: a malformed header is the agent's configuration, told at once (400).
    let labels = agent_labels(request)
        .map_err(|why| Refused::unproven(StatusCode::BAD_REQUEST, format!("{LABELS_HEADER}: {why}")))?;
    let key = header(AGENT_KEY_HEADER)
        .ok_or(Refusal::Missing("agent key"))
        .map_err(|e| Refused::unauthorized(&e))?;
    let key = hex::decode(key)
        .ok()
        .filter(|k| k.len() == ED25519_KEY_LEN)
        .ok_or(Refusal::Malformed("agent key"))
        .map_err(|e| Refused::unauthorized(&e))?;
    let activation = match access.store.instance(&instance).map_err(|e| Refused::unavailable(&e))? {
        Some(registered) if constant_time_eq(&registered.public_key, &key) => None,
        Some(_) => return Err(Refused::unauthorized(&Refusal::Unknown("agent key for this instance"))),
        None => {
            let Some(code) = header(ACTIVATION_HEADER) else {
                let reason =
                    format!("instance {instance} is not registered: give its agent an activation code");
                return Err(Refused::unproven(StatusCode::UNAUTHORIZED, reason));
            };
            access.store.check_activation(code).map_err(|e| Refused::unauthorized(&e))?;
            Some(code.to_owned())
        }
    };
    let challenge =
        secret::random().map_err(|e| Refused::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Admitted::Agent(Box::new(AgentClaim { instance, version, key, activation, labels, challenge })))
}

/// The labels of an agent's request: none without the header. Sent more than once, it is
/// refused rather than one of its values picked. A value that is not visible ASCII is taken for
/// absent, as every header's (spec 11.1).
fn agent_labels(request: &Request) -> Result<crate::labels::Labels, String> {
    let mut values = request.headers().get_all(LABELS_HEADER).iter();
    let Some(value) = values.next() else { return Ok(crate::labels::Labels::new()) };
    if values.next().is_some() {
        return Err("given more than once".to_owned());
    }
    value.to_str().map_or_else(|_| Ok(crate::labels::Labels::new()), crate::labels::parse)
}

/// The agent's first message must be its signature of the challenge; then a code it came with
/// registers its key. It is told `ok`, or why not in a Close.
pub(crate) async fn prove<S>(
    ws: &mut WebSocketStream<S>,
    claim: &AgentClaim,
    access: &Access,
    peer: SocketAddr,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let proof = match tokio::time::timeout(HANDSHAKE_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) => hex::decode(text.as_str()).ok(),
        _ => None,
    };
    let outcome = off_workers(|| check_proof(proof.as_deref(), claim, access));
    match outcome {
        Ok(()) => ws.send(WsMessage::text(ADMITTED)).await.map_err(|e| e.to_string()),
        Err(reason) => {
            // Anyone can present any key: a failed proof proves nothing, and is sampled.
            let record = Record {
                actor: Some(format!("agent:{}", claim.instance)),
                peer: Some(peer.to_string()),
                path: Some(format!("/v1/agent/{}", claim.instance)),
                ..Record::refused(reason.as_str())
            };
            if access.audit.write_unproven(peer.ip(), &record) {
                info!(%peer, instance = %claim.instance, %reason, "agent refused");
            }
            let frame =
                CloseFrame { code: CloseCode::Policy, reason: clip(&reason, MAX_CLOSE_REASON).into() };
            let _ = ws.close(Some(frame)).await;
            Err(reason)
        }
    }
}

/// Whether `Sec-WebSocket-Protocol` lists the protocol's subprotocol, in any of its values.
fn offers_subprotocol(request: &Request) -> bool {
    let offered = request.headers().get_all("sec-websocket-protocol");
    offered.iter().any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL)))
}

/// The signature check, and the store's registration of a new key and its last sighting.
fn check_proof(proof: Option<&[u8]>, claim: &AgentClaim, access: &Access) -> Result<(), String> {
    let message = agent_proof_message(&claim.instance, &claim.challenge);
    let key = UnparsedPublicKey::new(&ED25519, &claim.key);
    match proof {
        Some(signature) if key.verify(&message, signature).is_ok() => {}
        _ => return Err("the agent's proof of its key is wrong".to_owned()),
    }
    if let Some(code) = &claim.activation {
        let registered =
            access.store.register(&claim.instance, &claim.key, code).map_err(|e| e.to_string())?;
        info!(instance = %claim.instance, account = %registered.account, "agent registered its key");
    }
    access.store.seen(&claim.instance, &claim.version, &claim.labels).map_err(|e| e.to_string())
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
        ["v1", "fleet"] => Some(Target::Fleet),
        ["v1", "instances"] => Some(Target::Instances),
        ["v1", "sessions"] => Some(Target::Sessions),
        ["v1", "sessions", session, "terminate"] if valid_session(session) => {
            Some(Target::Terminate { session: owned(session) })
        }
        ["v1", "settings", account] if valid_name(account) && param("recording").is_some() => {
            let mode = param("recording")?.parse().ok()?;
            let input = match param("input") {
                None => None,
                Some("on") => Some(true),
                Some("off") => Some(false),
                Some(_) => return None,
            };
            Some(Target::Record { account: owned(account), mode, input })
        }
        ["v1", "settings", account] if valid_name(account) => {
            let enabled = match param("sessions")? {
                "on" => true,
                "off" => false,
                _ => return None,
            };
            Some(Target::Switch { account: owned(account), enabled })
        }
        ["v1", "recordings"] => {
            let limit = match param("limit") {
                None => endpoint::MAX_LISTED,
                Some(limit) => limit.parse().ok().filter(|&n| n > 0)?,
            };
            Some(Target::Recordings { limit })
        }
        ["v1", "recordings", id] if valid_session(id) => {
            let from = match param("from") {
                None => 0,
                Some(from) => from.parse().ok()?,
            };
            let follow = match param("follow") {
                None | Some("0") => false,
                Some("1") => true,
                Some(_) => return None,
            };
            Some(Target::Recording { id: owned(id), from, follow })
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
