//! `session-agent`: dials out to the relay and serves this host's shells.
//!
//! Exit codes (also in `--help`):
//!
//! - 0: stopped by SIGTERM, SIGINT, SIGHUP or SIGQUIT, after closing its sessions and telling
//!   the relay it stops;
//! - 2: it cannot start as configured (the key file, the login user, the CA file, a
//!   `--forward-allow` or `--forward-deny` rule, a `--label`);
//! - 3: the relay refused it for good (an activation code used, malformed, unknown or expired;
//!   a key the relay does not know, or not this instance's): the reason is on stderr;
//! - 4: another agent with the same key connected as this instance and replaced it.
//!
//! # Signals
//!
//! The agent installs handlers for SIGHUP, SIGINT, SIGQUIT and SIGTERM before it starts any
//! session, for two reasons. The first is what its sessions inherit: a signal whose disposition
//! is "ignore" stays ignored across fork and exec, and the agent's parent may have left some so
//! (a script's `agent &` ignores SIGINT and SIGQUIT, `nohup` ignores SIGHUP); every shell and
//! command would then ignore them too, and neither Ctrl-C nor a client's Signal INT would do
//! anything. A caught signal, though, is reset to its default by exec; and installing a handler
//! is the one way to change a disposition without unsafe code (std's `Command` resets only
//! SIGPIPE and the signal mask in the child, and `sigaction` is unsafe). This is done here in
//! the binary, not in the library's `run`, which tests and the client's demo embed in programs
//! whose signals are theirs.
//!
//! The second is stopping well: any of them stops the agent as described under exit code 0,
//! so that the relay lists it offline at once instead of waiting for it to reconnect. A signal
//! that was already ignored when the agent started is the exception: whoever started it so
//! asked for the agent to outlive it (`nohup` for a hangup), and the agent goes on ignoring it,
//! while its sessions still get the default.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "a std program")]

use std::path::PathBuf;

use clap::Parser;
use session_agent::forward_rules::{ForwardRules, Rule};
use session_agent::labels::{self, Label};
use session_agent::{AgentConfig, AgentError, AgentKey, LoginUser, run_until};
use session_link::dial::Trust;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Exit code: it cannot start as configured.
const EXIT_CONFIG: i32 = 2;
/// Exit code: the relay refused the agent for good.
const EXIT_REFUSED: i32 = 3;
/// Exit code: another agent replaced this one.
const EXIT_SUPERSEDED: i32 = 4;

