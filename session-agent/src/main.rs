//! `session-agent`: dials out to the relay and serves this host's shells.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "a std program")]

use std::path::PathBuf;

use clap::Parser;
use session_agent::{AgentConfig, AgentKey, LoginUser, run};
use session_link::dial::Trust;

/// The agent: dials out to the relay over WebSocket and keeps the connection, so this host
/// needs no inbound port.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The relay's URL: `ws://` on loopback, `wss://` elsewhere.
    #[arg(long, default_value = "ws://127.0.0.1:7070", env = "SESSION_RELAY")]
    relay: String,
    /// Trust only the certificate authorities in this PEM file for `wss://` (default: the
    /// system's roots).
    #[arg(long, env = "SESSION_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The agent's private key (PKCS#8); made on first start if absent.
    #[arg(long, default_value = "session-agent.key", env = "SESSION_AGENT_KEY")]
    key_file: PathBuf,
    /// The activation code an admin issued (`session-relay admin activation create`), needed
    /// until the relay has registered this agent's key.
    #[arg(long, env = "SESSION_ACTIVATION_CODE")]
    activation_code: Option<String>,
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // tungstenite traces the whole handshake request, activation code included: never that.
    let filter =
        filter.add_directive("tungstenite::handshake::client=debug".parse().expect("a valid directive"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let user = LoginUser::resolve(args.user.as_deref(), args.allow_root).unwrap_or_else(|e| exit(&e));
    let key = AgentKey::load_or_create(&args.key_file).unwrap_or_else(|e| exit(&e));
    let trust = match &args.ca_file {
        Some(path) => Trust::ca_file(path).unwrap_or_else(|e| exit(&e.to_string())),
        None => Trust::system(),
    };
    let name = args.name.unwrap_or_else(default_name);
    let mut config = AgentConfig::new(&args.relay, &name, key, user);
    config.trust = trust;
    config.activation = args.activation_code;
    run(config).await;
}

fn exit(message: &str) -> ! {
    eprintln!("session-agent: {message}");
    std::process::exit(2);
}

/// The host's name, as far as it is a valid instance name.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(64).collect();
    if name.is_empty() { "localhost".to_owned() } else { name }
}
