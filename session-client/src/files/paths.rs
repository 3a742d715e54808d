//! Where `cp` and `ls` arguments point: scp's `instance:path` for a file on an instance,
//! anything else for a file here. Paths are bytes all the way (a file name need not be UTF-8);
//! a remote path is made absolute and normal (spec 5.19) here, since the wire takes nothing
//! else.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

/// The longest file name the common Linux file systems take: a partial file's name derived
/// from a longer one is shortened to a hash, as the agent shortens its own (spec 12.11).
const NAME_MAX: usize = 255;

/// What a partial download's name (and the agent's partial upload's) ends with.
const PARTIAL_SUFFIX: &[u8] = b".session-partial";

/// One `cp` or `ls` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A path on this machine, as typed.
    Local(PathBuf),
    /// `instance:path`: `path` as typed, empty for the login user's home directory.
    Remote { instance: String, path: Vec<u8> },
}

impl Location {
    /// Reads `arg` as scp does: remote when what comes before its first `:` is an instance
    /// name (letters, digits, `-`, `_`, `.`) with no `/`; so `./a:b` and `/x:y` stay local.
    pub(crate) fn parse(arg: &OsStr) -> Location {
        let bytes = arg.as_bytes();
        if let Some(colon) = bytes.iter().position(|&b| b == b':') {
            let (name, path) = bytes.split_at(colon);
            let is_name = !name.is_empty()
                && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if is_name {
                // Checked above to be ASCII.
                let instance = String::from_utf8_lossy(name).into_owned();
                return Location::Remote { instance, path: path.get(1..).unwrap_or_default().to_vec() };
            }
        }
        Location::Local(PathBuf::from(arg))
    }
}

/// Whether a remote path as typed is relative: it is then taken from the home directory.
pub(crate) fn is_relative(typed: &[u8]) -> bool {
    typed.first() != Some(&b'/')
}

/// Whether a remote path as typed names a directory by its form: empty (the home directory)
/// or ending in `/`.
pub(crate) fn names_directory(typed: &[u8]) -> bool {
    typed.is_empty() || typed.ends_with(b"/") || typed == b"." || typed.ends_with(b"/.")
}

/// The absolute, normal path (spec 5.19) that `typed` names, relative ones taken from `home`:
/// empty and `.` components dropped, and `..` taking off the component before it, as a
/// shell's `cd` does (the wire has no `..`; a policy sees the path this gives).
pub(crate) fn resolve(typed: &[u8], home: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let start: &[u8] = if is_relative(typed) { home } else { b"" };
    for part in start.split(|&b| b == b'/').chain(typed.split(|&b| b == b'/')) {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return b"/".to_vec();
    }
    let mut path = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        path.push(b'/');
        path.extend_from_slice(part);
    }
    path
}

/// `dir` and `name` joined: an absolute, normal path when both are.
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = dir.to_vec();
    if dir != b"/" {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// An absolute, normal path's directory and last component; `None` for `/`.
pub(crate) fn split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let slash = path.iter().rposition(|&b| b == b'/')?;
    let name = path.get(slash + 1..).filter(|name| !name.is_empty())?;
    let dir = if slash == 0 { &b"/"[..] } else { path.get(..slash)? };
    Some((dir, name))
}

/// The name of the partial file kept beside a target named `name` while it is copied: the
/// agent's for an upload (spec 12.11), and this client's for a download, the same rule.
pub(crate) fn partial_name(name: &[u8]) -> Vec<u8> {
    let plain = [b".", name, PARTIAL_SUFFIX].concat();
    if plain.len() <= NAME_MAX {
        return plain;
    }
    // Still derived from the name, so that a resume finds it, and short enough.
    let digest = Sha256::digest(name);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    [b".", hex.as_bytes(), PARTIAL_SUFFIX].concat()
}

/// The local partial file beside `target`.
pub(crate) fn local_partial(target: &std::path::Path) -> Option<PathBuf> {
    let name = target.file_name()?;
    let partial = OsString::from_vec(partial_name(name.as_bytes()));
    Some(target.with_file_name(partial))
}

/// `instance:path` for people: bytes that are not UTF-8 shown as U+FFFD.
pub(crate) fn shown(instance: &str, path: &[u8]) -> String {
    format!("{instance}:{}", String::from_utf8_lossy(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(instance: &str, path: &[u8]) -> Location {
        Location::Remote { instance: instance.into(), path: path.to_vec() }
    }

    #[test]
    fn arguments_read_as_scp_reads_them() {
        let parse = |arg: &[u8]| Location::parse(OsStr::from_bytes(arg));
        assert_eq!(parse(b"web-1:/etc/hosts"), remote("web-1", b"/etc/hosts"));
        assert_eq!(parse(b"web-1:"), remote("web-1", b""));
        assert_eq!(parse(b"web_1.x:notes.txt"), remote("web_1.x", b"notes.txt"));
        assert_eq!(parse(b"web-1:/a b/\xff.bin"), remote("web-1", b"/a b/\xff.bin"));
        assert_eq!(parse(b"./a:b"), Location::Local("./a:b".into()));
        assert_eq!(parse(b"/x:y"), Location::Local("/x:y".into()));
        assert_eq!(parse(b":x"), Location::Local(":x".into()));
        assert_eq!(parse(b"plain"), Location::Local("plain".into()));
    }

    #[test]
    fn remote_paths_become_absolute_and_normal() {
        let home = b"/home/al ice";
        assert_eq!(resolve(b"", home), b"/home/al ice");
        assert_eq!(resolve(b"notes.txt", home), b"/home/al ice/notes.txt");
        assert_eq!(resolve(b"a//b/./c/", home), b"/home/al ice/a/b/c");
        assert_eq!(resolve(b"../bob", home), b"/home/bob");
        assert_eq!(resolve(b"/srv/../../etc", home), b"/etc");
        assert_eq!(resolve(b"/", home), b"/");
        assert_eq!(resolve(b"/\xff", home), b"/\xff");
        for path in [&b"/srv/app"[..], b"/", b"/a b"] {
            assert_eq!(session_proto::file::check_path(&resolve(path, home)), Ok(()));
        }
    }

    #[test]
    fn paths_split_and_join() {
        assert_eq!(split(b"/srv/app.tar"), Some((&b"/srv"[..], &b"app.tar"[..])));
        assert_eq!(split(b"/app.tar"), Some((&b"/"[..], &b"app.tar"[..])));
        assert_eq!(split(b"/"), None);
        assert_eq!(join(b"/", b"x"), b"/x");
        assert_eq!(join(b"/srv", b"x"), b"/srv/x");
        assert!(names_directory(b"") && names_directory(b"/srv/") && !names_directory(b"/srv"));
    }

    #[test]
    fn partial_names_are_the_agents() {
        assert_eq!(partial_name(b"app.tar"), b".app.tar.session-partial");
        let long = vec![b'x'; 250];
        let short = partial_name(&long);
        assert!(short.len() <= NAME_MAX && short.starts_with(b".") && short.ends_with(PARTIAL_SUFFIX));
        assert_eq!(short.len(), 1 + 32 + PARTIAL_SUFFIX.len());
        assert_eq!(
            local_partial(std::path::Path::new("/tmp/d/a b")),
            Some(PathBuf::from("/tmp/d/.a b.session-partial"))
        );
    }
}
