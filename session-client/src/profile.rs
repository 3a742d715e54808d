//! Named profiles: where a relay is, which authority signs its certificate, and how to get the
//! token, kept in a file instead of typed each time. A token is never written in the file
//! itself: it is read from a file only its owner can read, or printed by a command (a password
//! manager), and never echoed.
//!
//! ```toml
//! # ~/.config/session/config.toml
//! default = "prod"
//!
//! [profiles.prod]
//! relay = "wss://relay.example.com"
//! ca_file = "/etc/session/ca.pem"
//! token_command = "pass show session/prod"
//!
//! [profiles.lab]
//! relay = "ws://127.0.0.1:7070"
//! token_file = "~/.config/session/lab.token"
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The profile used when none is named.
    default: Option<String>,
    #[serde(default)]
    profiles: std::collections::BTreeMap<String, Profile>,
}

/// One profile; every field is optional, and a flag or variable given wins over it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) relay: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    /// A file holding the token, readable by its owner only.
    pub(crate) token_file: Option<PathBuf>,
    /// A command (run by `sh -c`) that prints the token.
    pub(crate) token_command: Option<String>,
}

/// Why no profile could be used. The messages never hold a token.
#[derive(Debug)]
pub(crate) enum ProfileError {
    Read(PathBuf, std::io::Error),
    Parse(PathBuf, toml::de::Error),
    Unknown { name: String, path: PathBuf, known: Vec<String> },
    Both(String),
    TokenFile(PathBuf, std::io::Error),
    TokenFileOpen(PathBuf),
    TokenCommand { command: String, why: String },
}

impl core::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProfileError::Read(path, e) => write!(f, "{}: {e}", path.display()),
            ProfileError::Parse(path, e) => write!(f, "{}: {e}", path.display()),
            ProfileError::Unknown { name, path, known } if known.is_empty() => {
                write!(f, "no profile {name}: {} has none", path.display())
            }
            ProfileError::Unknown { name, path, known } => {
                write!(f, "no profile {name} in {}: it has {}", path.display(), known.join(", "))
            }
            ProfileError::Both(name) => {
                write!(f, "profile {name} has both token_file and token_command: keep one")
            }
            ProfileError::TokenFile(path, e) => write!(f, "token file {}: {e}", path.display()),
            ProfileError::TokenFileOpen(path) => write!(
                f,
                "token file {} can be read by others: make it yours alone (chmod 600 {})",
                path.display(),
                path.display()
            ),
            ProfileError::TokenCommand { command, why } => write!(f, "token_command `{command}` {why}"),
        }
    }
}

/// Where the configuration is: `$SESSION_CONFIG`, else `$XDG_CONFIG_HOME/session/config.toml`,
/// else `~/.config/session/config.toml`.
pub(crate) fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SESSION_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("session/config.toml"))
}

/// The profile `name`, or the file's default one, from the file at `path`. No file and no
/// name asked for is no profile; a name asked for must be there.
pub(crate) fn load(path: &Path, name: Option<&str>) -> Result<Profile, ProfileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.is_none() => return Ok(Profile::default()),
        Err(e) => return Err(ProfileError::Read(path.to_owned(), e)),
    };
    let config: Config = toml::from_str(&text).map_err(|e| ProfileError::Parse(path.to_owned(), e))?;
    let Some(name) = name.or(config.default.as_deref()) else { return Ok(Profile::default()) };
    let profile = config.profiles.get(name).cloned().ok_or_else(|| ProfileError::Unknown {
        name: name.to_owned(),
        path: path.to_owned(),
        known: config.profiles.keys().cloned().collect(),
    })?;
    if profile.token_file.is_some() && profile.token_command.is_some() {
        return Err(ProfileError::Both(name.to_owned()));
    }
    Ok(profile)
}

impl Profile {
    /// The profile's token, if it says where one is.
    pub(crate) fn token(&self) -> Result<Option<String>, ProfileError> {
        if let Some(path) = &self.token_file {
            let path = expand_home(path);
            let metadata = std::fs::metadata(&path).map_err(|e| ProfileError::TokenFile(path.clone(), e))?;
            if metadata.permissions().mode() & 0o077 != 0 {
                return Err(ProfileError::TokenFileOpen(path));
            }
            let token =
                std::fs::read_to_string(&path).map_err(|e| ProfileError::TokenFile(path.clone(), e))?;
            return Ok(Some(token.trim().to_owned()));
        }
        if let Some(command) = &self.token_command {
            let failed = |why: String| ProfileError::TokenCommand { command: command.clone(), why };
            // Its stderr goes to ours (a passphrase prompt, say); its stdout is the token.
            let output = Command::new("sh")
                .args(["-c", command])
                .stdin(Stdio::inherit())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| failed(format!("could not run: {e}")))?;
            if !output.status.success() {
                return Err(failed(format!("failed ({})", output.status)));
            }
            let token = String::from_utf8(output.stdout).map_err(|_| failed("printed no text".to_owned()))?;
            return Ok(Some(token.trim().to_owned()));
        }
        Ok(None)
    }

    /// The CA file, `~` expanded.
    pub(crate) fn ca_file(&self) -> Option<PathBuf> {
        self.ca_file.as_deref().map(expand_home)
    }
}

/// `~/x` as the home directory's `x`.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "session-profile-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_named_or_default_profile_is_read_and_its_token_found() {
        let dir = dir();
        let token = file(&dir, "lab.token", "srt_lab\n", 0o600);
        let config = format!(
            "default = \"prod\"\n[profiles.prod]\nrelay = \"wss://relay.example\"\ntoken_command = \"echo srt_prod\"\n\
             [profiles.lab]\nrelay = \"ws://127.0.0.1:7070\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        let path = file(&dir, "config.toml", &config, 0o644);
        let prod = load(&path, None).unwrap();
        assert_eq!(prod.relay.as_deref(), Some("wss://relay.example"));
        assert_eq!(prod.token().unwrap().as_deref(), Some("srt_prod"));
        let lab = load(&path, Some("lab")).unwrap();
        assert_eq!(lab.token().unwrap().as_deref(), Some("srt_lab"));
        let unknown = load(&path, Some("staging")).unwrap_err().to_string();
        assert!(unknown.contains("no profile staging") && unknown.contains("lab, prod"), "{unknown}");
    }

    #[test]
    fn a_token_file_others_can_read_is_refused_and_a_failing_command_said_without_output() {
        let dir = dir();
        let open = file(&dir, "open.token", "srt_secret", 0o644);
        let profile = Profile { token_file: Some(open), ..Profile::default() };
        let refused = profile.token().unwrap_err().to_string();
        assert!(refused.contains("chmod 600") && !refused.contains("srt_secret"), "{refused}");
        let failing =
            Profile { token_command: Some("printf 'srt_%s' secret; exit 3".into()), ..Profile::default() };
        let refused = failing.token().unwrap_err().to_string();
        assert!(refused.contains("exit status: 3") && !refused.contains("srt_secret"), "{refused}");
    }

    #[test]
    fn no_file_is_no_profile_unless_one_is_named() {
        let missing = dir().join("absent.toml");
        assert_eq!(load(&missing, None).unwrap(), Profile::default());
        assert!(load(&missing, Some("prod")).is_err());
        let path = file(&dir(), "bad.toml", "[profiles.x]\nrelay = 1\n", 0o644);
        // A file that is not what it should be is said, whichever profile was asked for.
        assert!(load(&path, None).unwrap_err().to_string().contains("bad.toml"));
        assert!(load(&path, Some("x")).unwrap_err().to_string().contains("bad.toml"));
    }
}
