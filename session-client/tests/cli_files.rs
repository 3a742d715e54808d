//! `session-client cp` and `ls` through the binary, against a real relay and agent (whose file
//! workers are the agent's own binary, as in production): files both ways with their SHA-256
//! equal, directories, overwrite refused then forced, names with spaces and bytes that are not
//! UTF-8, listings in words and JSON, a download and an upload resumed from a partial file,
//! and the exit codes that say what failed.
//!
//! The agent runs sessions as the user running the tests, on this machine: a remote path is a
//! path here too, which is how the tests look at what arrived.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use session_test_kit::{System, read_until};
use sha2::{Digest, Sha256};

/// Exit codes `cp` and `ls` document.
const NOT_FOUND: i32 = 3;
const DENIED: i32 = 4;
const EXISTS: i32 = 5;
const NO_SESSION: i32 = 255;

/// Runs the client with `args` as the holder of `token` at `url`; no profile, stdin empty.
fn client(url: &str, token: &str, args: &[OsString]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(args)
        .env("SESSION_RELAY", url)
        .env("SESSION_TOKEN", token)
        .env("SESSION_CONFIG", "/nonexistent")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the client runs")
}

/// The system's relay and agent, and what the tests ask of the client through them.
struct Files {
    system: System,
    instance: String,
    dir: tempfile::TempDir,
}

impl Files {
    async fn start(instance: &str) -> Files {
        let mut system = System::start(None).await;
        system.agent(instance).await;
        let dir =
            tempfile::Builder::new().prefix("session-client-files-").tempdir().expect("a scratch directory");
        Files { system, instance: instance.to_owned(), dir }
    }

    /// A path in the scratch directory, here and at the instance alike.
    fn path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `instance:path`.
    fn remote(&self, path: impl AsRef<Path>) -> OsString {
        let mut arg = OsString::from(format!("{}:", self.instance));
        arg.push(path.as_ref().as_os_str());
        arg
    }

    /// Runs the client as the user allowed everything, off the runtime's workers, which serve
    /// the relay and the agent it talks to.
    async fn run(&self, args: &[OsString]) -> Output {
        self.run_as(self.system.token(), args).await
    }

    async fn run_as(&self, token: &str, args: &[OsString]) -> Output {
        let (url, token, args) = (self.system.url.clone(), token.to_owned(), args.to_vec());
        tokio::task::spawn_blocking(move || client(&url, &token, &args)).await.expect("the client ran")
    }
}