const EXIT_CODES: &str = "\
Exit codes:
  0  stopped by SIGTERM, SIGINT, SIGHUP or SIGQUIT: its sessions were closed (each process gets
     SIGHUP, then SIGTERM and SIGKILL 2 s apart) and the relay was told it stops
  2  it cannot start as configured (key file, user, CA file, ws:// off loopback, a forward rule,
     a label)
  3  the relay refused it for good (activation code used, malformed, unknown or expired; key
     unknown or not this instance's): the relay's reason is on stderr
  4  another agent with the same key connected as this instance and replaced this one";

/// The agent: dials out to the relay over WebSocket and keeps the connection, so this host
/// needs no inbound port.
// `hide_env_values` on each argument that may hold a secret: `--help` would otherwise print the
// value the environment holds (the activation code; a relay URL with credentials in it).
#[derive(Debug, Parser)]
#[command(version, after_help = EXIT_CODES)]
struct Args {
    /// The relay's URL: `ws://` on loopback, `wss://` elsewhere. Several, comma-separated or
    /// repeated, name relays that share one store: the agent dials them in turn until one takes
    /// it, and goes to the next at once when the one it had is gone.
    #[arg(
        long,
        default_value = "ws://127.0.0.1:7070",
        env = "SESSION_RELAY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    relay: Vec<String>,
    /// Trust only the certificate authorities in this PEM file for `wss://` (default: the
    /// system's roots).
    #[arg(long, env = "SESSION_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The agent's private key (PKCS#8); made on first start if absent.
    #[arg(long, default_value = "session-agent.key", env = "SESSION_AGENT_KEY")]
    key_file: PathBuf,
    /// The activation code an admin issued (`session-relay admin activation create`), needed
    /// until the relay has registered this agent's key.
    /// Best given through the environment or a file: argv is visible to every user's `ps`.
    #[arg(long, env = "SESSION_ACTIVATION_CODE", hide_env_values = true)]
    activation_code: Option<String>,
    /// A file holding the activation code, instead of `--activation-code`.
    #[arg(long, value_name = "PATH", conflicts_with = "activation_code")]
    activation_code_file: Option<PathBuf>,
    /// This instance's name (letters, digits, '-', '_', '.').
    #[arg(long, env = "SESSION_INSTANCE")]
    name: Option<String>,
    /// The unprivileged login user sessions run as (default: the agent's own user).
    #[arg(long)]
    user: Option<String>,
    /// Allow sessions as root.
    #[arg(long)]
    allow_root: bool,
    /// Allow `ws://` to a relay off loopback: the activation code and every session would cross
    /// the network in the clear (only behind a TLS-terminating proxy you trust).
    #[arg(long)]
    insecure: bool,
    /// A port forward target this agent may reach, `host[:ports]`: a host is a range
    /// (`10.0.0.0/8`, `[fd00::/8]`), an address or a name pattern (`*.internal`); ports are
    /// `22`, `8000-8999` or `*` (the default). Repeatable. Given once, only what these name may
    /// be reached; never given, anything but link-local and metadata addresses, which only a
    /// rule naming an address in 169.254.0.0/16, fe80::/10 or fd00:ec2::254 opens.
    #[arg(long = "forward-allow", value_name = "RULE")]
    forward_allow: Vec<Rule>,
    /// A port forward target this agent refuses, as `--forward-allow` writes it; wins over any
    /// allow. Repeatable.
    #[arg(long = "forward-deny", value_name = "RULE")]
    forward_deny: Vec<Rule>,
    /// A label for this instance, `key=value` (`--label env=prod --label role=web`): users
    /// select instances by their labels (`session-client run -l env=prod`) and policies may
    /// test them (`session:InstanceLabel/env`). Key and value are each 1 to 64 of `A-Z a-z 0-9 -
    /// _ . @`; `region`, `account` and `name` are the relay's own. Repeatable, 16 at most.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<Label>,
}

fn main() {
    // A file worker (see the library's `files`): the agent starts its own binary so, as the
    // login user, for one file operation. Told apart before anything else, and never by clap,
    // so that `--help` does not show it; it needs no runtime and no logging.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == session_agent::files::WORKER_ARG) {
        std::process::exit(session_agent::files::run_worker());
    }
    agent();
}

