//! `session-client`: a shell, a command or a port forward on an instance, through the relay.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "a std program")]

#[cfg(feature = "demo")]
mod demo;
mod escape;
mod files;
mod fleet;
mod output;
mod profile;
mod recordings;
mod terminal;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use std::sync::Arc;

use session_client::{ChannelIo, Connection, DEFAULT_REATTACH_FOR, Error, Failures, Outcome, Relay};
use session_link::dial::Trust;
use session_proto::owned::{OwnedEnv, OwnedOpenKind, OwnedPty, owned_str};
use session_proto::{Env, Signal, WindowSize};
use tokio::net::TcpListener;

/// How `session-client` is used and how it ends, in its `--help`.
const AFTER_HELP: &str = "\
Examples:
  export SESSION_RELAY=wss://relay.example.com SESSION_TOKEN=srt_...
  session-client list                          instances you may see, last seen in words
  session-client -o json sessions              your sessions, times in RFC 3339
  session-client connect web-1                 a shell; ~. at a line's start drops it
  session-client exec web-1 -- 'df -h /'       a command, its exit code this one's
  session-client forward web-1 8080:127.0.0.1:80
  session-client cp web-1:/etc/hosts ./        a file from the instance, checked by SHA-256
  session-client cp -r ./site web-1:/srv/      a directory to it; --resume goes on from a cut
  session-client ls -l web-1:/var/log          a remote directory; web-1: is the home directory
  session-client run -t 'web-*' -l env=prod -- uptime   a command on many instances at once
  ssh -o ProxyCommand='session-client proxy %h 22' user@web-1
  session-client --profile prod list           relay, CA and token from a profile

Profiles: $SESSION_CONFIG, else ~/.config/session/config.toml (XDG_CONFIG_HOME is honoured):
  default = \"prod\"
  [profiles.prod]
  relay = \"wss://relay.example.com\"
  ca_file = \"/etc/session/ca.pem\"
  token_command = \"pass show session/prod\"   # or token_file = \"~/.config/session/prod.token\" (mode 600)
A flag or variable given wins over the profile.

