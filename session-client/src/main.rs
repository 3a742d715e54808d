//! `session-client`: a shell, a command or a port forward on an instance, through the relay.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "a std program")]

mod terminal;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use session_client::{ChannelIo, Error, Session, list};
use session_codec::proto::owned::{OwnedEnv, OwnedOpenKind, OwnedPty, owned_str};
use session_codec::proto::{Env, Signal, WindowSize};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(version, about = "Shells, commands and port forwards on instances, through the relay")]
struct Args {
    /// The relay's URL.
    #[arg(long, global = true, default_value = "ws://127.0.0.1:7070", env = "SESSION_RELAY")]
    relay: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// An interactive shell on the instance.
    Connect {
        /// The instance.
        instance: String,
    },
    /// Runs a command on the instance: stdin piped to it, its stdout and stderr kept apart, its
    /// exit code this command's.
    Exec {
        /// The instance.
        instance: String,
        /// Give the command a terminal (its stderr then arrives on stdout).
        #[arg(short = 't', long)]
        tty: bool,
        /// The command line, run by the login shell.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Lists the instances and their status.
    List,
    /// Forwards a local port to a host and port as the instance sees them.
    Forward {
        /// The instance.
        instance: String,
        /// `<local-port>:<host>:<port>`.
        spec: String,
    },
    /// Starts a relay and an agent on loopback and opens a session through them: a shell, or
    /// the command given after `--`.
    Demo {
        /// A command to run instead of an interactive shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Error(e.to_string())),
    };
    let code = runtime.block_on(run(args));
    // Reads of stdin may still be blocked in a thread of the runtime: do not wait for them.
    runtime.shutdown_background();
    match code {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("session-client: {e}");
    ExitCode::from(255)
}

async fn run(args: Args) -> Result<i32, Error> {
    match args.command {
        Command::Connect { instance } => shell(&args.relay, &instance).await,
        Command::Exec { instance, tty, command } => {
            exec(&args.relay, &instance, &command.join(" "), tty).await
        }
        Command::List => {
            let listing = list(&args.relay).await?;
            print_listing(&listing);
            Ok(0)
        }
        Command::Forward { instance, spec } => forward(&args.relay, &instance, &spec).await,
        Command::Demo { command } => demo(&command.join(" ")).await,
    }
}

fn user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "anonymous".to_owned())
}

/// An interactive shell: raw terminal, resizes followed, the remote exit code returned. The
/// terminal is restored on every way out, panics included, by the guard's drop.
async fn shell(relay: &str, instance: &str) -> Result<i32, Error> {
    let session = Session::connect(relay, instance, &user()).await?;
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".to_owned());
    let size = terminal::size().unwrap_or(WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 });
    let pty = OwnedPty { term: owned_str(&term).unwrap_or_default(), size };
    let kind = OwnedOpenKind::Shell { pty, env: OwnedEnv::default() };
    let raw = terminal::RawMode::enable();
    let resizes = terminal::follow_resizes(session.clone());
    let outcome = tokio::select! {
        outcome = session.open(kind, stdio(false)) => outcome.map(|o| o.exit_code()),
        // Killed from outside (the terminal closed, a TERM): the terminal is restored first.
        signal = terminal::ended_by_signal() => Ok(128 + signal),
    };
    resizes.abort();
    drop(raw);
    outcome
}

/// A command: stdin piped to it, stdout and stderr apart, Ctrl-C sent on as an interrupt.
async fn exec(relay: &str, instance: &str, command: &str, tty: bool) -> Result<i32, Error> {
    let session = Session::connect(relay, instance, &user()).await?;
    let command = owned_str(command).map_err(|_| Error("the command is too long".into()))?;
    let pty = tty.then(|| OwnedPty {
        term: owned_str(&std::env::var("TERM").unwrap_or_else(|_| "xterm".to_owned())).unwrap_or_default(),
        size: terminal::size().unwrap_or(WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 }),
    });
    let kind = OwnedOpenKind::Exec { command, pty, env: OwnedEnv::new(&Env::EMPTY).unwrap_or_default() };
    let interrupts = {
        let session = session.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                session.signal(Signal::INT);
            }
        })
    };
    let outcome = session.open(kind, stdio(false)).await;
    interrupts.abort();
    Ok(outcome?.exit_code())
}

fn stdio(close_output: bool) -> ChannelIo {
    ChannelIo {
        input: Box::new(tokio::io::stdin()),
        output: Box::new(tokio::io::stdout()),
        errors: Box::new(tokio::io::stderr()),
        close_output,
    }
}

/// Each connection to the local port becomes a channel to `host:port` at the instance.
async fn forward(relay: &str, instance: &str, spec: &str) -> Result<i32, Error> {
    let (local, host, port) = parse_forward(spec)?;
    let session = Session::connect(relay, instance, &user()).await?;
    let listener = TcpListener::bind(local).await.map_err(|e| Error(format!("{local}: {e}")))?;
    eprintln!("forwarding {local} to {host}:{port} on {instance}");
    session_client::forward(&session, listener, &host, port).await?;
    Ok(0)
}

fn parse_forward(spec: &str) -> Result<(SocketAddr, String, u16), Error> {
    let bad = || Error(format!("{spec}: expected <local-port>:<host>:<port>"));
    let (local, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let local: u16 = local.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?;
    if host.is_empty() || host.len() > 255 {
        return Err(bad());
    }
    Ok((SocketAddr::from(([127, 0, 0, 1], local)), host.to_owned(), port))
}

fn print_listing(listing: &serde_json::Value) {
    let empty = Vec::new();
    let instances = listing["instances"].as_array().unwrap_or(&empty);
    println!("{:<24} {:<13} {:<10} LAST SEEN", "INSTANCE", "STATUS", "VERSION");
    for instance in instances {
        println!(
            "{:<24} {:<13} {:<10} {}",
            instance["name"].as_str().unwrap_or("?"),
            instance["status"].as_str().unwrap_or("?"),
            instance["agent_version"].as_str().unwrap_or("?"),
            instance["last_seen"].as_u64().unwrap_or(0),
        );
    }
}

/// A relay and an agent on loopback, in this process, and a session through them.
async fn demo(command: &str) -> Result<i32, Error> {
    let relay = session_relay::Relay::start(SocketAddr::from(([127, 0, 0, 1], 0)), Default::default())
        .await
        .map_err(|e| Error(format!("cannot start the relay: {e}")))?;
    let url = format!("ws://{}", relay.addr);
    // Development mode: sessions run as whoever runs the demo.
    let user = session_agent::LoginUser::resolve(None, true).map_err(Error)?;
    tokio::spawn(session_agent::run(session_agent::AgentConfig::new(&url, "demo", user)));
    eprintln!("demo: relay on {url}, agent \"demo\" connected to it");
    for _ in 0..100 {
        if relay.registry.status()["instances"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["status"] == "online"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if command.is_empty() { shell(&url, "demo").await } else { exec(&url, "demo", command, false).await }
}
