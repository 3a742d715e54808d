//! `session-relay admin`: users, tokens, policies, activation codes, instances, the switch and
//! the audit log, changed in the store the relay reads. Secrets are printed once, here.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use session_relay::audit::{Kind, Outcome, Record};
use session_relay::store::{ActivationTerms, Store, StoreError, unix_now};

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
    /// Shows or sets whether an account's sessions may start.
    Switch {
        /// The account.
        account: String,
        /// `on` or `off`; without it, shows the setting.
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
    },
    /// Prints the latest audit records, one JSON object a line.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Adds a user.
    Add { name: String },
    /// Removes a user, their tokens and attachments.
    Remove { name: String },
    /// Lists users and their policies.
    List,
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
    /// Revokes a token by its id (the 16 hex digits after `srt_`).
    Revoke { id: String },
    /// Lists tokens: ids, users, expiry, revocation; never the secrets.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Stores a policy document from a file (`-` for stdin), replacing one of that name.
    Put { name: String, file: PathBuf },
    /// Removes a policy.
    Remove { name: String },
    /// Prints every policy.
    List,
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
    /// Lists activation codes: ids, accounts, expiry, uses left.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum InstanceCommand {
    /// Lists registered instances.
    List,
    /// Forgets an instance's key: its agent must register again.
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

/// Carries out one admin command against `store`; one that changes something is audited (its
/// arguments, which never hold a secret: secrets are only ever made here, and printed).
pub(crate) fn run(store: &Store, command: Admin) -> Result<(), StoreError> {
    let changes = !matches!(
        command,
        Admin::User(UserCommand::List)
            | Admin::Token(TokenCommand::List)
            | Admin::Policy(PolicyCommand::List)
            | Admin::Activation(ActivationCommand::List)
            | Admin::Instance(InstanceCommand::List)
            | Admin::Switch { state: None, .. }
            | Admin::Audit { .. }
    );
    let record = changes.then(|| {
        let by = std::env::var("USER").unwrap_or_default();
        let record = Record {
            actor: Some(format!("admin:{by}")),
            reason: Some(format!("{command:?}")),
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

fn execute(store: &Store, command: Admin) -> Result<(), StoreError> {
    match command {
        Admin::User(UserCommand::Add { name }) => store.add_user(&name)?,
        Admin::User(UserCommand::Remove { name }) => store.remove_user(&name)?,
        Admin::User(UserCommand::List) => {
            for (name, policies) in store.users()? {
                println!("{name}\t{}", policies.join(","));
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
        Admin::Token(TokenCommand::List) => {
            for token in store.tokens()? {
                let state = match token.revoked {
                    Some(at) => format!("revoked {}", when(at)),
                    None if token.expires <= unix_now() => format!("expired {}", when(token.expires)),
                    None => format!("expires {}", when(token.expires)),
                };
                println!("{}\t{}\t{state}", token.id, token.user);
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
        Admin::Policy(PolicyCommand::List) => {
            for (name, document) in store.policies()? {
                println!("{name}\t{}", document.split_whitespace().collect::<Vec<_>>().join(" "));
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
        Admin::Activation(ActivationCommand::List) => {
            for (id, account, expires, uses_left) in store.activations()? {
                println!("{id}\t{account}\texpires {}\t{uses_left} use(s) left", when(expires));
            }
        }
        Admin::Instance(InstanceCommand::List) => {
            for i in store.instances()? {
                let seen =
                    i.last_seen.map_or_else(|| "never seen".to_owned(), |t| format!("seen {}", when(t)));
                let version = i.agent_version.unwrap_or_default();
                println!("{}\t{}\t{}\t{seen}\t{version}", i.id, i.account, i.label);
            }
        }
        Admin::Instance(InstanceCommand::Remove { id }) => store.remove_instance(&id)?,
        Admin::Switch { account, state: None } => {
            let on = store.sessions_enabled(&account)?;
            println!("{account}\tsessions {}", if on { "on" } else { "off" });
        }
        Admin::Switch { account, state: Some(state) } => {
            store.set_sessions_enabled(&account, state == "on")?
        }
        Admin::Audit { limit } => {
            for record in store.audit(limit)? {
                println!("{record}");
            }
        }
    }
    Ok(())
}
