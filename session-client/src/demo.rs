//! `session-client demo`: a relay and an agent on loopback in this process, and a session
//! through them. The first run provisions a development account (user `dev`, allowed
//! everything), keeps the relay's store, the agent's key and the token in a directory of its
//! own, and registers the agent with a one-use activation code; later runs reuse them.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use session_agent::{AgentConfig, AgentKey, LoginUser};
use session_client::{Error, Relay};
use session_relay::audit::Retention;
use session_relay::store::{ActivationTerms, Store};
use session_relay::{Access, Audit, RelayConfig, dev};

/// The instance the demo's agent serves.
const INSTANCE: &str = "demo";
/// The development account's user.
const USER: &str = "dev";
/// Where the demo keeps the development account's token, readable by its owner only.
const TOKEN_FILE: &str = "dev.token";

/// Where the demo keeps its state: `$SESSION_DEMO_DIR`, else `~/.local/share/session-demo`.
fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SESSION_DEMO_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/session-demo"),
        None => std::env::temp_dir().join("session-demo"),
    }
}

fn failed(what: &Path) -> impl Fn(&dyn core::fmt::Display) -> Error + '_ {
    move |e| Error::Invalid(format!("{}: {e}", what.display()))
}

fn error(e: impl core::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// The development account's token: the one kept from an earlier run while it still works, or
/// a new one (after provisioning the account, the first time).
fn dev_token(store: &Store, dir: &Path) -> Result<String, Error> {
    let path = dir.join(TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        if store.authenticate(token.trim()).is_ok() {
            return Ok(token.trim().to_owned());
        }
    }
    let first = !store.users().map_err(error)?.iter().any(|(name, _)| name == USER);
    let token = dev::full_access_user(store, USER, Duration::from_secs(30 * 86_400)).map_err(error)?;
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| failed(&path)(&e))?;
    file.write_all(token.as_bytes()).map_err(|e| failed(&path)(&e))?;
    if first {
        eprintln!(
            "demo: provisioned a development account (user {USER}, allowed everything) in {}",
            dir.display()
        );
    }
    Ok(token)
}

/// The agent's key, and an activation code when the relay does not have that key yet.
fn agent_identity(store: &Store, dir: &Path) -> Result<(AgentKey, Option<String>), Error> {
    let key = AgentKey::load_or_create(&dir.join("agent.key")).map_err(error)?;
    match store.instance(INSTANCE).map_err(error)? {
        Some(known) if hex::encode(&known.public_key) == key.public_hex() => return Ok((key, None)),
        // The key file was replaced: the old registration goes.
        Some(_) => store.remove_instance(INSTANCE).map_err(error)?,
        None => {}
    }
    let terms =
        ActivationTerms { account: "dev".into(), label: None, ttl: Duration::from_secs(600), uses: 1 };
    let (code, _) = store.create_activation(&terms).map_err(error)?;
    Ok((key, Some(code)))
}

/// Runs the demo: a shell, or `command` when it is not empty.
pub(crate) async fn run(command: &str) -> Result<i32, Error> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).map_err(|e| failed(&dir)(&e))?;
    let db = dir.join("relay.db");
    let store = Store::open(&db).map_err(|e| failed(&db)(&e))?;
    let token = dev_token(&store, &dir)?;
    let (key, activation) = agent_identity(&store, &dir)?;
    let access = Access::new(
        store.clone(),
        "local",
        Audit::log_only().with_store(store, Retention::default()).map_err(error)?,
    );
    let relay = session_relay::Relay::start(SocketAddr::from(([127, 0, 0, 1], 0)), RelayConfig::new(access))
        .await
        .map_err(|error| Error::Io { what: "starting the relay".into(), error })?;
    let url = format!("ws://{}", relay.addr);
    // Development mode: sessions run as whoever runs the demo.
    let user = LoginUser::resolve(None, true).map_err(error)?;
    let mut config = AgentConfig::new(&url, INSTANCE, key, user);
    config.activation = activation;
    tokio::spawn(session_agent::run(config));
    eprintln!("demo: relay on {url}, agent \"{INSTANCE}\" connected to it, state in {}", dir.display());
    eprintln!(
        "demo: browser console at http://{}/ while this runs; log in with the token in {}",
        relay.addr,
        dir.join(TOKEN_FILE).display()
    );
    for _ in 0..250 {
        if relay.registry.is_online(INSTANCE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Relay::new(&url, &token);
    if command.is_empty() {
        crate::shell(&client, INSTANCE).await
    } else {
        crate::exec(&client, INSTANCE, command, false).await
    }
}
