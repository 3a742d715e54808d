//! `session-relay admin`: users, tokens, policies, activation codes, instances, the switch and
//! the audit log, changed in the store the relay reads; and the sessions in progress, which the
//! running relays publish to the store and end when asked there (`watch.rs`). Secrets are
//! printed once, here.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use session_relay::audit::{Kind, Outcome, Record};
use session_relay::recording::read::{Pace, Recording};
use session_relay::recording::{Mode, Settings, index};
use session_relay::store::{ActivationTerms, Store, StoreError, TERMINATED, unix_now};

#[derive(Debug, Subcommand)]
pub(crate) enum Admin {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Users' bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Policy documents, and which users they attach to.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Activation codes, with which new agents register their keys.
    #[command(subcommand)]
    Activation(ActivationCommand),
    /// Registered instances.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Sessions in progress at the relays running on this store, every user's.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Shows or sets whether an account's sessions may start.
    Switch {
        /// The account: an instance or an activation code must name it.
        account: String,
        /// `on` or `off`; without it, shows the setting (`-o json`: `{"account": ..., "sessions":
        /// "on"}`).
        #[arg(value_parser = ["on", "off"], conflicts_with = "Listing")]
        state: Option<String>,
        #[command(flatten)]
        listing: Listing,
    },
    /// Session recordings: what each account's sessions leave recorded, and the recordings
    /// themselves (list, verify, export, play).
    #[command(subcommand)]
    Recording(RecordingCommand),
    /// Prints the latest audit records, oldest first: one JSON object a line as the audit log
    /// file has them (times in Unix seconds), or with `-o json` one document, `{"records":
    /// [...]}`, with times in RFC 3339.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only the records of one fleet command: its sessions and refused Opens, by the id the
        /// relay told its `/v1/fleet` connection (`x-session-fleet`, `session-client run` prints
        /// it).
        #[arg(long, value_name = "ID")]
        fleet: Option<String>,
        #[command(flatten)]
        listing: Listing,
    },
    /// Makes a private certificate authority and the relay's certificate, signed by it, in a
    /// directory: `ca.pem` for clients and agents (`--ca-file`), `cert.pem` and `key.pem` for
    /// the relay (`--tls-cert`, `--tls-key`). The authority's key is not kept: it signs this one
    /// certificate and is gone, so the directory cannot mint more. Run again, into a new
    /// directory, for other names, and hand out the new `ca.pem`. Needs no store.
    Tls(TlsArgs),
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Columns separated by tabs, times in words (`in 29d`, `5m ago`).
    Table,
    /// One JSON document (`{"<things>": [...]}` for a listing), times in RFC 3339; never a
    /// secret.
    Json,
}

/// The output flags every listing, and `switch <account>`, take: `-o json` as `session-client`'s
/// listings take it, and `--json`, the same (as `session list --json` always was).
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct Listing {
    /// `table` for people, `json` for scripts: one JSON document, times in RFC 3339.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// The same as `-o json`.
    #[arg(long, conflicts_with = "output")]
    json: bool,
}

