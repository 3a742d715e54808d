//! The reference relay. One listening port; every peer speaks WebSocket to it:
//!
//! - `/v1/agent/<name>?version=<v>`: an agent dials in and keeps the connection; its session
//!   is resumable, so a dropped network loses no byte.
//! - `/v1/client/<instance>`: a client's connection, whose channels go to that instance's agent.
//! - `/v1/fleet`: a user's fleet connection, whose channels each name their instance (OpenOn),
//!   for one command run on many instances; its 101 names the fleet command's id, which every
//!   record of its channels carries.
//! - `/v1/instances`: one text message of JSON listing instances and their status.
//! - `/v1/sessions` and `/v1/sessions/<id>/terminate`: a user's sessions, and ending one.
//! - `/v1/settings/<account>?sessions=on|off`: an account's switch (`?recording=...`: what its
//!   sessions leave recorded).
//! - `/v1/recordings` and `/v1/recordings/<id>`: the session recordings a user may read.
//!
//! The relay terminates each connection with session-proto's state machine, driven by
//! `session-link`'s driver, and couples a client's channel to a channel of the agent's
//! connection, forwarding Data frames relabelled in place (no payload copy on the way to a
//! client; on the way to an agent, the one copy is the replay buffer that resume needs). A
//! channel's bytes are consumed from one connection only once the other took them, so credit
//! holds end to end and the relay holds at most one window per channel and direction.
//!
//! - `listener.rs` accepts connections (TLS when configured) and their WebSocket handshakes;
//! - `admission.rs` decides who a peer is and what its path may ask for (spec section 11): an
//!   agent signs the relay's challenge with the key it registered with an activation code, a
//!   user presents a bearer token;
//! - `agent.rs` and `client.rs` are the tasks of the two kinds of connection, telling each
//!   other of the channels they couple through `route.rs`'s messages;
//! - `access.rs` asks the policies (`policy.rs`) at every entry point, and holds the one gate
//!   of an Open; `audit.rs` writes one kind of record for everything audited;
//! - state lives in SQLite (`store.rs`) and survives restarts; `session-relay admin` manages it,
//!   and `watch.rs` is how a running relay hears of it: once a second it publishes its sessions
//!   to the store, takes the terminations an operator asked for, and ends the sessions whose
//!   token or instance was taken away;
//! - `recording/` records each shell's and command's output as asciicast, as it passes, in
//!   hash-chained chunks, by a thread of its own behind a bounded queue (spec 12.12).

#![forbid(unsafe_code)]
// A std program: the core-and-alloc discipline of the protocol crates buys nothing here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

pub mod access;
mod admission;
mod agent;
mod answers;
pub mod audit;
mod client;
mod clients;
mod console;
pub mod dev;
mod handshakes;
mod http;
pub mod labels;
mod listener;
pub mod policy;
pub mod recording;
mod registry;
mod route;
mod secret;
mod sessions;
pub mod store;
pub mod tls;
mod usage;
mod watch;

use std::net::SocketAddr;
use std::time::Duration;

use session_codec::Frame;
use session_link::Transport;
use session_proto::{ErrorCode, Message};

pub use access::Access;
pub use audit::Audit;
pub use handshakes::HandshakeLimits;
pub use listener::serve;
pub use recording::Recordings;
pub use registry::Registry;
pub use store::Store;
pub use usage::Limits;

/// How long a peer may take for its WebSocket handshake, its proof and its Hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a peer that sent no Hello in time is told, with GoAway PROTOCOL_ERROR.
const NO_HELLO: &str = "no Hello within 10 s of the handshake";

/// A new transport's first frame, its Hello, with the resume token it presents if any. A peer
/// that sends nothing in time is told so with GoAway PROTOCOL_ERROR.
async fn first_hello(mut transport: Transport) -> Result<(Transport, Frame, Option<Vec<u8>>), String> {
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, transport.next()).await {
        Ok(Some(Ok(frame))) => frame,
        Ok(_) => return Err("the connection ended before its Hello".to_owned()),
        Err(_) => return go_away(transport, ErrorCode::PROTOCOL_ERROR, NO_HELLO).await,
    };
    let token = match hello.message() {
        Ok(Message::Hello(h)) => h.resume.map(|r| r.token.to_vec()),
        _ => None,
    };
    Ok((transport, hello, token))
}

/// Answers a transport with GoAway and closes it; `message` is the error returned.
async fn go_away<T>(transport: Transport, code: ErrorCode, message: &'static str) -> Result<T, String> {
    let frame = Frame::new(&Message::GoAway { code, message }).map_err(|e| e.to_string())?;
    transport.send(frame);
    transport.close(Some(code)).wait().await;
    Err(message.to_owned())
}

/// Refusal reasons must fit their frame (256 bytes in a Refuse, 123 in a WebSocket Close) or
/// they would not be sent at all.
pub(crate) use session_link::clip;

/// How the relay runs.
#[derive(Clone)]
pub struct RelayConfig {
    /// How long a detached agent session waits for its agent to re-attach.
    pub detach_timeout: Duration,
    /// Bytes of replay buffer per agent session, at most: what may be in flight towards an
    /// agent. It is allocated as frames wait for the agent's Ack, kept at the size the traffic
    /// needs, and released when the connection is quiet or has no channel left.
    pub replay_len: usize,
    /// The gate: the store, the region, and where audit records go.
    pub access: Access,
    /// TLS for every connection, when given a certificate and key.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// How much of one instance one user may hold.
    pub limits: Limits,
    /// How many connections may be in their handshake at once.
    pub handshakes: HandshakeLimits,
    /// Origins (`https://ops.example`) whose pages may use the relay besides its own: the
    /// browser console's WebSockets and logins from anywhere else are refused (spec 11.10).
    pub console_origins: Vec<String>,
    /// The address other relays on the store tell clients to reach this one at (spec C.2);
    /// where it listens when `None`.
    pub advertise: Option<String>,
}

impl core::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("detach_timeout", &self.detach_timeout)
            .field("replay_len", &self.replay_len)
            .field("access", &self.access)
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .field("handshakes", &self.handshakes)
            .field("console_origins", &self.console_origins)
            .field("advertise", &self.advertise)
            .finish()
    }
}

impl RelayConfig {
    /// The defaults, with `access` as the gate and no TLS.
    pub fn new(access: Access) -> RelayConfig {
        RelayConfig {
            detach_timeout: Duration::from_secs(60),
            replay_len: 4 << 20,
            access,
            tls: None,
            limits: Limits::default(),
            handshakes: HandshakeLimits::default(),
            console_origins: Vec::new(),
            advertise: None,
        }
    }
}

/// A relay serving in the background.
#[derive(Debug)]
pub struct Relay {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its instances.
    pub registry: Registry,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Binds `addr` and serves on the current runtime until dropped.
    pub async fn start(addr: SocketAddr, config: RelayConfig) -> std::io::Result<Relay> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let registry = Registry::default();
        let task = tokio::spawn(serve(listener, registry.clone(), config));
        Ok(Relay { addr, registry, task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
