//! `session-relay`: agents and clients meet here; `session-relay admin` manages who may.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "a std program")]

mod admin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use session_relay::audit::Retention;
use session_relay::recording::{self, Mode, Recordings};
use session_relay::store::{self, StoreError};
use session_relay::{Access, Audit, HandshakeLimits, Limits, Registry, RelayConfig, Store, serve, tls};

/// glibc's per-thread arenas keep the memory of bursts of handshakes scattered over their pages
/// for as long as the relay runs; jemalloc gives most of it back (Cargo.toml says how much).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The relay: agents dial in over WebSocket and keep the connection; clients reach their shells
/// through it.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The store of users, tokens, agent keys, policies, sessions in progress and the audit
    /// log. The relay creates it if absent, as do `admin user add`, `admin policy put` and
    /// `admin activation create`; every other admin command fails, naming it. By default
    /// /var/lib/session-relay/relay.db for root, and for anyone else
    /// $XDG_STATE_HOME/session-relay/relay.db, or ~/.local/state/session-relay/relay.db without
    /// XDG_STATE_HOME: the same store from any directory. A PostgreSQL URL
    /// (postgres://user:password@host/database) puts it in a database that several relays
    /// share; `sqlite:PATH` names a file as plainly as PATH.
    #[arg(long, global = true, default_value_os_t = store::default_path(), env = "SESSION_RELAY_DB")]
    db: PathBuf,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070", env = "SESSION_RELAY_LISTEN")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM); with --tls-key, every connection is TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain WebSocket on a non-loopback address (tokens would cross the network in the
    /// clear: only behind a TLS-terminating proxy).
    #[arg(long)]
    insecure_listen: bool,
    /// The region in the relay's resource names (`srn:session:<region>:...`).
    #[arg(long, default_value = "local")]
    region: String,
    /// Also append one JSON audit record per line to this file (they go to the store either way).
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Days the store keeps audit records.
    #[arg(long, default_value_t = Retention::default().max_age.as_secs() / 86_400)]
    audit_max_age_days: u64,
    /// Audit records the store keeps at most; past it, the oldest go.
    #[arg(long, default_value_t = Retention::default().max_rows)]
    audit_max_rows: u64,
    /// Connections in their handshake at once, in all (at most half the open files allowed).
    #[arg(long, default_value_t = HandshakeLimits::default().total)]
    max_handshakes: usize,
    /// Connections in their handshake at once from one address.
    #[arg(long, default_value_t = HandshakeLimits::default().per_source)]
    max_handshakes_per_source: usize,
    /// Client connections one user may hold to one instance at once; and fleet connections
    /// (`/v1/fleet`, counted apart) one user may hold at once.
    #[arg(long, default_value_t = Limits::default().connections_per_user)]
    max_connections_per_user: usize,
    /// Sessions (shells, commands, port forwards) one user may hold on one instance at once.
    #[arg(long, default_value_t = Limits::default().channels_per_user)]
    max_channels_per_user: usize,
    /// Seconds a disconnected agent's sessions are kept for it to re-attach; then they end, and
    /// their clients are told (spec 12.5).
    #[arg(long, default_value_t = 60)]
    detach_timeout: u64,
    /// An origin (`https://ops.example.com`) whose pages may use the relay's console besides
    /// the relay's own; repeat for several. WebSockets and logins from any other are refused.
    #[arg(long = "console-origin", value_name = "ORIGIN")]
    console_origins: Vec<String>,
    /// Where clients reach this relay (`wss://relay-2.example.com:7070`), which relays sharing
    /// its store tell a client whose agent is here (spec C.2). Where it listens by default.
    #[arg(long, env = "SESSION_RELAY_ADVERTISE")]
    advertise: Option<String>,
    /// Threads that run connections: by default one per core. One keeps a session's frames on
    /// one thread, which costs a keystroke's round trip least where the relay shares a few cores
    /// with other work (BENCHMARKS.md); more take handshakes and traffic of many agents at once.
    #[arg(long, env = "SESSION_RELAY_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(flatten)]
    recording: RecordingArgs,
}

