//! The reference relay. One listening port; every peer speaks WebSocket to it:
//!
//! - `/v1/agent/<name>?version=<v>`: an agent dials in and keeps the connection; its session
//!   is resumable, so a dropped network loses no byte.
//! - `/v1/client/<instance>`: a client's connection, whose channels go to that instance's agent.
//! - `/v1/instances`: one text message of JSON listing instances and their status.
//!
//! The relay terminates each connection with session-proto's state machine and couples a
//! client's channel to a channel of the agent's connection, forwarding Data frames relabelled
//! in place (no payload copy on the way to a client; on the way to an agent, the one copy is the
//! replay buffer that resume needs). A channel's bytes are consumed from one connection only
//! once the other took them, so credit holds end to end and the relay holds at most one window
//! per channel and direction.
//!
//! Who may reach which instance is decided where channels are opened (`client_link.rs`); the
//! identity of the next issue slots in there and at the handshake (`server.rs`).

#![forbid(unsafe_code)]
// A std program: the core-and-alloc discipline of the protocol crates buys nothing here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod agent_link;
pub mod audit;
mod client_link;
pub mod policy;
mod registry;
mod route;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

pub use audit::Audit;
pub use registry::Registry;
pub use server::serve;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How long a detached agent session waits for its agent to re-attach.
    pub detach_timeout: Duration,
    /// Bytes of replay buffer per agent session: what may be in flight towards an agent.
    pub replay_len: usize,
    /// Where audit records go.
    pub audit: Audit,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            detach_timeout: Duration::from_secs(300),
            replay_len: 4 << 20,
            audit: Audit::log_only(),
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
