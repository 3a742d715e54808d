//! `session-client run`: one command on many instances, over one fleet connection to the relay
//! (spec 11.4) whose channels each name their instance, each checked by the relay's policies as
//! a connection to it would be.
//!
//! - [`targets`]: which instances, from `--target` names and globs and `--label`s.
//! - [`schedule`]: how many at once, when to stop starting new ones.
//! - [`output`]: whose output is whose: prefixed lines, JSON lines, or files.
//! - [`status`]: how each target ended, and the exit code of the whole run.

mod output;
mod schedule;
mod status;
mod targets;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use session_client::{ChannelIo, Connection, Relay, input_from};
use session_proto::owned::{OwnedEnv, OwnedOpenKind, owned_str};
use tokio::sync::{oneshot, watch};

pub(crate) use output::Mode;
pub(crate) use schedule::{DEFAULT_CONCURRENCY, Limit, concurrency as parse_concurrency};
pub(crate) use targets::{Selection, label as parse_label, target as parse_target};

use output::Sink;
use schedule::Plan;
use status::{EXIT_NO_RELAY, EXIT_USAGE, Failure, Status};

/// What `run` was asked.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) selection: Selection,
    pub(crate) concurrency: Limit,
    pub(crate) max_errors: Option<Limit>,
    /// Per target, from its Open.
    pub(crate) timeout: Option<Duration>,
    pub(crate) mode: Mode,
    /// Sent as each target's stdin; the command is then `sh -s` unless one is given.
    pub(crate) script: Option<PathBuf>,
    /// The command line, run by each target's login shell.
    pub(crate) command: Vec<String>,
}

/// What runs a script given with `--script` and no command: the shell, reading it from stdin.
const SCRIPT_SHELL: &str = "sh -s";

/// Runs the command on every target and returns the exit code (`--help` says what each means).
pub(crate) async fn run(relay: &Relay, options: Options) -> i32 {
    // Before anything is dialed: a Ctrl-C from now on cancels the run instead of killing the
    // program with the targets' ends unreported.
    let mut interrupts = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(interrupts) => interrupts,
        Err(e) => return usage(&format!("cannot handle Ctrl-C: {e}")),
    };
    let (command, input) = match (&options.script, options.command.is_empty()) {
        (None, true) => return usage("no command: give one after --, or a --script"),
        (None, false) => (options.command.join(" "), Bytes::new()),
        (Some(script), _) => match std::fs::read(script) {
            Ok(bytes) if options.command.is_empty() => (SCRIPT_SHELL.to_owned(), Bytes::from(bytes)),
            Ok(bytes) => (options.command.join(" "), Bytes::from(bytes)),
            Err(e) => return usage(&format!("--script {}: {e}", script.display())),
        },
    };
    let Ok(command) = owned_str(&command) else { return usage("the command is too long for an Open") };
    let kind = OwnedOpenKind::Exec { command, pty: None, env: OwnedEnv::default() };
    if let Mode::Dir(dir) = &options.mode {
        if let Err(e) = output::prepare(dir) {
            return usage(&format!("--output-dir {}: {e}", dir.display()));
        }
    }

    // The listing and the fleet connection are asked for together: the first result waits for
    // one round of handshakes, not two.
    let listing =
        async { if options.selection.needs_listing() { relay.list().await.map(Some) } else { Ok(None) } };
    let (listing, connected) = tokio::join!(listing, Connection::fleet(relay));
    let (listing, (connection, fleet)) = match (listing, connected) {
        (Err(e), _) | (_, Err(e)) => return no_relay(&e),
        (Ok(listing), Ok(connected)) => (listing, connected),
    };
    let targets = options.selection.select(listing.as_ref());
    if targets.is_empty() {
        connection.close().await;
        return usage("no target: no instance you may see matches the --target and --label given");
    }

    let sink =
        Sink::new(Box::new(tokio::io::stdout()), Box::new(tokio::io::stderr()), options.mode == Mode::Json);
    let plan = Plan {
        at_once: options.concurrency.at_once(targets.len()),
        max_errors: options.max_errors.map(|limit| limit.errors(targets.len())),
    };
    sink.started(&fleet, targets.len(), plan.at_once).await;
    let target = Target {
        connection: &connection,
        kind,
        input,
        mode: &options.mode,
        sink: &sink,
        timeout: options.timeout,
    };
    let interrupted = async move {
        interrupts.recv().await;
        // The first Ctrl-C waits for what the targets printed to be written, which a reader of
        // stdout that stopped reading (a pager) holds up: a second one ends the run at once.
        tokio::spawn(async move {
            interrupts.recv().await;
            eprintln!("session-client: interrupted again: stopping without the rest of the output");
            std::process::exit(130);
        });
    };
    let lost = async {
        let why = connection.closed().await;
        sink.note(&format!("session-client: {why}\n")).await;
    };
    let tally = schedule::schedule(
        &targets,
        plan,
        |name, cancelled| target.run(name, cancelled),
        interrupted,
        lost,
        &sink,
    )
    .await;
    sink.summary(&fleet, &tally).await;
    connection.close().await;
    tally.exit_code()
}

/// What every target's run shares.
struct Target<'a> {
    connection: &'a Connection,
    kind: OwnedOpenKind,
    input: Bytes,
    mode: &'a Mode,
    sink: &'a Sink,
    timeout: Option<Duration>,
}

impl Target<'_> {
    /// Runs the command on `name` to its end, its timeout or `cancelled`, and returns how it
    /// ended once its output is all written, with the relay's id for its session.
    async fn run(&self, name: &str, mut cancelled: watch::Receiver<bool>) -> (Status, Option<String>) {
        // The timeout counts from here, the Open, as --help says.
        // One past what the clock can count (`--timeout 1e19`) is no deadline at all.
        let deadline = self.timeout.and_then(|timeout| tokio::time::Instant::now().checked_add(timeout));
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => core::future::pending().await,
            }
        };
        let (output, errors, drains) = match output::ends(self.mode, self.sink, name).await {
            Ok(ends) => ends,
            Err(e) => {
                return (Status::Failed(Failure::Ended(format!("its output cannot be written: {e}"))), None);
            }
        };
        let io = ChannelIo { input: input_from(self.input.clone()), output, errors, close_output: false };
        let (told, mut session) = oneshot::channel();
        let open = self.connection.open_on_with_session(name, self.kind.clone(), io, told);
        // Leaving `open` unfinished drops it, which closes the channel: the agent then ends
        // the process (spec 12.4).
        let status = tokio::select! {
            result = open => Status::of(result),
            () = expired => Status::TimedOut,
            _ = cancelled.wait_for(|&cancelled| cancelled) => Status::Cancelled,
        };
        drains.finish().await;
        // Told right after the Accept, so by now if ever; not waited for.
        let session = session.try_recv().ok().flatten();
        (status, session)
    }
}

/// A usage error: said on stderr, exit 2.
fn usage(message: &str) -> i32 {
    eprintln!("session-client: {message}");
    EXIT_USAGE
}

/// The relay not reached (or its listing not read): said on stderr, exit 255.
fn no_relay(error: &session_client::Error) -> i32 {
    eprintln!("session-client: {error}");
    EXIT_NO_RELAY
}
