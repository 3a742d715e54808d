//! `session-client ls instance:path`: a directory's entries, sorted by name byte for byte, or
//! the one entry of a path that is not a directory (as `ls` shows a file named to it).
//!
//! Names go to stdout as the bytes they are, one per line. `-l` adds the mode (as `ls -l`
//! writes it), the size in bytes and the modification time in RFC 3339 (UTC), and a symbolic
//! link's target after `->`. `-o json` prints one object, `{"path": ..., "entries": [...]}`,
//! times in RFC 3339 as the other listings print them; a name that is not UTF-8 is given with
//! U+FFFD in `name` and exactly in `name_hex`. Names starting with `.` are left out unless
//! `-a` is given.

use std::ffi::OsString;
use std::io::Write;

use serde_json::{Value, json};
use session_client::{Connection, OUTPUT_CLOSED_EXIT, Relay};
use session_proto::{EntryKind, FileError};

use super::Failure;
use super::paths::{self, Location};
use super::remote::{Remote, RemoteEntry};
use crate::output::{self, Format};

/// `ls`'s flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) long: bool,
    pub(crate) all: bool,
    pub(crate) format: Format,
}

/// Lists `arg` as `options` say; the exit code, a failure said on stderr.
pub(crate) async fn ls(relay: &Relay, arg: &OsString, options: Options) -> i32 {
    match list(relay, arg, options).await {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("session-client: {failure}");
            failure.exit_code()
        }
    }
}

async fn list(relay: &Relay, arg: &OsString, options: Options) -> Result<i32, Failure> {
    let Location::Remote { instance, path: typed } = Location::parse(arg) else {
        return Err(Failure::Usage(format!("{}: expected instance:path", arg.to_string_lossy())));
    };
    let connection = Connection::connect(relay, &instance).await?;
    let remote = Remote::new(connection.clone(), &instance);
    let listed = async {
        let path = remote.resolve(&typed).await?;
        // A directory (or a link to one: List follows links) is listed; anything else is
        // shown as its own entry, named as it was asked for.
        let entries = match remote.list(&path).await {
            Ok(entries) => entries,
            Err(Failure::Remote { error: FileError::NOT_A_DIRECTORY, .. }) => match remote.stat(&path).await?
            {
                Some(entry) => vec![RemoteEntry { name: path.clone(), ..entry }],
                None => {
                    return Err(remote.failed(
                        FileError::NOT_FOUND,
                        &format!("not found: {}", paths::shown(&instance, &path)),
                    ));
                }
            },
            Err(failure) => return Err(failure),
        };
        Ok((path, entries))
    };
    let result = listed.await;
    connection.close().await;
    let (path, mut entries) = result?;
    if !options.all {
        entries.retain(|e| !e.name.starts_with(b"."));
    }
    let text = match options.format {
        Format::Json => {
            let mut text = serde_json::to_vec(&to_json(&path, &entries)).unwrap_or_default();
            text.push(b'\n');
            text
        }
        Format::Table if options.long => long(&entries),
        Format::Table => entries.iter().flat_map(|e| [&e.name[..], b"\n"].concat()).collect(),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&text).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        // A reader that had enough (`| head`): as a process killed by SIGPIPE, quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(OUTPUT_CLOSED_EXIT),
        Err(e) => Err(Failure::local("stdout", e)),
    }
}

/// `-l`: mode, size, time, name (and a link's target), the sizes aligned.
fn long(entries: &[RemoteEntry]) -> Vec<u8> {
    let width = entries.iter().map(|e| e.size.to_string().len()).max().unwrap_or(1);
    let mut out = Vec::new();
    for entry in entries {
        let time = output::rfc3339(i64::try_from(entry.mtime).unwrap_or(i64::MAX));
        out.extend_from_slice(format!("{} {:>width$} {time} ", mode_string(entry), entry.size).as_bytes());
        out.extend_from_slice(&entry.name);
        if entry.kind == EntryKind::SYMLINK {
            out.extend_from_slice(b" -> ");
            out.extend_from_slice(&entry.target);
        }
        out.push(b'\n');
    }
    out
}

/// The mode as `ls -l` writes it: `drwxr-xr-x`, `-rwsr-x--T`.
fn mode_string(entry: &RemoteEntry) -> String {
    let kind = match entry.kind {
        EntryKind::FILE => '-',
        EntryKind::DIRECTORY => 'd',
        EntryKind::SYMLINK => 'l',
        _ => '?',
    };
    let mode = entry.mode;
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    // The execute place shows set-id and sticky bits, lower case when executable too.
    let special =
        |exec: u32, special: u32, set: char, unset: char| match (mode & exec != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

fn to_json(path: &[u8], entries: &[RemoteEntry]) -> Value {
    let entries: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let mut object = json!({
                "name": String::from_utf8_lossy(&entry.name),
                "kind": match entry.kind {
                    EntryKind::FILE => "file",
                    EntryKind::DIRECTORY => "directory",
                    EntryKind::SYMLINK => "symlink",
                    _ => "other",
                },
                "size": entry.size,
                "mode": format!("{:04o}", entry.mode),
                "modified": output::rfc3339(i64::try_from(entry.mtime).unwrap_or(i64::MAX)),
            });
            if let Some(object) = object.as_object_mut() {
                if core::str::from_utf8(&entry.name).is_err() {
                    object.insert("name_hex".into(), Value::String(hex(&entry.name)));
                }
                if entry.kind == EntryKind::SYMLINK {
                    object.insert(
                        "target".into(),
                        Value::String(String::from_utf8_lossy(&entry.target).into()),
                    );
                }
            }
            object
        })
        .collect();
    json!({ "path": String::from_utf8_lossy(path), "entries": entries })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], kind: EntryKind, mode: u32) -> RemoteEntry {
        RemoteEntry {
            name: name.to_vec(),
            kind,
            size: 42,
            mode,
            mtime: 1_767_225_600,
            target: b"../t".to_vec(),
        }
    }

    #[test]
    fn modes_read_as_ls_writes_them() {
        assert_eq!(mode_string(&entry(b"d", EntryKind::DIRECTORY, 0o755)), "drwxr-xr-x");
        assert_eq!(mode_string(&entry(b"f", EntryKind::FILE, 0o4750)), "-rwsr-x---");
        assert_eq!(mode_string(&entry(b"f", EntryKind::FILE, 0o1644)), "-rw-r--r-T");
        assert_eq!(mode_string(&entry(b"l", EntryKind::SYMLINK, 0o777)), "lrwxrwxrwx");
    }

    #[test]
    fn long_lines_have_mode_size_time_name_and_target() {
        let text = long(&[entry(b"a b", EntryKind::FILE, 0o644), entry(b"l", EntryKind::SYMLINK, 0o777)]);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "-rw-r--r-- 42 2026-01-01T00:00:00Z a b\nlrwxrwxrwx 42 2026-01-01T00:00:00Z l -> ../t\n"
        );
    }

    #[test]
    fn json_names_bytes_that_are_not_utf8_exactly() {
        let json = to_json(b"/srv", &[entry(b"\xff.bin", EntryKind::FILE, 0o644)]);
        assert_eq!(json["path"], "/srv");
        assert_eq!(json["entries"][0]["name"], "\u{fffd}.bin");
        assert_eq!(json["entries"][0]["name_hex"], "ff2e62696e");
        assert_eq!(json["entries"][0]["modified"], "2026-01-01T00:00:00Z");
        assert_eq!(json["entries"][0]["mode"], "0644");
        assert_eq!(json["entries"][0]["kind"], "file");
    }
}
