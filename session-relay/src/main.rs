//! `session-relay`: agents and clients meet here.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "a std program")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use session_relay::{Audit, Registry, RelayConfig, serve};

/// The relay: agents dial in over WebSocket and keep the connection; clients reach their shells
/// through it.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070", env = "SESSION_RELAY_LISTEN")]
    listen: SocketAddr,
    /// Append one JSON audit record per session to this file (they are logged either way).
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Seconds a disconnected agent's sessions are kept for it to re-attach.
    #[arg(long, default_value_t = 300)]
    detach_timeout: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let audit = match &args.audit_log {
        Some(path) => Audit::to_file(path)?,
        None => Audit::log_only(),
    };
    let config = RelayConfig {
        detach_timeout: Duration::from_secs(args.detach_timeout),
        audit,
        ..RelayConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "relay listening");
    serve(listener, Registry::default(), config).await;
    Ok(())
}