fn args(parts: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bytes that differ from offset to offset, so that a misplaced chunk shows.
fn content(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn sha256_of(path: &Path) -> Vec<u8> {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The partial files left in `dir`.
fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".session-partial"))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_ok(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_mib_file_goes_up_and_comes_back_with_its_hash_and_no_bar_off_a_terminal() {
    let files = Files::start("files-1").await;
    let original = content(5 * 1024 * 1024 + 12_345);
    let local = files.path("big.bin");
    std::fs::write(&local, &original).unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o640)).unwrap();
    let up = files.path("up");
    std::fs::create_dir(&up).unwrap();

    // Into a directory given with a trailing slash: under its own name.
    let mut into = files.remote(&up);
    into.push("/");
    let out = files.run(&args(&[&"cp", &local, &into])).await;
    assert_ok(&out, "upload");
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", text(&out.stdout));
    // stderr is a pipe here: no bar, no escape sequence, nothing at all.
    assert!(out.stderr.is_empty(), "nothing on stderr: {:?}", text(&out.stderr));
    assert_eq!(sha256_of(&up.join("big.bin")), sha256(&original));
    assert_eq!(mode(&up.join("big.bin")), 0o640, "the mode goes with the file");
    assert!(partials(&up).is_empty(), "no partial file left: {:?}", partials(&up));

    // Back, into a directory here.
    let down = files.path("down");
    std::fs::create_dir(&down).unwrap();
    let out = files.run(&args(&[&"cp", &files.remote(up.join("big.bin")), &down])).await;
    assert_ok(&out, "download");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{}", text(&out.stderr));
    assert_eq!(sha256_of(&down.join("big.bin")), sha256(&original));
    assert!(partials(&down).is_empty(), "no partial file left: {:?}", partials(&down));

    // To a new name.
    let renamed = files.path("renamed.bin");
    let out = files.run(&args(&[&"cp", &files.remote(up.join("big.bin")), &renamed])).await;
    assert_ok(&out, "download to a name");
    assert_eq!(sha256_of(&renamed), sha256(&original));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_tree_is_copied_with_r_both_ways() {
    let files = Files::start("files-2").await;
    let tree = files.path("tree");
    for dir in ["", "a", "a/deep", "b", "empty"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    let contents = [
        ("top.txt", content(10)),
        ("a/one", content(70_000)),
        ("a/deep/two", content(1)),
        ("b/zero", vec![]),
    ];
    for (name, bytes) in &contents {
        std::fs::write(tree.join(name), bytes).unwrap();
    }
    let up = files.path("up");
    std::fs::create_dir(&up).unwrap();

    let out = files.run(&args(&[&"cp", &"-r", &tree, &files.remote(&up)])).await;
    assert_ok(&out, "upload -r");
    for (name, bytes) in &contents {
        assert_eq!(std::fs::read(up.join("tree").join(name)).unwrap(), *bytes, "{name}");
    }
    assert!(up.join("tree/empty").is_dir(), "empty directories too");

    // Without -r, a directory is refused, named.
    let out = files.run(&args(&[&"cp", &tree, &files.remote(&up)])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is a directory (-r"), "{}", text(&out.stderr));

    // Back to a directory that does not exist yet: it becomes the copy.
    let back = files.path("back");
    let out = files.run(&args(&[&"cp", &"-r", &files.remote(up.join("tree")), &back])).await;
    assert_ok(&out, "download -r");
    for (name, bytes) in &contents {
        assert_eq!(std::fs::read(back.join(name)).unwrap(), *bytes, "{name}");
    }
    assert!(back.join("empty").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_target_is_refused_unless_forced() {
    let files = Files::start("files-3").await;
    let (local, remote) = (files.path("new.txt"), files.path("remote.txt"));
    std::fs::write(&local, b"new").unwrap();
    std::fs::write(&remote, b"old").unwrap();

    let out = files.run(&args(&[&"cp", &local, &files.remote(&remote)])).await;
    assert_eq!(out.status.code(), Some(EXISTS), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("exists") && said.contains("--force"), "{said}");
    assert_eq!(std::fs::read(&remote).unwrap(), b"old", "not overwritten");

    let out = files.run(&args(&[&"cp", &"--force", &local, &files.remote(&remote)])).await;
    assert_ok(&out, "upload --force");
    assert_eq!(std::fs::read(&remote).unwrap(), b"new");

    // And here: a local file is not replaced either.
    std::fs::write(&remote, b"remote").unwrap();
    let out = files.run(&args(&[&"cp", &files.remote(&remote), &local])).await;
    assert_eq!(out.status.code(), Some(EXISTS), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--force"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&local).unwrap(), b"new", "not overwritten");
    let out = files.run(&args(&[&"cp", &"-f", &files.remote(&remote), &local])).await;
    assert_ok(&out, "download -f");
    assert_eq!(std::fs::read(&local).unwrap(), b"remote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_spaces_and_bytes_that_are_not_utf8_go_both_ways() {
    let files = Files::start("files-4").await;
    let name = OsString::from_vec(b"a b \xff\xfe.bin".to_vec());
    let dir = files.path("dir with space");
    std::fs::create_dir(&dir).unwrap();
    let local = files.path(&name);
    std::fs::write(&local, content(100_000)).unwrap();

    let out = files.run(&args(&[&"cp", &local, &files.remote(&dir)])).await;
    assert_ok(&out, "upload");
    assert_eq!(sha256_of(&dir.join(&name)), sha256_of(&local));

    let down = files.path("down");
    std::fs::create_dir(&down).unwrap();
    let out = files.run(&args(&[&"cp", &files.remote(dir.join(&name)), &down])).await;
    assert_ok(&out, "download");
    assert_eq!(sha256_of(&down.join(&name)), sha256_of(&local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_lists_sorted_with_long_lines_links_and_json() {
    let files = Files::start("files-5").await;
    let dir = files.path("listed");
    std::fs::create_dir(&dir).unwrap();
    for name in [&b"b"[..], b"a b", b"\xff", b".hidden"] {
        std::fs::write(dir.join(OsStr::from_bytes(name)), b"12345").unwrap();
    }
    std::fs::create_dir(dir.join("d")).unwrap();
    std::os::unix::fs::symlink("a b", dir.join("l")).unwrap();

    let out = files.run(&args(&[&"ls", &files.remote(&dir)])).await;
    assert_ok(&out, "ls");
    assert_eq!(out.stdout, b"a b\nb\nd\nl\n\xff\n", "sorted byte for byte, dot files left out");

    let out = files.run(&args(&[&"ls", &"-l", &files.remote(&dir)])).await;
    assert_ok(&out, "ls -l");
    let long = text(&out.stdout);
    let line =
        |name: &str| long.lines().find(|l| l.ends_with(name)).unwrap_or_else(|| panic!("{name}: {long}"));
    assert!(line(" b").starts_with("-rw") && line(" b").contains(" 5 "), "{long}");
    assert!(line(" d").starts_with('d'), "{long}");
    assert!(line("l -> a b").starts_with('l'), "a link shows its target: {long}");
    assert!(long.contains("Z a b\n"), "times in RFC 3339: {long}");

    let out = files.run(&args(&[&"-o", &"json", &"ls", &"-a", &files.remote(&dir)])).await;
    assert_ok(&out, "ls -o json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["path"].as_str(), dir.to_str());
    let entries = json["entries"].as_array().expect("entries");
    let names: Vec<&str> = entries.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, [".hidden", "a b", "b", "d", "l", "\u{fffd}"]);
    let by_name = |name: &str| entries.iter().find(|e| e["name"] == name).expect(name);
    assert_eq!(by_name("d")["kind"], "directory");
    assert_eq!(
        (by_name("l")["kind"].as_str(), by_name("l")["target"].as_str()),
        (Some("symlink"), Some("a b"))
    );
    assert_eq!((by_name("b")["kind"].as_str(), by_name("b")["size"].as_u64()), (Some("file"), Some(5)));
    assert_eq!(by_name("\u{fffd}")["name_hex"], "ff");
    let modified = by_name("b")["modified"].as_str().expect("a time");
    assert!(modified.len() == 20 && modified.ends_with('Z') && modified.as_bytes()[10] == b'T', "{modified}");

    // A file named to ls is shown alone; `instance:` is the home directory.
    let out = files.run(&args(&[&"ls", &files.remote(dir.join("b"))])).await;
    assert_ok(&out, "ls of a file");
    assert_eq!(text(&out.stdout).trim_end(), dir.join("b").to_str().unwrap());
    let out = files.run(&args(&[&"ls", &"-a", &format!("{}:", files.instance)])).await;
    assert_ok(&out, "ls of the home directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_resumes_from_its_partial_file_and_a_wrong_one_starts_over() {
    let files = Files::start("files-6").await;
    let original = content(4 * 1024 * 1024);
    let source = files.path("source.bin");
    std::fs::write(&source, &original).unwrap();
    let down = files.path("down");
    std::fs::create_dir(&down).unwrap();
    let half = original.len() / 2;
    let partial = down.join(".source.bin.session-partial");

    // What a cut download leaves: the first half.
    std::fs::write(&partial, &original[..half]).unwrap();
    let out = files.run(&args(&[&"-v", &"cp", &"--resume", &files.remote(&source), &down])).await;
    assert_ok(&out, "resumed download");
    assert_eq!(sha256_of(&down.join("source.bin")), sha256(&original));
    let log = text(&out.stderr);
    assert!(
        log.contains(&format!("continuing the download from byte {half}")),
        "only the rest was sent: {log}"
    );
    assert!(!partial.exists(), "the partial file became the target");

    // A partial file that is not a prefix of the source: the instance sends it all.
    std::fs::remove_file(down.join("source.bin")).unwrap();
    let mut wrong = original[..half].to_vec();
    wrong[10] ^= 1;
    std::fs::write(&partial, &wrong).unwrap();
    let out = files.run(&args(&[&"-v", &"cp", &"--resume", &files.remote(&source), &down])).await;
    assert_ok(&out, "download over a wrong partial file");
    assert_eq!(sha256_of(&down.join("source.bin")), sha256(&original));
    assert!(text(&out.stderr).contains("starting over"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_resumes_from_the_agents_partial_file() {
    let files = Files::start("files-7").await;
    let original = content(3 * 1024 * 1024 + 7);
    let local = files.path("app.tar");
    std::fs::write(&local, &original).unwrap();
    let up = files.path("up");
    std::fs::create_dir(&up).unwrap();
    // What the agent keeps of a cut upload (spec 12.11): the first part, under the partial name.
    let kept = 1024 * 1024 + 3;
    let partial = up.join(".app.tar.session-partial");
    std::fs::write(&partial, &original[..kept]).unwrap();
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = files.run(&args(&[&"-v", &"cp", &"--resume", &local, &files.remote(&up)])).await;
    assert_ok(&out, "resumed upload");
    assert_eq!(sha256_of(&up.join("app.tar")), sha256(&original));
    let log = text(&out.stderr);
    assert!(log.contains(&format!("continuing the upload from byte {kept}")), "{log}");
    assert!(partials(&up).is_empty(), "{:?}", partials(&up));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_not_found_permission_denied_and_no_session() {
    let mut files = Files::start("files-8").await;
    let missing = files.path("missing");

    let out = files.run(&args(&[&"cp", &files.remote(&missing), &files.path("x")])).await;
    assert_eq!(out.status.code(), Some(NOT_FOUND), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("files-8"), "the instance is named: {}", text(&out.stderr));
    assert!(!files.path("x").exists() && partials(files.dir.path()).is_empty());
    let out = files.run(&args(&[&"cp", &missing, &files.remote(files.path("y"))])).await;
    assert_eq!(out.status.code(), Some(NOT_FOUND), "{}", text(&out.stderr));
    let out = files.run(&args(&[&"ls", &files.remote(&missing)])).await;
    assert_eq!(out.status.code(), Some(NOT_FOUND), "{}", text(&out.stderr));

    // A file the login user may not read. Root reads anything: then an agent whose sessions run
    // as nobody tries, on a file in a directory only root may enter.
    let secret = files.path("secret");
    std::fs::write(&secret, b"secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let reader = if is_root() {
        match session_agent::LoginUser::resolve(Some("nobody"), false) {
            Ok(nobody) => {
                let url = files.system.url.clone();
                files.system.agent_as("files-8-nobody", &url, nobody).await;
                Some(OsString::from("files-8-nobody:"))
            }
            Err(_) => None,
        }
    } else {
        Some(OsString::from("files-8:"))
    };
    if let Some(mut remote) = reader {
        remote.push(&secret);
        let out = files.run(&args(&[&"cp", &remote, &files.path("stolen")])).await;
        assert_eq!(out.status.code(), Some(DENIED), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("permission denied"), "{}", text(&out.stderr));
        assert!(!files.path("stolen").exists());
    }

    // A user whose policy allows shells but no file action: refused by the relay.
    let shells =
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"session:StartSession","Resource":"*"}]}"#;
    let shell_only = files.system.user("shell-only", shells);
    let out =
        files.run_as(&shell_only.token, &args(&[&"cp", &files.remote(&secret), &files.path("z")])).await;
    assert_eq!(out.status.code(), Some(NO_SESSION), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("refused"), "{}", text(&out.stderr));
    let out = files.run_as(&shell_only.token, &args(&[&"ls", &files.remote(files.dir.path())])).await;
    assert_eq!(out.status.code(), Some(NO_SESSION), "{}", text(&out.stderr));

    // Unknown instance: no session at all.
    let out = files.run(&args(&[&"cp", &"nowhere:/etc/hosts", &files.path("h")])).await;
    assert_eq!(out.status.code(), Some(NO_SESSION), "{}", text(&out.stderr));

    // Usage: both sides here.
    let out = files.run(&args(&[&"cp", &"a", &"b"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_allows_writing_under_a_directory_and_nothing_else_is_followed() {
    let files = Files::start("files-11").await;
    let (up, elsewhere) = (files.path("up"), files.path("elsewhere"));
    std::fs::create_dir(&up).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    let local = files.path("app.tar");
    std::fs::write(&local, content(200_000)).unwrap();
    // No session:ListFiles: the client may not even look at the directory it writes into.
    let policy = format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"session:WriteFile","Resource":"*",
            "Condition":{{"StringLike":{{"session:FilePath":"{}/*"}}}}}}]}}"#,
        up.display()
    );
    let writer = files.system.user("writer", &policy);

    let mut into = files.remote(&up);
    into.push("/");
    let out = files.run_as(&writer.token, &args(&[&"cp", &local, &into])).await;
    assert_ok(&out, "an upload under the allowed directory");
    assert_eq!(sha256_of(&up.join("app.tar")), sha256_of(&local));

    let mut outside = files.remote(&elsewhere);
    outside.push("/");
    let out = files.run_as(&writer.token, &args(&[&"cp", &local, &outside])).await;
    assert_eq!(out.status.code(), Some(NO_SESSION), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("session:WriteFile"), "the refusal names what: {}", text(&out.stderr));
    assert!(!elsewhere.join("app.tar").exists());

    let out = files
        .run_as(&writer.token, &args(&[&"cp", &files.remote(up.join("app.tar")), &files.path("back")]))
        .await;
    assert_eq!(out.status.code(), Some(NO_SESSION), "no reading: {}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_is_drawn_on_a_terminal() {
    let files = Files::start("files-9").await;
    let local = files.path("bar.bin");
    std::fs::write(&local, content(2 * 1024 * 1024)).unwrap();
    let up = files.path("up");
    std::fs::create_dir(&up).unwrap();
    let (mut pty, pts) = pty_process::open().expect("a pty");
    pty.resize(pty_process::Size::new(24, 120)).expect("size");
    let mut child = pty_process::Command::new(env!("CARGO_BIN_EXE_session-client"))
        .arg("cp")
        .arg(&local)
        .arg(files.remote(&up))
        .env("SESSION_RELAY", &files.system.url)
        .env("SESSION_TOKEN", files.system.token())
        .env("SESSION_CONFIG", "/nonexistent")
        .spawn(pts)
        .expect("the client runs");
    let mut seen = String::new();
    // The finished file's line, where its bar was: its name and its size.
    read_until(&mut pty, &mut seen, "bar.bin  2.00 MiB").await;
    let status = tokio::time::timeout(core::time::Duration::from_secs(30), child.wait())
        .await
        .expect("the copy ends")
        .expect("an exit status");
    assert_eq!(status.code(), Some(0), "{seen}");
    assert!(seen.contains("bar.bin"), "{seen}");
    assert_eq!(sha256_of(&up.join("bar.bin")), sha256_of(&local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_names_the_session_on_stderr_once_the_shell_is_accepted() {
    use tokio::io::AsyncWriteExt;
    let files = Files::start("files-10").await;
    let (mut pty, pts) = pty_process::open().expect("a pty");
    // stdin and stderr the terminal, stdout a pipe: the banner must not be in the output.
    let mut child = pty_process::Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(["connect", "files-10"])
        .env("SESSION_RELAY", &files.system.url)
        .env("SESSION_TOKEN", files.system.token())
        .env("SESSION_CONFIG", "/nonexistent")
        .stdout(Stdio::piped())
        .spawn(pts)
        .expect("the client runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = String::new();
    read_until(&mut pty, &mut seen, "; ~. to leave").await;
    let banner = seen.lines().find(|l| l.contains("~. to leave")).unwrap_or_default().trim().to_owned();
    let id = banner.strip_prefix("session ").and_then(|rest| rest.strip_suffix(" on files-10; ~. to leave"));
    let id = id.unwrap_or_else(|| panic!("the banner names a session: {banner:?}"));
    let listed = files.system.client.sessions().await.expect("sessions");
    assert!(listed["sessions"].as_array().is_some_and(|s| s.iter().any(|s| s["id"] == id)), "{id}: {listed}");

    pty.write_all(b"exit 3\r").await.unwrap();
    let status = tokio::time::timeout(core::time::Duration::from_secs(10), child.wait())
        .await
        .expect("the client ends with the shell")
        .expect("an exit status");
    assert_eq!(status.code(), Some(3));
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await.unwrap();
    assert!(!text(&out).contains("~. to leave"), "never on stdout: {}", text(&out));
}

#[test]
fn cp_and_ls_help_give_examples_and_exit_codes() {
    for command in ["cp", "ls"] {
        let out =
            Command::new(env!("CARGO_BIN_EXE_session-client")).args([command, "--help"]).output().unwrap();
        let help = text(&out.stdout);
        assert!(help.contains("Examples:") && help.contains("Exit status:"), "{command}: {help}");
        assert!(help.contains("3 not found") && help.contains("255"), "{command}: {help}");
    }
}
