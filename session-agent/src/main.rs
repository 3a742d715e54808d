//! `session-agent`: dials out to the relay and serves this host's shells.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "a std program")]

use clap::Parser;
use session_agent::{AgentConfig, LoginUser, run};

/// The agent: dials out to the relay over WebSocket and keeps the connection, so this host
/// needs no inbound port.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The relay's URL.
    #[arg(long, default_value = "ws://127.0.0.1:7070", env = "SESSION_RELAY")]
    relay: String,
    /// This instance's name (letters, digits, '-', '_', '.').
    #[arg(long, env = "SESSION_INSTANCE")]
    name: Option<String>,
    /// The unprivileged login user sessions run as (default: the agent's own user).
    #[arg(long)]
    user: Option<String>,
    /// Allow sessions as root.
    #[arg(long)]
    allow_root: bool,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let user = match LoginUser::resolve(args.user.as_deref(), args.allow_root) {
        Ok(user) => user,
        Err(e) => {
            eprintln!("session-agent: {e}");
            std::process::exit(2);
        }
    };
    let name = args.name.unwrap_or_else(default_name);
    run(AgentConfig::new(&args.relay, &name, user)).await;
}

/// The host's name, as far as it is a valid instance name.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(64).collect();
    if name.is_empty() { "localhost".to_owned() } else { name }
}