/// Session recording (spec 12.12): shells' and commands' output as asciicast, and an entry for
/// every session, in a directory beside the store.
#[derive(Debug, clap::Args)]
struct RecordingArgs {
    /// Where recordings go [default: `recordings` beside the store].
    #[arg(long, env = "SESSION_RELAY_RECORDING_DIR")]
    recording_dir: Option<PathBuf>,
    /// What the sessions of an account no one set (`admin recording mode`) leave recorded:
    /// `full` (shells' and commands' output, and an entry for every session), `metadata` (the
    /// entries alone) or `off`. Input is recorded only where an account asks for it.
    #[arg(long, default_value = "full", env = "SESSION_RELAY_RECORDING_DEFAULT")]
    recording_default: Mode,
    /// Refuse shells and commands to be recorded in full while recording fails (the directory
    /// cannot be written, the disk is full), rather than run them unrecorded: they are refused
    /// UNAVAILABLE, saying why.
    #[arg(long)]
    recording_required: bool,
    /// Days recordings are kept.
    #[arg(long, default_value_t = 90)]
    recording_max_age_days: u64,
    /// MiB of recordings kept in all; past it, the oldest go.
    #[arg(long, default_value_t = 10 * 1024)]
    recording_max_total_mib: u64,
    /// MiB one recording may take; output past it is counted, not recorded.
    #[arg(long, default_value_t = 256)]
    recording_max_mib: u64,
    /// MiB of output waiting for the disk, at most, across all sessions; past it, output is
    /// dropped from the recordings and counted (sessions never wait for the disk).
    #[arg(long, default_value_t = 16)]
    recording_queue_mib: usize,
    /// KiB of events gathered into one chunk at most (or one second of them), each written and
    /// synced before the next: what a crash of the relay may lose, against how often the disk
    /// syncs.
    #[arg(long, default_value_t = recording::CHUNK_BYTES / 1024)]
    recording_chunk_kib: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manages users, tokens, policies, activation codes, instances, the switch, recording
    /// settings and the sessions in progress; reads the audit log and the recordings.
    #[command(subcommand)]
    Admin(admin::Admin),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        // Files, not the store: no store is opened or made for it.
        Some(Command::Admin(admin::Admin::Tls(tls))) => admin::tls(&tls).map_err(|e| e.to_string()),
        Some(Command::Admin(command)) => Store::at(&args.db, admin::makes_store(&command))
            .map_err(|e| opening(&args.db, &e))
            .and_then(|store| admin::run(&store, command).map_err(|e| e.to_string())),
        None => Store::at(&args.db, true)
            .map_err(|e| opening(&args.db, &e))
            .and_then(|store| serve_until_killed(store, &args.db, args.serve)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Why the store at `path` did not open, naming the path once.
fn opening(path: &Path, e: &StoreError) -> String {
    match e {
        StoreError::NoStore(_) | StoreError::File { .. } => e.to_string(),
        _ => format!("{}: {e}", Store::shown(path)),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("session-relay: {message}");
    ExitCode::FAILURE
}

fn serve_until_killed(store: Store, db: &Path, args: ServeArgs) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let descriptors = raise_open_files();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    tls::check_exposure(args.listen, tls.is_some(), args.insecure_listen)?;
    let region_ok = (1..=64).contains(&args.region.len())
        && args.region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !region_ok {
        // It is a part of every resource name: a ':' or '/' in it would make them ambiguous.
        return Err(format!("--region {:?}: use 1 to 64 of A-Z a-z 0-9 - _", args.region));
    }
    let audit = match &args.audit_log {
        Some(path) => Audit::to_file(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => Audit::log_only(),
    };
    let retention = Retention {
        max_age: Duration::from_secs(args.audit_max_age_days.saturating_mul(86_400)),
        max_rows: args.audit_max_rows,
    };
    let audit = audit.with_store(store.clone(), retention).map_err(|e| e.to_string())?;
    let recordings = start_recording(&store, db, &args.recording)?;
    let access = Access::new(store, &args.region, audit).with_recordings(recordings);
    let config = RelayConfig {
        detach_timeout: Duration::from_secs(args.detach_timeout),
        tls,
        limits: Limits {
            connections_per_user: args.max_connections_per_user,
            channels_per_user: args.max_channels_per_user,
        },
        handshakes: HandshakeLimits {
            total: args.max_handshakes,
            per_source: args.max_handshakes_per_source,
        }
        .within(descriptors),
        console_origins: args.console_origins,
        advertise: args.advertise,
        ..RelayConfig::new(access)
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.into());
    }
    let runtime = runtime.enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(args.listen).await.map_err(|e| format!("{}: {e}", args.listen))?;
        let scheme = if config.tls.is_some() { "wss" } else { "ws" };
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, scheme, "relay listening");
        serve(listener, Registry::default(), config).await;
        Ok(())
    })
}

/// The recordings' writer, as the options say; the directory defaults to `recordings` beside
/// the store.
fn start_recording(store: &Store, db: &Path, args: &RecordingArgs) -> Result<Recordings, String> {
    let dir = match &args.recording_dir {
        Some(dir) => dir.clone(),
        // Beside an SQLite file; with PostgreSQL, where the file would be by default.
        None => match Store::file(db) {
            Some(file) => file.parent().unwrap_or_else(|| Path::new(".")).join("recordings"),
            None => store::default_path().parent().unwrap_or_else(|| Path::new(".")).join("recordings"),
        },
    };
    let mut config = recording::Config::new(dir);
    config.required = args.recording_required;
    config.default = recording::Settings { mode: args.recording_default, input: false };
    config.max_age = Duration::from_secs(args.recording_max_age_days.saturating_mul(86_400));
    config.max_total = args.recording_max_total_mib.saturating_mul(1 << 20);
    config.max_recording = args.recording_max_mib.saturating_mul(1 << 20);
    config.queue_bytes = args.recording_queue_mib.saturating_mul(1 << 20);
    config.chunk_bytes = args.recording_chunk_kib.saturating_mul(1024);
    tracing::info!(dir = %config.dir.display(), default = %args.recording_default, required = config.required, "session recording");
    Recordings::start(store.clone(), config).map_err(|e| format!("the recording writer: {e}"))
}

/// Raises the soft limit of open files to the hard one, so that every connection the operator
/// allowed can be taken; returns the limit now in force.
fn raise_open_files() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "the limit of open files could not be raised");
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    tracing::info!(open_files = now, "limit of open files");
    now
}