Exit status:
  connect, exec   the remote process's exit code, or 128 + the signal that killed it
  141             exec's standard output was closed before the session ended (as a process
                  killed by SIGPIPE: `exec ... | head`); the session is closed
  128 + N         connect was ended by signal N (HUP, TERM, QUIT) after restoring the terminal
  255             no session, or one that ended without an exit status: refused, the relay
                  unreachable or gone (and not back within --reattach-for), the session
                  terminated, its instance lost; stderr says why
  0               list, sessions, terminate, switch: done; forward: never (it runs until the
                  connection to the relay is lost for good, then exits 255 saying why)
  recordings, play  0 done; play: 1 for a recording of metadata only (no output to play)
  proxy           0 once both directions ended; 141 as exec; 128 + N ended by signal N (HUP,
                  INT, TERM), the channel closed; 255 as above, stderr saying what refused
  run             0 all succeeded; 1 some failed or timed out; 2 usage, or no target; 3 some
                  unreachable, refused or not started; 130 Ctrl-C; 255 the relay not reached or
                  lost (`run --help` says more)
  cp, ls          0 done; 1 a copy failed (the instance's error, named on stderr: no space, is a
                  directory, ...); 2 usage; 3 not found; 4 permission denied; 5 the target
                  exists (nothing overwritten: --force); 6 verification failed (size or SHA-256
                  not the file's, or it changed meanwhile: the copy was discarded); 130
                  interrupted (partial files kept for --resume); 255 as above (no session, a
                  policy's refusal, an agent that does not handle files). Of several failures,
                  the first one's code";

/// `cp`'s help after its options.
const CP_AFTER_HELP: &str = "\
Paths:
  instance:path is on the instance, anything else here (./a:b is local). A relative remote path
  is in the login user's home directory, and instance: is that directory. Names may hold spaces
  and bytes that are not UTF-8.

Examples:
  session-client cp web-1:/etc/hosts ./              to ./hosts
  session-client cp ./app.tar web-1:/srv/            to /srv/app.tar
  session-client cp -r ./site web-1:                 a directory, into the home directory
  session-client cp --resume web-1:/data/big.img .   go on from where a cut copy stopped

How a copy is made:
  Each file's SHA-256 is checked against the other side's before it counts as copied. A download
  is written to .<name>.session-partial beside its target, fsynced and renamed into place; an
  upload likewise at the instance. A cut copy leaves that partial file: --resume hashes what is
  there and the other side goes on from there only if it holds the same bytes (else from 0).
  An existing target is never replaced without --force. With -r, directories are made first,
  then files go, four at a time, over one connection; a symbolic link is copied as the file it
  names, and one that names a directory is skipped. A progress bar is drawn on stderr when it
  is a terminal, never otherwise.

Exit status:
  0 done; 1 a copy failed (the instance's error, named); 2 usage; 3 not found; 4 permission
  denied; 5 the target exists (--force replaces it); 6 verification failed (the copy was
  discarded); 130 interrupted (partial files kept for --resume); 255 no session: refused (by a
  policy, or an agent that does not handle files), the relay unreachable or the connection lost.
  Of several failures, the first one's code.";

/// `ls`'s help after its options.
const LS_AFTER_HELP: &str = "\
Examples:
  session-client ls web-1:                   the home directory
  session-client ls -l web-1:/var/log        mode, size, time (RFC 3339, UTC), name, -> target
  session-client -o json ls web-1:/srv       {\"path\": ..., \"entries\": [...]}, times in RFC 3339

Exit status: 0 listed; 2 usage; 3 not found; 4 permission denied; 255 no session (refused, by a
policy too, or unreachable).";

/// `run`'s help after its options.
const RUN_AFTER_HELP: &str = "\
Examples:
  session-client run -t 'web-*' -- uptime             every instance named web-...
  session-client run -l env=prod -l role=web --max-concurrency 10% --max-errors 2 -- systemctl restart app
  session-client run -t web-1 -t web-2 --script ./fix.sh        the script is each one's stdin (sh -s)
  session-client run -t '*' --json -- df -h / | jq .           JSON lines
  session-client run -t 'db-?' --output-dir out -- pg_dump app  out/db-1.stdout, out/db-1.stderr, ...

Targets:
  Instances you may see (as `list` shows them) whose name matches a --target and that have every
  --label; a --target that is a plain name is run even when not listed (the relay then answers
  for it), unless a --label is given; -t '*' is every instance. In order of name. One
  connection to the relay carries every target (256 at once at most), each checked by its
  policies as a connection to that instance would be.

Output:
  Each line of a target's stdout and stderr as `<target>: <line>` on this stdout and stderr, as
  it comes; a partial line waits for its newline (64 KiB at most) or its target's end. A slow
  reader of this output slows the targets down rather than filling memory. On stderr,
  a first line names the fleet command (the id the relay's audit records carry) and a line per
  target tells how it ended, as it ends:
    [web-1] succeeded
    [web-2] failed (exit code 2)          or (signal KILL)
    [web-3] timed out                     --timeout passed: the channel closed, the process ended
    [web-4] unreachable (<why>)           not connected, or no such instance
    [web-5] refused (<the relay's words>) a policy does not allow it
    [web-6] not started                   --max-errors passed, or the relay lost, before its turn
    [web-7] cancelled                     Ctrl-C: what runs is ended, what waits never starts
  then a summary. --json writes JSON lines on stdout instead of output lines: {\"target\",
  \"stream\", \"data\"} for output, {\"target\", \"status\", ...} per target, and a last
  {\"summary\", \"fleet\", \"exit_code\"}; stderr keeps its lines.

Exit status (the first that holds):
  130  Ctrl-C
  255  the relay was not reached, or the connection to it was lost for good
  3    some target was unreachable, refused, or not started
  1    every target was reached, and some failed or timed out
  0    every target succeeded
  2    usage: a bad option, no command, no target selected";

#[derive(Debug, Parser)]
#[command(version, about = "Shells, commands and port forwards on instances, through the relay", after_help = AFTER_HELP)]
struct Args {
    /// The relay's URL: `ws://` on loopback, `wss://` elsewhere [default: the profile's, else
    /// ws://127.0.0.1:7070].
    #[arg(long, global = true, env = "SESSION_RELAY")]
    relay: Option<String>,
    /// The profile to take the relay, CA file and token from (default: the file's `default`).
    #[arg(long, global = true, env = "SESSION_PROFILE")]
    profile: Option<String>,
    /// How listings print: a table with times in words, or JSON with RFC 3339 times.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = output::Format::Table)]
    output: output::Format,
    /// Say more on stderr: -v what happens, -vv how (RUST_LOG, if set, decides instead).
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Allow `ws://` to a relay off loopback: your token would cross the network in the clear
    /// (only behind a TLS-terminating proxy you trust).
    #[arg(long, global = true)]
    insecure: bool,
    /// Trust only the certificate authorities in this PEM file for `wss://` (default: the
    /// system's roots).
    #[arg(long, global = true, env = "SESSION_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Your bearer token (`session-relay admin token create <user>`); best given through the
    /// environment, where other users' `ps` cannot see it.
    #[arg(long, global = true, env = "SESSION_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds to keep dialing the relay when the connection is lost, re-attaching the session
    /// with no output lost; 0 ends the session with the connection.
    #[arg(long, global = true, value_name = "SECS", default_value_t = DEFAULT_REATTACH_FOR.as_secs())]
    reattach_for: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// An interactive shell on the instance, on a terminal; `~.` at the start of a line drops
    /// the session, `~~` types one `~`.
    Connect {
        /// The instance.
        instance: String,
        /// No terminal: the login shell reads commands from stdin (the default when stdin is
        /// not a terminal).
        #[arg(short = 'T', conflicts_with = "tty")]
        no_tty: bool,
        /// A terminal even when stdin is not one.
        #[arg(short = 't')]
        tty: bool,
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
    /// Runs a command on many instances at once (by name, glob or label), a status line for
    /// each as it ends: `run -t 'web-*' -l env=prod -- uptime`.
    #[command(
        after_help = RUN_AFTER_HELP,
        group = clap::ArgGroup::new("selection").args(["targets", "labels"]).required(true).multiple(true),
    )]
    Run {
        /// An instance, or a glob of names: `*` any run of characters, `?` any one. Repeatable.
        #[arg(short = 't', long = "target", value_name = "NAME_OR_GLOB", value_parser = fleet::parse_target)]
        targets: Vec<String>,
        /// Only instances with this label, `key=value` as `list` shows them. Repeatable: all
        /// must hold.
        #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = fleet::parse_label)]
        labels: Vec<(String, String)>,
        /// Targets at once: a number, or a percentage of the targets (rounded up); at most 256
        /// [default: 32].
        #[arg(long, value_name = "N|P%", value_parser = fleet::parse_concurrency)]
        max_concurrency: Option<fleet::Limit>,
        /// Once more targets than this did not succeed (a number, or a percentage of the
        /// targets, rounded down), no new one starts [default: no limit].
        #[arg(long, value_name = "N|P%")]
        max_errors: Option<fleet::Limit>,
        /// Seconds each target may take, from its start; then its channel is closed and the
        /// agent ends the process.
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
        timeout: Option<Duration>,
        /// Each target's output in DIR/<target>.stdout and DIR/<target>.stderr.
        #[arg(long, value_name = "DIR", conflicts_with = "json")]
        output_dir: Option<PathBuf>,
        /// JSON lines on stdout: output, statuses and the summary.
        #[arg(long)]
        json: bool,
        /// A file sent as each target's stdin, run by `sh -s` unless a command is given.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// The command line, run by each target's login shell; its stdin is empty unless
        /// --script.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Lists the instances you may see, with their status and labels.
    List,
    /// Lists your sessions in progress.
    Sessions,
    /// Ends one of your sessions.
    Terminate {
        /// The session's id, as `sessions` shows it.
        id: String,
    },
    /// Turns session management on or off for an account.
    Switch {
        /// The account.
        account: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Forwards a local port to a host and port as the instance sees them.
    Forward {
        /// The instance.
        instance: String,
        /// `[<bind-address>:]<local-port>:<host>:<port>`, as ssh's -L, one or more: the bind
        /// address is 127.0.0.1 unless given (`*` for every address, `[::1]` for IPv6), and
        /// local port 0 takes a free one, printed.
        #[arg(required = true)]
        specs: Vec<String>,
    },
    /// Joins stdin and stdout to a TCP connection the instance makes to `[host:]port`, for
    /// ssh's ProxyCommand: `ssh -o ProxyCommand='session-client proxy %h %p' user@web-1`.
    Proxy {
        /// The instance.
        instance: String,
        /// `[host:]port` as the instance sees them; the host is 127.0.0.1 unless given.
        target: String,
    },
    /// Copies files between here and an instance, as scp does: `cp web-1:/etc/hosts ./`,
    /// `cp ./app.tar web-1:/srv/`; checked by SHA-256, resumable.
    #[command(after_help = CP_AFTER_HELP)]
    Cp {
        /// Copy directories and everything in them.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Go on from the partial file a cut copy left, if the other side holds the same bytes.
        #[arg(long)]
        resume: bool,
        /// Replace files that exist at the target.
        #[arg(short = 'f', long)]
        force: bool,
        /// The sources, then the target: `instance:path` on an instance, anything else here.
        #[arg(required = true, num_args = 2.., value_name = "PATH", value_parser = clap::value_parser!(OsString))]
        paths: Vec<OsString>,
    },
    /// Lists a directory on an instance: `ls -l web-1:/var/log`.
    #[command(after_help = LS_AFTER_HELP)]
    Ls {
        /// Mode, size, modification time and a link's target too.
        #[arg(short = 'l')]
        long: bool,
        /// Names starting with `.` too.
        #[arg(short = 'a', long)]
        all: bool,
        /// `instance:path`; `instance:` is the login user's home directory.
        #[arg(value_name = "INSTANCE:PATH", value_parser = clap::value_parser!(OsString))]
        target: OsString,
    },
    /// Lists the session recordings you may read, newest first (`session:ReadRecording`).
    Recordings {
        /// How many, at most.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Plays a session's recording on this terminal, as it was shown, as the relay sends it.
    Play {
        /// The session's id, as `recordings` lists it.
        id: String,
        /// How many times faster than real time.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// The longest pause, in seconds, however long the session was idle.
        #[arg(long, value_name = "SECS")]
        max_wait: Option<f64>,
        /// Start at the chunk holding this byte of the recording.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep playing a session in progress as it goes on, until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Prints the completion script of `shell`: `session-client completions bash >
    /// ~/.local/share/bash-completion/completions/session-client`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Starts a relay and an agent on loopback and opens a session through them: a shell, or
    /// the command given after `--`.
    #[cfg(feature = "demo")]
    Demo {
        /// A command to run instead of an interactive shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    // The demo's agent runs in this process, and starts its file workers from this executable
    // (spec 12.11): told apart before clap sees the hidden argument.
    #[cfg(feature = "demo")]
    if std::env::args_os().nth(1).is_some_and(|arg| arg == session_agent::files::WORKER_ARG) {
        return ExitCode::from(u8::try_from(session_agent::files::run_worker()).unwrap_or(1));
    }
    let args = Args::parse();
    logging(args.verbose);
    // One thread, for one connection: see session-agent's `main`.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&Error::Io { what: "starting the runtime".into(), error }),
    };
    let code = runtime.block_on(run(args));
    // Reads of stdin may still be blocked in a thread of the runtime: do not wait for them.
    runtime.shutdown_background();
    match code {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => fail(&e),
    }
}

/// Logs on stderr: warnings by default (a lost connection being re-attached, say), more with
/// `-v`; RUST_LOG decides when set. Colours only for a terminal.
fn logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        // tungstenite traces the whole handshake request, the token included: never that.
        Ok(filter) => match "tungstenite::handshake::client=debug".parse() {
            Ok(cap) => filter.add_directive(cap),
            Err(_) => filter,
        },
        Err(_) => tracing_subscriber::EnvFilter::new(level),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("session-client: {e}");
    ExitCode::from(255)
}

async fn run(args: Args) -> Result<i32, Error> {
    if let Command::Completions { shell } = args.command {
        clap_complete::generate(
            shell,
            &mut <Args as clap::CommandFactory>::command(),
            "session-client",
            &mut std::io::stdout(),
        );
        return Ok(0);
    }
    #[cfg(feature = "demo")]
    let needs_token = !matches!(args.command, Command::Demo { .. });
    #[cfg(not(feature = "demo"))]
    let needs_token = true;
    let profile = match profile::config_path() {
        Some(path) => {
            profile::load(&path, args.profile.as_deref()).map_err(|e| Error::Invalid(e.to_string()))?
        }
        None => profile::Profile::default(),
    };
    let url = args.relay.or(profile.relay.clone()).unwrap_or_else(|| "ws://127.0.0.1:7070".to_owned());
    // A token command is run only when a token is needed and none was given.
    let token = match args.token {
        Some(token) => token,
        None if needs_token => {
            profile.token().map_err(|e| Error::Invalid(e.to_string()))?.unwrap_or_default()
        }
        None => String::new(),
    };
    let mut relay = Relay::new(&url, &token);
    relay.reattach_for = Duration::from_secs(args.reattach_for);
    if let Some(path) = args.ca_file.or(profile.ca_file()) {
        relay.trust = Trust::ca_file(&path).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    if needs_token && !args.insecure {
        session_link::dial::refuse_cleartext(&relay.url).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    if needs_token && relay.token.is_empty() {
        return Err(Error::Invalid(
            "no token: set SESSION_TOKEN (or pass --token, or name a profile that has one) to one an admin made".into(),
        ));
    }
    match args.command {
        Command::Connect { instance, no_tty, tty } => {
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
            if no_tty || (!terminal && !tty) {
                if !no_tty {
                    eprintln!(
                        "session-client: stdin is not a terminal: the shell runs without one (-t for one)"
                    );
                }
                return exec(&relay, &instance, LOGIN_SHELL, false).await;
            }
            shell(&relay, &instance).await
        }
        Command::Exec { instance, tty, command } => exec(&relay, &instance, &command.join(" "), tty).await,
        Command::Run {
            targets,
            labels,
            max_concurrency,
            max_errors,
            timeout,
            output_dir,
            json,
            script,
            command,
        } => {
            let mode = match output_dir {
                Some(dir) => fleet::Mode::Dir(dir),
                None if json => fleet::Mode::Json,
                None => fleet::Mode::Prefixed,
            };
            let options = fleet::Options {
                selection: fleet::Selection { names: targets, labels },
                concurrency: max_concurrency.unwrap_or(fleet::Limit::Count(fleet::DEFAULT_CONCURRENCY)),
                max_errors,
                timeout,
                mode,
                script,
                command,
            };
            Ok(fleet::run(&relay, options).await)
        }
        Command::List => {
            print!("{}", output::instances(&relay.list().await?, args.output, SystemTime::now()));
            Ok(0)
        }
        Command::Sessions => {
            print!("{}", output::sessions(&relay.sessions().await?, args.output, SystemTime::now()));
            Ok(0)
        }
        Command::Terminate { id } => {
            relay.terminate(&id).await?;
            eprintln!("session {id} terminated");
            Ok(0)
        }
        Command::Switch { account, state } => {
            relay.switch(&account, state == "on").await?;
            eprintln!("session management for account {account} is {state}");
            Ok(0)
        }
        Command::Forward { instance, specs } => forward(&relay, &instance, &specs).await,
        Command::Cp { recursive, resume, force, paths } => {
            Ok(files::cp(&relay, &paths, files::CpOptions { recursive, resume, force }).await)
        }
        Command::Ls { long, all, target } => {
            Ok(files::ls(&relay, &target, files::LsOptions { long, all, format: args.output }).await)
        }
        // Its error names the target and what refused: to stderr, as `fail` does, and 255.
        Command::Proxy { instance, target } => {
            match session_client::proxy(&relay, &instance, &target).await {
                Ok(proxied) => Ok(proxied.exit_code()),
                Err(e) => {
                    eprintln!("session-client: {e}");
                    Ok(255)
                }
            }
        }
        #[cfg(feature = "demo")]
        Command::Demo { command } => demo::run(&command.join(" ")).await,
        Command::Completions { .. } => Ok(0),
        Command::Recordings { limit } => recordings::list(&relay, args.output, limit).await,
        Command::Play { id, speed, max_wait, from, follow } => {
            let max_wait = max_wait.filter(|w| w.is_finite() && *w >= 0.0).map(Duration::from_secs_f64);
            recordings::play(&relay, &id, recordings::Pace { speed, max_wait }, from, follow).await
        }
    }
}

/// What `connect -T` runs: the login shell, reading commands from stdin.
const LOGIN_SHELL: &str = "exec \"${SHELL:-/bin/sh}\" -l";

/// An interactive shell: raw terminal, resizes followed, the remote exit code returned. The
/// terminal is restored on every way out, panics included, by the guard's drop.
pub(crate) async fn shell(relay: &Relay, instance: &str) -> Result<i32, Error> {
    let connection = Connection::connect(relay, instance).await?;
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".to_owned());
    let size = terminal::size().unwrap_or(WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 });
    let pty = OwnedPty { term: owned_str(&term).unwrap_or_default(), size };
    let kind = OwnedOpenKind::Shell { pty, env: OwnedEnv::default() };
    // The banner waits for the Accept, so that it names the session the relay records (spec
    // 5.20); on stderr only, never mixed into the remote's output, and only for a person at a
    // terminal.
    let (told, session) = tokio::sync::oneshot::channel::<Option<String>>();
    let banner = std::io::IsTerminal::is_terminal(&std::io::stdin()).then(|| {
        let instance = instance.to_owned();
        tokio::spawn(async move {
            if let Ok(id) = session.await {
                // Raw mode by then: the line ends with its own carriage return.
                eprint!("{}\r\n", banner_line(id.as_deref(), &instance));
            }
        })
    });
    let input = escape::Escapes::new(tokio::io::stdin());
    let dropped = input.dropped();
    let io = ChannelIo { input: Box::new(input), ..stdio(false) };
    let raw = terminal::RawMode::enable();
    let resizes = terminal::follow_resizes(connection.clone());
    let outcome = tokio::select! {
        outcome = connection.open_with_session(kind, io, told) => outcome,
        // Killed from outside (the terminal closed, a TERM): the terminal is restored first.
        signal = terminal::ended_by_signal() => return Ok(128 + signal),
        () = dropped.wait() => {
            drop(raw);
            eprintln!("\r\nsession-client: the session was dropped (~.)");
            return Ok(255);
        }
    };
    resizes.abort();
    if let Some(banner) = banner {
        banner.abort();
    }
    drop(raw);
    connection.close().await;
    let ended_by_exit = outcome.as_ref().is_ok_and(|o| o.exit.is_some());
    if !ended_by_exit {
        // The remote's last line (a prompt, say) has no newline: what follows starts its own.
        eprintln!();
    }
    match outcome? {
        Outcome { exit: None, reason, .. } => Err(Error::Ended { reason }),
        outcome => Ok(outcome.exit_code()),
    }
}

/// What `connect` says once its shell is accepted: the session's id when the relay gave one,
/// and how to leave.
fn banner_line(id: Option<&str>, instance: &str) -> String {
    match id {
        Some(id) => format!("session {id} on {instance}; ~. to leave"),
        None => format!("session on {instance}; ~. to leave"),
    }
}

/// A command: stdin piped to it, stdout and stderr apart, Ctrl-C sent on as an interrupt.
pub(crate) async fn exec(relay: &Relay, instance: &str, command: &str, tty: bool) -> Result<i32, Error> {
    let connection = Connection::connect(relay, instance).await?;
    let command = owned_str(command).map_err(|_| Error::Invalid("the command is too long".into()))?;
    let pty = tty.then(|| OwnedPty {
        term: owned_str(&std::env::var("TERM").unwrap_or_else(|_| "xterm".to_owned())).unwrap_or_default(),
        size: terminal::size().unwrap_or(WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 }),
    });
    let kind = OwnedOpenKind::Exec { command, pty, env: OwnedEnv::new(&Env::EMPTY).unwrap_or_default() };
    let interrupts = {
        let connection = connection.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                connection.signal(Signal::INT);
            }
        })
    };
    let outcome = connection.open(kind, stdio(false)).await;
    interrupts.abort();
    connection.close().await;
    match outcome? {
        Outcome { exit: None, output_closed: false, reason } => Err(Error::Ended { reason }),
        // Quietly, as a process killed by SIGPIPE in a pipeline.
        outcome => Ok(outcome.exit_code()),
    }
}

fn stdio(close_output: bool) -> ChannelIo {
    ChannelIo {
        input: Box::new(tokio::io::stdin()),
        output: Box::new(tokio::io::stdout()),
        errors: Box::new(tokio::io::stderr()),
        close_output,
    }
}

/// Each connection to a local port becomes a channel to its `host:port` at the instance, all
/// on one connection to the relay; they run until it is lost for good.
async fn forward(relay: &Relay, instance: &str, specs: &[String]) -> Result<i32, Error> {
    let specs = specs.iter().map(|spec| parse_forward(spec)).collect::<Result<Vec<_>, _>>()?;
    let connection = Connection::connect(relay, instance).await?;
    let failures: Failures =
        Arc::new(|peer, e: &Error| eprintln!("session-client: forward from {peer}: {e}"));
    let mut running = tokio::task::JoinSet::new();
    for (local, host, port) in specs {
        let binding = |error| Error::Io { what: format!("binding {local}"), error };
        let listener = TcpListener::bind(local).await.map_err(binding)?;
        let local = listener.local_addr().map_err(binding)?;
        eprintln!("forwarding {local} to {host}:{port} on {instance}");
        let (connection, failures) = (connection.clone(), Arc::clone(&failures));
        running.spawn(
            async move { session_client::forward(&connection, listener, &host, port, failures).await },
        );
    }
    // Each ends only with the connection, saying why.
    match running.join_next().await {
        Some(Ok(lost)) => Err(lost),
        _ => Err(Error::Closed),
    }
}

/// A positive number of seconds, fractions allowed: `--timeout 90`, `--timeout 0.5`.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 => Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string()),
        _ => Err(format!("{text:?}: expected a number of seconds above 0")),
    }
}

/// `[<bind-address>:]<local-port>:<host>:<port>`; addresses with colons go in brackets.
fn parse_forward(spec: &str) -> Result<(SocketAddr, String, u16), Error> {
    let bad = || Error::Invalid(format!("{spec}: expected [<bind-address>:]<local-port>:<host>:<port>"));
    let mut parts = Vec::new();
    let mut rest = spec;
    while !rest.is_empty() {
        let (part, after) = match rest.strip_prefix('[') {
            Some(bracketed) => {
                let (inside, after) = bracketed.split_once(']').ok_or_else(bad)?;
                (inside, after.strip_prefix(':').or(after.is_empty().then_some("")).ok_or_else(bad)?)
            }
            None => rest.split_once(':').unwrap_or((rest, "")),
        };
        parts.push(part);
        rest = after;
    }
    let (bind, local, host, port) = match parts.as_slice() {
        [local, host, port] => ("127.0.0.1", *local, *host, *port),
        [bind, local, host, port] => (*bind, *local, *host, *port),
        _ => return Err(bad()),
    };
    let bind: std::net::IpAddr = match bind {
        "*" => std::net::IpAddr::from([0, 0, 0, 0]),
        "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
        address => address.parse().map_err(|_| bad())?,
    };
    let local: u16 = local.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?;
    if host.is_empty() || host.len() > 255 {
        return Err(bad());
    }
    Ok((SocketAddr::new(bind, local), host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_the_session_when_the_relay_does() {
        assert_eq!(banner_line(Some("alice-01ab"), "web-1"), "session alice-01ab on web-1; ~. to leave");
        assert_eq!(banner_line(None, "web-1"), "session on web-1; ~. to leave");
    }

    #[test]
    fn forward_specs_read_as_ssh_reads_them() {
        let ok = |spec: &str| parse_forward(spec).map(|(a, h, p)| (a.to_string(), h, p)).unwrap();
        assert_eq!(ok("8080:127.0.0.1:80"), ("127.0.0.1:8080".into(), "127.0.0.1".into(), 80));
        assert_eq!(ok("0:db.internal:5432"), ("127.0.0.1:0".into(), "db.internal".into(), 5432));
        assert_eq!(ok("*:8080:[::1]:80"), ("0.0.0.0:8080".into(), "::1".into(), 80));
        assert_eq!(ok("[::1]:8443:web:443"), ("[::1]:8443".into(), "web".into(), 443));
        assert_eq!(ok("localhost:1:h:2"), ("127.0.0.1:1".into(), "h".into(), 2));
        for bad in
            ["8080", "8080:h", "x:h:80", "8080:h:0", "8080::80", "[::1:80:h:1", "a:b:c:d:e", "999999:h:1"]
        {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
    }
}
