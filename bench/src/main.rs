//! `session-loadgen`: load for the benchmarks, from one process.
//!
//! `session-loadgen agents --relay ws://127.0.0.1:7070 --activation-code sra_... --count 10000`
//! starts that many real agents (the `session-agent` library, each with a key of its own,
//! registered with one many-use code, proven and past its Hello), dialing at a steady rate, and
//! keeps them connected and idle, answering the relay's pings, until it is stopped. The agents
//! keep the smallest replay buffer the protocol allows: the load generator's memory is not what
//! is measured.

#![forbid(unsafe_code)]

use core::time::Duration;

use clap::{Parser, Subcommand};
use session_agent::{AgentConfig, AgentKey, LoginUser};
use session_proto::connection::MIN_REPLAY_LEN;

#[derive(Parser)]
#[command(version, about = "Load for the benchmarks: many real agents against one relay")]
struct Args {
    #[command(subcommand)]
    load: Load,
}

#[derive(Subcommand)]
enum Load {
    /// Connects `count` idle agents, `<prefix>0` to `<prefix><count - 1>`, and keeps them.
    Agents {
        /// The relay's base URL (`ws://` on loopback).
        #[arg(long)]
        relay: String,
        /// A code with at least `count` uses left, for the agents' first connections.
        #[arg(long, env = "SESSION_ACTIVATION_CODE", hide_env_values = true)]
        activation_code: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// How the instances are named.
        #[arg(long, default_value = "load-")]
        prefix: String,
        /// New agents per second: a relay admits a bounded number of handshakes at once.
        #[arg(long, default_value_t = 500)]
        rate: u32,
    },
}

#[tokio::main]
async fn main() -> Result<(), String> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or("error".into())).init();
    let Load::Agents { relay, activation_code, count, prefix, rate } = Args::parse().load;
    let user = LoginUser::resolve(None, true)?;
    let pause = Duration::from_secs(1) / rate.max(1);
    for i in 0..count {
        let key = AgentKey::generate()?;
        let mut config = AgentConfig::new(&relay, &format!("{prefix}{i}"), key, user.clone());
        config.activation = Some(activation_code.clone());
        config.replay_len = MIN_REPLAY_LEN;
        tokio::spawn(session_agent::run(config));
        tokio::time::sleep(pause).await;
    }
    eprintln!("{count} agents started");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