// One thread: every frame of every session goes through the one connection's driver anyway,
// and the work a session does (a shell, a file's hashing) runs in processes of its own. Two
// workers only hand each frame from one to the other: 2.1 context switches a keystroke's
// round trip on one thread against 6.5 on two, and about 50 us of it (BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn agent() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // tungstenite traces the whole handshake request, activation code included: never that.
    let filter =
        filter.add_directive("tungstenite::handshake::client=debug".parse().expect("a valid directive"));
    // Colours only for a person at a terminal, never in a journal or a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let mut args = Args::parse();
    // A mistake in the command line itself, told before anything else is looked at.
    let labels =
        labels::collect(core::mem::take(&mut args.labels)).unwrap_or_else(|e| exit(&format!("--label: {e}")));
    // Before any session starts: see the top of this file.
    let stop = StopSignals::install().unwrap_or_else(|e| exit(&format!("cannot handle signals: {e}")));
    if !args.insecure {
        for relay in &args.relay {
            session_link::dial::refuse_cleartext(relay).unwrap_or_else(|e| exit(&e.to_string()));
        }
    }
    let user = LoginUser::resolve(args.user.as_deref(), args.allow_root).unwrap_or_else(|e| exit(&e));
    let key = AgentKey::load_or_create(&args.key_file).unwrap_or_else(|e| exit(&e));
    let trust = match &args.ca_file {
        Some(path) => Trust::ca_file(path).unwrap_or_else(|e| exit(&e.to_string())),
        None => Trust::system(),
    };
    let name = args.name.unwrap_or_else(default_name);
    let mut config = AgentConfig::new(args.relay.first().map_or("", String::as_str), &name, key, user);
    config.relays = args.relay.iter().map(|relay| relay.trim_end_matches('/').to_owned()).collect();
    config.trust = trust;
    config.activation = match (&args.activation_code, &args.activation_code_file) {
        (_, Some(path)) => match std::fs::read_to_string(path) {
            Ok(code) => Some(code.trim().to_owned()),
            Err(e) => exit(&format!("{}: {e}", path.display())),
        },
        (code, None) => code.clone(),
    };
    config.forward = ForwardRules::new(args.forward_allow, args.forward_deny);
    config.labels = labels;
    match run_until(config, stop.first()).await {
        Ok(()) => {}
        Err(e) => {
            eprintln!("session-agent: {e}");
            std::process::exit(match e {
                AgentError::Superseded { .. } => EXIT_SUPERSEDED,
                // Refused, and whatever later versions add: not a configuration error.
                _ => EXIT_REFUSED,
            });
        }
    }
}

fn exit(message: &str) -> ! {
    eprintln!("session-agent: {message}");
    std::process::exit(EXIT_CONFIG);
}

/// The signals that stop the agent, their handlers installed.
struct StopSignals {
    hangup: Handler,
    interrupt: Handler,
    quit: Handler,
    terminate: Handler,
}

/// One signal's handler, and whether its signal stops the agent.
struct Handler {
    signal: Signal,
    /// It was not ignored when the agent started.
    stops: bool,
}

impl Handler {
    fn install(kind: SignalKind, ignored: &[i32]) -> std::io::Result<Handler> {
        Ok(Handler { signal: signal(kind)?, stops: !ignored.contains(&kind.as_raw_value()) })
    }

    /// Completes when the signal arrives, if it stops the agent; else receives it and drops it
    /// for ever, since the handler must stay for the sessions' sake.
    async fn stopped(&mut self) {
        while self.signal.recv().await.is_some() {
            if self.stops {
                return;
            }
        }
        // The runtime is going away: this signal stops nothing any more.
        core::future::pending::<()>().await;
    }
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        let ignored = ignored_at_start();
        Ok(StopSignals {
            hangup: Handler::install(SignalKind::hangup(), &ignored)?,
            interrupt: Handler::install(SignalKind::interrupt(), &ignored)?,
            quit: Handler::install(SignalKind::quit(), &ignored)?,
            terminate: Handler::install(SignalKind::terminate(), &ignored)?,
        })
    }

    /// Completes when the first signal that stops the agent arrives.
    async fn first(mut self) {
        let name = tokio::select! {
            () = self.hangup.stopped() => "SIGHUP",
            () = self.interrupt.stopped() => "SIGINT",
            () = self.quit.stopped() => "SIGQUIT",
            () = self.terminate.stopped() => "SIGTERM",
        };
        tracing::info!(signal = name, "asked to stop");
    }
}

/// The signals this process ignores now, from `/proc/self/status` (none where it cannot be
/// read): reading it is the one way to learn a disposition without unsafe code.
fn ignored_at_start() -> Vec<i32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    // Bit n - 1 is signal n.
    (1..=64).filter(|n| mask & (1u64 << (n - 1)) != 0).collect()
}

/// The host's name, as far as it is a valid instance name.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(64).collect();
    if name.is_empty() { "localhost".to_owned() } else { name }
}