impl Listing {
    fn json(self) -> bool {
        self.json || self.output == Format::Json
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct TlsArgs {
    /// Where to write the files; made if absent. Files already there are not overwritten.
    dir: PathBuf,
    /// A DNS name or IP address clients and agents dial the relay by; repeat for several.
    #[arg(long = "name", required = true, value_name = "DNS-OR-IP")]
    names: Vec<String>,
    /// Days both certificates are valid, from yesterday (for clocks a little behind).
    #[arg(long, default_value_t = 365)]
    days: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Adds a user.
    Add { name: String },
    /// Removes a user, their tokens and attachments; their sessions in progress end.
    Remove { name: String },
    /// Lists users and their policies (`-o json`: `{"users": [{"name", "policies"}]}`).
    List(Listing),
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Makes a token for a user and prints it: it is shown only this once.
    Create {
        user: String,
        /// How long it works: `90d`, `12h`, `30m`, `45s`.
        #[arg(long, default_value = "90d", value_parser = parse_duration)]
        expires_in: Duration,
    },
    /// Revokes a token by its id (the 16 hex digits after `srt_`); the sessions started with it
    /// end, within a second of a running relay's next look at the store.
    Revoke { id: String },
    /// Lists tokens: ids, users, expiry, revocation; never the secrets (`-o json`: `{"tokens":
    /// [{"id", "user", "state", "expires", "revoked"}]}`, `state` `active`, `expired` or
    /// `revoked`).
    List(Listing),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Stores a policy document from a file (`-` for stdin), replacing one of that name.
    Put { name: String, file: PathBuf },
    /// Removes a policy.
    Remove { name: String },
    /// Prints every policy, its document on one line (`-o json`: `{"policies": [{"name",
    /// "document"}]}`, the document as JSON).
    List(Listing),
    /// Attaches a policy to a user.
    Attach { policy: String, user: String },
    /// Detaches a policy from a user.
    Detach { policy: String, user: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ActivationCommand {
    /// Makes an activation code and prints it: it is shown only this once.
    Create {
        /// The account its instances join.
        #[arg(long, default_value = "default")]
        account: String,
        /// The name label its instances get (their id when absent).
        #[arg(long)]
        label: Option<String>,
        /// How long it can be used.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        expires_in: Duration,
        /// How many agents may register with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    /// Lists activation codes: ids, accounts, expiry, uses left; never the codes (`-o json`:
    /// `{"activations": [{"id", "account", "expires", "uses_left"}]}`).
    List(Listing),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Lists every session in progress: id, user, instance, start, relay and what it runs
    /// (`-o json`: `{"sessions": [{"id", "user", "instance", "account", "kind", "started",
    /// "relay"}]}`).
    List(Listing),
    /// Ends a session, as its owner's `terminate` does: its client is told who ended it. Waits
    /// for its relay, which looks once a second, to say it did.
    Terminate {
        /// The session's id, as `session list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecordingCommand {
    /// Shows or sets what an account's sessions leave recorded: `full` (shells' and commands'
    /// output as asciicast, and an entry for every session), `metadata` (the entries alone:
    /// who, where, when, the bytes each way, a transfer's hash) or `off`. Without a mode, shows
    /// it (`-o json`: `{"account", "recording", "input", "set"}`, `recording` null and `set`
    /// false for an account that takes the relay's `--recording-default`).
    Mode {
        /// The account: an instance or an activation code must name it.
        account: String,
        /// `off`, `metadata` or `full`.
        #[arg(conflicts_with = "Listing")]
        mode: Option<Mode>,
        /// Record what users type too (`on`), or not (`off`, the default: passwords are typed
        /// into terminals). Kept as it was unless given.
        #[arg(long, value_parser = ["on", "off"], requires = "mode")]
        input: Option<String>,
        #[command(flatten)]
        listing: Listing,
    },
    /// Lists recordings, newest first: id, user, instance, start, mode, size, what ran
    /// (`-o json`: `{"recordings": [{"id", "user", "instance", "account", "kind", "mode",
    /// "input", "started", "ended", "size", "chunks", "unrecorded", "session"}]}`, `session`
    /// holding what the session's audit record says moved).
    List {
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        listing: Listing,
    },
    /// Checks every chunk of a recording against its hash chain, and the chain against the
    /// store: a changed, removed or added chunk is named, and the exit status is 1.
    Verify {
        /// The session's id.
        id: String,
    },
    /// Writes a recording, verified first, as asciicast v3 (or v2 for older players).
    Export {
        /// The session's id.
        id: String,
        /// asciicast v2: times since the start, no exit event.
        #[arg(long)]
        v2: bool,
        /// The file to write [default: stdout].
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Plays a recording's output on this terminal, as it was shown, checking it as it goes.
    Play {
        /// The session's id.
        id: String,
        /// How many times faster than real time.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// The longest pause, in seconds, however long the session was idle.
        #[arg(long, value_name = "SECS")]
        max_wait: Option<f64>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum InstanceCommand {
    /// Lists registered instances: id, account, name label, when last seen, agent version, and
    /// the labels its agent gave at its last proof as `key=value,...` (`-o json`: `{"instances":
    /// [{"id", "account", "label", "last_seen", "agent_version", "labels"}]}`, `labels` an
    /// object).
    List(Listing),
    /// Forgets an instance's key: its agent must register again, and its sessions in progress
    /// end.
    Remove { id: String },
}

/// `90d`, `12h`, `30m` or `45s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at_checked(split).ok_or("empty duration")?;
    let number: u64 = number.parse().map_err(|_| format!("{text:?}: use a number and s, m, h or d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    number.checked_mul(unit).map(Duration::from_secs).ok_or_else(|| format!("{text:?} is too long"))
}

/// `text` with its control characters escaped (`\t`, `\n`, `\u{1b}`), the rest as it is.
fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// `unix` seconds as RFC 3339 in UTC: `2026-01-01T00:00:00Z`.
fn rfc3339(unix: i64) -> String {
    let (year, month, day) = civil(unix);
    let secs = unix.rem_euclid(86_400);
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// `unix` seconds, with a fraction, as RFC 3339 in UTC to the millisecond:
/// `2026-01-01T00:00:00.250Z`.
fn rfc3339_millis(unix: f64) -> String {
    // Whole milliseconds, so that rounding up carries into the seconds.
    let millis = (unix * 1000.0).round() as i64;
    let whole = rfc3339(millis.div_euclid(1000));
    let fraction = millis.rem_euclid(1000);
    format!("{}.{fraction:03}Z", whole.trim_end_matches('Z'))
}

/// An audit record as `audit -o json` prints it: its times (`at`, `start`, `end`, Unix seconds
/// as stored) in RFC 3339, the rest as it is. A line that is not a JSON object is kept, as a
/// string, rather than lost.
fn audit_json(line: &str) -> serde_json::Value {
    let Ok(serde_json::Value::Object(mut record)) = serde_json::from_str(line) else {
        return serde_json::Value::from(line);
    };
    for field in ["at", "start", "end"] {
        if let Some(time) = record.get_mut(field) {
            if let Some(unix) = time.as_f64() {
                *time = rfc3339_millis(unix).into();
            }
        }
    }
    serde_json::Value::Object(record)
}

/// Prints a listing as one JSON document: `{"<name>": [...]}`.
fn print_json(name: &str, items: Vec<serde_json::Value>) {
    println!("{}", serde_json::json!({ name: items }));
}

/// The UTC date of `unix` seconds: year, month, day.
fn civil(unix: i64) -> (i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn when(unix: i64) -> String {
    let left = unix - unix_now();
    if left > 0 { format!("in {}", span(left)) } else { format!("{} ago", span(-left)) }
}

fn span(secs: i64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// How long `session terminate` waits for the relay holding the session to answer: ten of its
/// looks at the store, once a second, so a relay that runs answers well within it.
const TERMINATE_WAIT: Duration = Duration::from_secs(10);

/// Why an admin command failed.
#[derive(Debug)]
pub(crate) enum AdminError {
    /// The store refused or failed.
    Store(StoreError),
    /// The session ended on its own before its relay came to it: `session {id} just ended`.
    Ended(String),
    /// The relay holding the session stopped, and its sessions with it: `the relay at {relay}
    /// that held session {id} stopped, and its sessions ended with it`.
    RelayGone {
        /// The session.
        id: String,
        /// Where its relay listened.
        relay: String,
    },
    /// The relay did not answer in time: `the relay at {relay} has not answered ...`.
    Unanswered {
        /// The session.
        id: String,
        /// Where its relay listens.
        relay: String,
    },
    /// `admin tls` could not make or write its files.
    Tls(String),
    /// A recording is not there, cannot be read, or does not verify.
    Recording(String),
}

impl core::fmt::Display for AdminError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AdminError::Store(e) => write!(f, "{e}"),
            AdminError::Ended(id) => write!(f, "session {id} just ended"),
            AdminError::RelayGone { id, relay } => {
                write!(
                    f,
                    "the relay at {relay} that held session {id} stopped, and its sessions ended with it"
                )
            }
            AdminError::Unanswered { id, relay } => write!(
                f,
                "the relay at {relay} has not answered the termination of session {id} within {} s; \
                 it ends the session when it next reads the store",
                TERMINATE_WAIT.as_secs()
            ),
            AdminError::Tls(message) | AdminError::Recording(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminError::Store(e) => Some(e),
            AdminError::Ended(_)
            | AdminError::RelayGone { .. }
            | AdminError::Unanswered { .. }
            | AdminError::Tls(_)
            | AdminError::Recording(_) => None,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

/// Whether `command` may make the store where there is none: only those that add the first
/// things to one. Any other would read an empty store, or fail in it, and leave a new empty
/// file behind where a path was mistyped.
pub(crate) fn makes_store(command: &Admin) -> bool {
    matches!(
        command,
        Admin::User(UserCommand::Add { .. })
            | Admin::Policy(PolicyCommand::Put { .. })
            | Admin::Activation(ActivationCommand::Create { .. })
    )
}

/// Who runs the command, as audit records and terminated sessions name them: `admin:<login>`.
fn operator() -> String {
    let login =
        ["USER", "LOGNAME"].into_iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    login.map_or_else(
        || format!("admin:uid-{}", rustix::process::geteuid().as_raw()),
        |login| format!("admin:{login}"),
    )
}

/// Carries out one admin command against `store`; one that changes something is audited (its
/// arguments, which never hold a secret: secrets are only ever made here, and printed).
pub(crate) fn run(store: &Store, command: Admin) -> Result<(), AdminError> {
    let changes = !matches!(
        command,
        Admin::User(UserCommand::List(_))
            | Admin::Token(TokenCommand::List(_))
            | Admin::Policy(PolicyCommand::List(_))
            | Admin::Activation(ActivationCommand::List(_))
            | Admin::Instance(InstanceCommand::List(_))
            | Admin::Session(SessionCommand::List(_))
            | Admin::Switch { state: None, .. }
            | Admin::Recording(
                RecordingCommand::Mode { mode: None, .. }
                    | RecordingCommand::List { .. }
                    | RecordingCommand::Verify { .. }
                    | RecordingCommand::Export { .. }
                    | RecordingCommand::Play { .. }
            )
            | Admin::Audit { .. }
            | Admin::Tls(_)
    );
    let record = changes.then(|| {
        let session = match &command {
            Admin::Session(SessionCommand::Terminate { id }) => Some(id.clone()),
            _ => None,
        };
        let reason = match &command {
            // Without its output flags, which a change does not take.
            Admin::Switch { account, state, .. } => {
                format!("Switch {{ account: {account:?}, state: {state:?} }}")
            }
            command => format!("{command:?}"),
        };
        let record = Record {
            actor: Some(operator()),
            reason: Some(reason),
            session,
            ..Record::new(Kind::Admin, Outcome::Allowed)
        };
        record.to_json()
    });
    execute(store, command)?;
    if let Some(record) = record {
        store.append_audit(&[record])?;
    }
    Ok(())
}

fn execute(store: &Store, command: Admin) -> Result<(), AdminError> {
    match command {
        Admin::User(UserCommand::Add { name }) => store.add_user(&name)?,
        Admin::User(UserCommand::Remove { name }) => store.remove_user(&name)?,
        Admin::User(UserCommand::List(listing)) => {
            let users = store.users()?;
            if listing.json() {
                let users = users
                    .into_iter()
                    .map(|(name, policies)| serde_json::json!({ "name": name, "policies": policies }));
                print_json("users", users.collect());
            } else {
                for (name, policies) in users {
                    println!("{name}\t{}", policies.join(","));
                }
            }
        }
        Admin::Token(TokenCommand::Create { user, expires_in }) => {
            let (token, id) = store.create_token(&user, expires_in)?;
            eprintln!(
                "token {id} for {user}, expires in {}; it is shown only now:",
                span(expires_in.as_secs() as i64)
            );
            println!("{token}");
        }
        Admin::Token(TokenCommand::Revoke { id }) => store.revoke_token(&id)?,
        Admin::Token(TokenCommand::List(listing)) => {
            let tokens = store.tokens()?;
            let now = unix_now();
            if listing.json() {
                let tokens = tokens.into_iter().map(|token| {
                    let state = match token.revoked {
                        Some(_) => "revoked",
                        None if token.expires <= now => "expired",
                        None => "active",
                    };
                    // The id and whose it is; the secret is not in the store to print.
                    serde_json::json!({
                        "id": token.id, "user": token.user, "state": state,
                        "expires": rfc3339(token.expires), "revoked": token.revoked.map(rfc3339),
                    })
                });
                print_json("tokens", tokens.collect());
            } else {
                for token in tokens {
                    let state = match token.revoked {
                        Some(at) => format!("revoked {}", when(at)),
                        None if token.expires <= now => format!("expired {}", when(token.expires)),
                        None => format!("expires {}", when(token.expires)),
                    };
                    println!("{}\t{}\t{state}", token.id, token.user);
                }
            }
        }
        Admin::Policy(PolicyCommand::Put { name, file }) => {
            let mut document = String::new();
            let read = if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut document)
            } else {
                std::fs::File::open(&file).and_then(|mut f| f.read_to_string(&mut document))
            };
            read.map_err(|error| StoreError::File { path: file, error })?;
            store.put_policy(&name, &document)?;
        }
        Admin::Policy(PolicyCommand::Remove { name }) => store.remove_policy(&name)?,
        Admin::Policy(PolicyCommand::List(listing)) => {
            let policies = store.policies()?;
            if listing.json() {
                let policies = policies.into_iter().map(|(name, document)| {
                    // Stored only once parsed; a document that is not JSON after all stays text.
                    let document = serde_json::from_str::<serde_json::Value>(&document)
                        .unwrap_or(serde_json::Value::String(document));
                    serde_json::json!({ "name": name, "document": document })
                });
                print_json("policies", policies.collect());
            } else {
                for (name, document) in policies {
                    println!("{name}\t{}", document.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
        }
        Admin::Policy(PolicyCommand::Attach { policy, user }) => store.attach(&user, &policy)?,
        Admin::Policy(PolicyCommand::Detach { policy, user }) => store.detach(&user, &policy)?,
        Admin::Activation(ActivationCommand::Create { account, label, expires_in, uses }) => {
            let terms = ActivationTerms { account, label, ttl: expires_in, uses };
            let (code, id) = store.create_activation(&terms)?;
            eprintln!(
                "activation code {id} for account {}, {uses} use(s), expires in {}; it is shown only now:",
                terms.account,
                span(expires_in.as_secs() as i64)
            );
            println!("{code}");
        }
        Admin::Activation(ActivationCommand::List(listing)) => {
            let activations = store.activations()?;
            if listing.json() {
                let activations = activations.into_iter().map(|(id, account, expires, uses_left)| {
                    serde_json::json!({
                        "id": id, "account": account, "expires": rfc3339(expires), "uses_left": uses_left,
                    })
                });
                print_json("activations", activations.collect());
            } else {
                for (id, account, expires, uses_left) in activations {
                    println!("{id}\t{account}\texpires {}\t{uses_left} use(s) left", when(expires));
                }
            }
        }
        Admin::Instance(InstanceCommand::List(listing)) => {
            let instances = store.instances()?;
            if listing.json() {
                let instances = instances.into_iter().map(|i| {
                    serde_json::json!({
                        "id": i.id, "account": i.account, "label": i.label,
                        "last_seen": i.last_seen.map(rfc3339), "agent_version": i.agent_version,
                        "labels": i.labels,
                    })
                });
                print_json("instances", instances.collect());
            } else {
                for i in instances {
                    let seen =
                        i.last_seen.map_or_else(|| "never seen".to_owned(), |t| format!("seen {}", when(t)));
                    let version = i.agent_version.unwrap_or_default();
                    // Last, so that the columns before keep their places for scripts.
                    let labels = session_relay::labels::show(&i.labels);
                    println!("{}\t{}\t{}\t{seen}\t{version}\t{labels}", i.id, i.account, i.label);
                }
            }
        }
        Admin::Instance(InstanceCommand::Remove { id }) => store.remove_instance(&id)?,
        Admin::Session(SessionCommand::List(listing)) => {
            let sessions = store.live_sessions()?;
            if store.running_relays()? == 0 {
                eprintln!(
                    "no relay has run on this store in the last {} s",
                    session_relay::store::RELAY_GONE_AFTER.as_secs()
                );
            }
            if listing.json() {
                let sessions = sessions.into_iter().map(|s| {
                    serde_json::json!({
                        "id": s.id, "user": s.user, "instance": s.instance, "account": s.account,
                        "kind": s.kind, "started": rfc3339(s.started), "relay": s.relay,
                    })
                });
                print_json("sessions", sessions.collect());
            } else {
                for s in sessions {
                    // What it runs comes last, its control characters escaped: a command's tab
                    // or newline would otherwise shift the columns.
                    let kind = printable(&s.kind);
                    println!(
                        "{}\t{}\t{}\tstarted {}\t{}\t{kind}",
                        s.id,
                        s.user,
                        s.instance,
                        when(s.started),
                        s.relay
                    );
                }
            }
        }
        Admin::Session(SessionCommand::Terminate { id }) => {
            let session = store.request_termination(&id, &operator())?;
            let asked = Instant::now();
            loop {
                match store.termination_outcome(&id)? {
                    Some(Some(outcome)) if outcome == TERMINATED => break,
                    Some(Some(_)) => return Err(AdminError::Ended(id)),
                    None => return Err(AdminError::RelayGone { id, relay: session.relay }),
                    Some(None) if asked.elapsed() >= TERMINATE_WAIT => {
                        return Err(AdminError::Unanswered { id, relay: session.relay });
                    }
                    Some(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            println!("terminated {id}: {} on {}, {}", session.user, session.instance, session.kind);
        }
        Admin::Switch { account, state: None, listing } => {
            let sessions = if store.switch(&account)? { "on" } else { "off" };
            if listing.json() {
                println!("{}", serde_json::json!({ "account": account, "sessions": sessions }));
            } else {
                println!("{account}\tsessions {sessions}");
            }
        }
        Admin::Switch { account, state: Some(state), .. } => store.set_switch(&account, state == "on")?,
        Admin::Audit { limit, fleet, listing } => {
            let records = match fleet {
                Some(fleet) => store.audit_of_fleet(&fleet, limit)?,
                None => store.audit(limit)?,
            };
            if listing.json() {
                print_json("records", records.iter().map(|line| audit_json(line)).collect());
            } else {
                for record in records {
                    println!("{record}");
                }
            }
        }
        Admin::Recording(command) => recording(store, command)?,
        Admin::Tls(args) => tls(&args)?,
    }
    Ok(())
}

/// `admin recording ...`.
fn recording(store: &Store, command: RecordingCommand) -> Result<(), AdminError> {
    match command {
        RecordingCommand::Mode { account, mode: None, listing, .. } => {
            if !store.account_known(&account)? {
                return Err(StoreError::UnknownAccount(account).into());
            }
            // An account never set records as the relay's `--recording-default` says, which
            // only the running relay knows.
            let set = store.recording(&account)?;
            let input = set.is_some_and(|s| s.input);
            if listing.json() {
                let shown = serde_json::json!({
                    "account": account, "recording": set.map(|s| s.mode.as_str()), "input": input,
                    "set": set.is_some(),
                });
                println!("{shown}");
            } else {
                let mode = set.map_or_else(
                    || "not set (the relay's --recording-default: full unless given)".to_owned(),
                    |s| s.mode.to_string(),
                );
                println!("{account}\trecording {mode}\tinput {}", if input { "on" } else { "off" });
            }
        }
        RecordingCommand::Mode { account, mode: Some(mode), input, .. } => {
            let before = store.recording(&account)?;
            let input = input.map_or_else(|| before.is_some_and(|s| s.input), |input| input == "on");
            store.set_recording(&account, Settings { mode, input })?;
        }
        RecordingCommand::List { limit, listing } => {
            let entries = index::list(store, limit)?;
            if listing.json() {
                let entries = entries.iter().map(|entry| {
                    let mut json = entry.to_json();
                    for key in ["started", "ended"] {
                        if let Some(unix) = json[key].as_f64() {
                            json[key] = rfc3339_millis(unix).into();
                        }
                    }
                    json
                });
                print_json("recordings", entries.collect());
            } else {
                for entry in entries {
                    let started = when(entry.started as i64);
                    let ended = match entry.ended {
                        Some(ended) => format!("{:.0} s", (ended - entry.started).max(0.0)),
                        None => "not ended".to_owned(),
                    };
                    let unrecorded = if entry.unrecorded > 0 {
                        format!(" ({} B not recorded)", entry.unrecorded)
                    } else {
                        String::new()
                    };
                    println!(
                        "{}\t{}\t{}\tstarted {started}\t{ended}\t{}\t{} B{unrecorded}\t{}",
                        entry.id,
                        entry.user,
                        entry.instance,
                        entry.mode,
                        entry.size,
                        printable(&entry.kind)
                    );
                }
            }
        }
        RecordingCommand::Verify { id } => {
            let (entry, mut recording) = open_recording(store, &id)?;
            let failed = |e: &dyn core::fmt::Display| {
                AdminError::Recording(format!("recording {id} does not verify: {e}"))
            };
            let verified = recording.verify().map_err(|e| failed(&e))?;
            Recording::check_entry(&verified, &entry).map_err(|e| failed(&e))?;
            let ended = if verified.ended {
                "ended as it should".to_owned()
            } else if entry.ended.is_some() {
                "its relay stopped before writing its end: the last chunk may be lost".to_owned()
            } else {
                "not ended: still being written, or its relay was killed".to_owned()
            };
            let mut notes = String::new();
            if verified.unchained > 0 {
                notes.push_str(&format!("; {} bytes after the last chunk are not chained (a write the relay did not finish) and are left out", verified.unchained));
            }
            if verified.unrecorded > 0 {
                notes.push_str(&format!(
                    "; {} bytes of output and input were not recorded",
                    verified.unrecorded
                ));
            }
            println!(
                "recording {id}: {} chunks, {} bytes verified, {ended}{notes}",
                verified.chunks, verified.length
            );
        }
        RecordingCommand::Export { id, v2, file } => {
            let (_, mut recording) = open_recording(store, &id)?;
            let failed = |e: &dyn core::fmt::Display| {
                AdminError::Recording(format!("recording {id} not exported: {e}"))
            };
            match file {
                Some(path) => {
                    // Written beside and renamed, so that a failed export leaves no half file.
                    let partial = path.with_extension("partial");
                    let mut out = std::io::BufWriter::new(
                        std::fs::File::create(&partial)
                            .map_err(|e| failed(&format!("{}: {e}", partial.display())))?,
                    );
                    let exported = recording.export(v2, &mut out).map_err(|e| failed(&e));
                    drop(out);
                    if let Err(e) = exported {
                        let _ = std::fs::remove_file(&partial);
                        return Err(e);
                    }
                    std::fs::rename(&partial, &path)
                        .map_err(|e| failed(&format!("{}: {e}", path.display())))?;
                }
                None => {
                    let stdout = std::io::stdout();
                    recording.export(v2, &mut stdout.lock()).map_err(|e| failed(&e))?;
                }
            }
        }
        RecordingCommand::Play { id, speed, max_wait } => {
            if !(speed.is_finite() && speed > 0.0) {
                return Err(AdminError::Recording(format!("--speed {speed}: a speed is a number above 0")));
            }
            let max_wait = max_wait.filter(|w| w.is_finite() && *w >= 0.0).map(Duration::from_secs_f64);
            let (_, mut recording) = open_recording(store, &id)?;
            let stdout = std::io::stdout();
            session_relay::recording::read::play(
                &mut recording,
                Pace { speed, max_wait },
                &mut stdout.lock(),
                std::thread::sleep,
            )
            .map_err(|e| AdminError::Recording(format!("recording {id}: {e}")))?;
        }
    }
    Ok(())
}

/// Recording `id`'s entry and files.
fn open_recording(store: &Store, id: &str) -> Result<(index::Entry, Recording), AdminError> {
    let entry = index::get(store, id)?.ok_or_else(|| AdminError::Recording(format!("no recording {id}")))?;
    let recording =
        Recording::of(&entry).map_err(|e| AdminError::Recording(format!("recording {id}: {e}")))?;
    Ok((entry, recording))
}

/// `admin tls`: a CA and a leaf signed by it, rather than one self-signed certificate, because
/// rustls (webpki) refuses a CA certificate presented as the server's own, and a self-signed
/// leaf cannot be a trust anchor in every client.
pub(crate) fn tls(args: &TlsArgs) -> Result<(), AdminError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let failed = |what: &str, e: rcgen::Error| AdminError::Tls(format!("{what}: {e}"));
    let files = ["ca.pem", "cert.pem", "key.pem"].map(|name| args.dir.join(name));
    // Checked before anything is written, so a refusal leaves the directory as it was.
    if let Some(existing) = files.iter().find(|path| path.exists()) {
        return Err(AdminError::Tls(format!(
            "{} exists: give a directory without ca.pem, cert.pem and key.pem",
            existing.display()
        )));
    }
    let now = unix_now();
    let date = |unix: i64| {
        let (year, month, day) = civil(unix);
        // Within i32 and u8 for any date a clock shows.
        rcgen::date_time_ymd(year as i32, month as u8, day as u8)
    };
    let (not_before, not_after) = (date(now - 86_400), date(now + i64::from(args.days) * 86_400));

    let mut ca = CertificateParams::new(Vec::new()).map_err(|e| failed("CA", e))?;
    ca.distinguished_name.push(DnType::CommonName, format!("session-relay CA for {}", args.names.join(" ")));
    // It signs end-entity certificates only, none of another authority.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| failed("CA", e))?;
    let issuer = Issuer::new(ca, ca_key);

    // `new` makes an IP address SAN of a name that parses as one, a DNS name of any other.
    let mut leaf = CertificateParams::new(args.names.clone()).map_err(|e| failed("--name", e))?;
    leaf.distinguished_name.push(DnType::CommonName, args.names[0].clone());
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    (leaf.not_before, leaf.not_after) = (not_before, not_after);
    let leaf_key = KeyPair::generate().map_err(|e| failed("key", e))?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(|e| failed("certificate", e))?;

    std::fs::create_dir_all(&args.dir)
        .map_err(|e| AdminError::Tls(format!("{}: {e}", args.dir.display())))?;
    let [ca_file, cert_file, key_file] = &files;
    write_new(ca_file, &ca_cert.pem(), 0o644)?;
    write_new(cert_file, &leaf_cert.pem(), 0o644)?;
    write_new(key_file, &leaf_key.serialize_pem(), 0o600)?;
    println!("{}\tthe CA: clients and agents trust it with --ca-file", ca_file.display());
    println!("{}\tthe relay's certificate, for {}: --tls-cert", cert_file.display(), args.names.join(", "));
    println!("{}\tits key, readable by its owner only: --tls-key", key_file.display());
    Ok(())
}

/// Writes a file that must not exist yet, with `mode` from its creation on (a key is never
/// readable by others, not even for a moment).
fn write_new(path: &std::path::Path, text: &str, mode: u32) -> Result<(), AdminError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| AdminError::Tls(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_rfc_3339() {
        for (unix, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_767_225_600, "2026-01-01T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(unix), text, "{unix}");
        }
    }

    #[test]
    fn audit_times_are_written_in_rfc_3339_to_the_millisecond() {
        assert_eq!(rfc3339_millis(1_767_225_600.25), "2026-01-01T00:00:00.250Z");
        assert_eq!(rfc3339_millis(1_767_225_599.999_6), "2026-01-01T00:00:00.000Z", "carried");
        assert_eq!(rfc3339_millis(0.0), "1970-01-01T00:00:00.000Z");
        let record =
            audit_json(r#"{"at": 1767225600.5, "start": null, "end": 1767225601, "actor": "alice"}"#);
        assert_eq!(
            record,
            serde_json::json!({"at": "2026-01-01T00:00:00.500Z", "start": null,
                               "end": "2026-01-01T00:00:01.000Z", "actor": "alice"})
        );
        assert_eq!(audit_json("not json"), serde_json::json!("not json"));
    }

    #[test]
    fn a_kind_is_shown_on_one_line_of_its_column() {
        assert_eq!(printable("exec: printf 'a\tb\n' | wc -l; é"), "exec: printf 'a\\tb\\n' | wc -l; é");
        assert_eq!(printable("shell"), "shell");
    }
}
