//! `session-client proxy` as OpenSSH's ProxyCommand, end to end with Debian's real `sshd`,
//! `ssh`, `scp` and `rsync`: the sshd listens on a loopback port that only the agent reaches,
//! and every ssh connection goes client → relay → agent → sshd through the `session-client`
//! binary. Also the proxy on its own: its half-close, and its refusals, on stderr alone.
//!
//! The sshd is this test's own: a new host key, public-key login of the user running the test
//! with a new client key, on a free port of 127.0.0.1, with its configuration, keys and log in a
//! temporary directory. It runs as whoever runs the test (root in CI, which `.ci/run` runs the
//! tests as). As root it needs `/run/sshd`, its privilege separation directory, which this test
//! makes if it is missing, as Debian's service does when it starts. As another user it needs
//! no privilege: sshd then logs in only that user, the one the test logs in as, and not if it
//! finds the account locked (it logs `account is locked`; `nobody` is); a failed login says so,
//! with sshd's log. Without OpenSSH and rsync the ssh tests fail, saying what to install:
//! nothing here passes without having run.

use core::time::Duration;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Instant;

use session_agent::forward_rules::{ForwardRules, Rule};
use session_test_kit::{Echo, System};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// What the ssh tests run: Debian's packages `openssh-server`, `openssh-client` and `rsync`.
const TOOLS: [&str; 5] =
    ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/scp", "/usr/bin/ssh-keygen", "/usr/bin/rsync"];

/// The size of the file copied each way: tens of megabytes, a bulk transfer.
const BULK: usize = 20 << 20;

/// A bound on each program run, so that a hang fails the test instead of stalling it. Not a
/// measure of speed.
const BOUND: Duration = Duration::from_secs(120);

/// The `session-client` binary (test-kit's `client_binary`), from a test's runtime: when it is
/// not beside the tests, the build may take minutes, and the relay and the agent go on meanwhile.
async fn client() -> &'static Path {
    tokio::task::spawn_blocking(session_test_kit::binaries::client_binary).await.expect("the client binary")
}

/// Runs `command` to its end within [`BOUND`], killing it if it takes longer.
async fn run(command: &mut Command) -> Output {
    let child = command.kill_on_drop(true).stdin(Stdio::null()).output();
    match tokio::time::timeout(BOUND, child).await {
        Ok(out) => out.expect("the program runs"),
        Err(_) => panic!("{command:?} did not end within {BOUND:?}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The SHA-256 of a file's content.
fn sha256(path: &Path) -> [u8; 32] {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf).expect("read") {
            0 => return hash.finalize().into(),
            n => hash.update(&buf[..n]),
        }
    }
}

/// A new file of `len` random bytes.
fn random_file(path: &Path, len: usize) {
    let mut random = std::fs::File::open("/dev/urandom").expect("/dev/urandom").take(len as u64);
    let mut file = std::fs::File::create(path).expect("a file");
    assert_eq!(std::io::copy(&mut random, &mut file).expect("random bytes written"), len as u64);
}

/// The name of the user running the test: the one sshd lets log in.
fn login_name() -> String {
    let out = std::process::Command::new("id").arg("-un").output().expect("id runs");
    text(&out.stdout).trim().to_owned()
}

/// An sshd of the test's own, and an ssh configuration reaching it two ways: as host `web-1`
/// through `session-client proxy`, and as host `direct` straight to its port, for comparison.
struct Sshd {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts one, and waits until it listens.
    fn start() -> Sshd {
        let missing: Vec<&str> = TOOLS.into_iter().filter(|tool| !Path::new(tool).exists()).collect();
        assert!(
            missing.is_empty(),
            "{missing:?} missing: the ssh tests need Debian's OpenSSH and rsync \
             (as root: apt-get install openssh-server openssh-client rsync; `bash .ci/run` does)"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        for key in ["host_key", "client_key"] {
            let path = dir.path().join(key);
            let made = std::process::Command::new("/usr/bin/ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
                .arg(&path)
                .output()
                .expect("ssh-keygen runs");
            assert!(made.status.success(), "ssh-keygen: {}", text(&made.stderr));
        }
        std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys"))
            .expect("authorized_keys");
        if is_root() && !Path::new("/run/sshd").exists() {
            // sshd as root confines its unprivileged child to this empty directory.
            std::fs::create_dir_all("/run/sshd").expect("/run/sshd made");
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let d = dir.path().display();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey {d}/host_key\n\
             PidFile none\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             AuthenticationMethods publickey\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n"
        );
        std::fs::write(dir.path().join("sshd_config"), config).expect("sshd_config");
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("sshd.log");
        let child = std::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let mut sshd = Sshd { child, port, dir };
        let started = Instant::now();
        while !sshd.log().contains(&format!("Server listening on 127.0.0.1 port {port}")) {
            let ended = sshd.child.try_wait().expect("sshd's status");
            assert!(
                ended.is_none() && started.elapsed() < Duration::from_secs(10),
                "sshd did not start ({ended:?}): {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    /// What sshd logged, for the messages of failed assertions.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the ssh configuration, for `-F`: host `web-1` through the relay at `relay` (the
    /// ProxyCommand's `%h` is the instance), and `direct`. It is what a user would put in
    /// `~/.ssh/config`, but that the key, the known hosts and the port are the test's.
    fn client_config(&self, client: &Path, relay: &str) -> PathBuf {
        let (d, port, client) = (self.dir.path().display(), self.port, client.display());
        let config = format!(
            "Host web-1\n  \
               ProxyCommand {client} --relay {relay} proxy %h 127.0.0.1:{port}\n\
             Host direct\n  \
               HostName 127.0.0.1\n  \
               Port {port}\n\
             Host *\n  \
               User {user}\n  \
               IdentityFile {d}/client_key\n  \
               IdentitiesOnly yes\n  \
               UserKnownHostsFile {d}/known_hosts\n  \
               GlobalKnownHostsFile /dev/null\n  \
               StrictHostKeyChecking accept-new\n  \
               BatchMode yes\n  \
               LogLevel ERROR\n",
            user = login_name(),
        );
        let path = self.path("ssh_config");
        std::fs::write(&path, config).expect("ssh_config");
        path
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the test runs as root, for whom sshd needs its privilege separation directory.
fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().expect("id runs");
    text(&out.stdout).trim() == "0"
}

/// A relay with an agent `web-1` online, an sshd on the instance's loopback, and the ssh
/// configuration that reaches it.
struct Setup {
    system: System,
    sshd: Sshd,
    config: PathBuf,
}

impl Setup {
    async fn start() -> Setup {
        let sshd = tokio::task::spawn_blocking(Sshd::start).await.expect("sshd");
        let client = client().await;
        let mut system = System::start(None).await;
        system.agent("web-1").await;
        let config = sshd.client_config(client, &system.url);
        Setup { system, sshd, config }
    }

    /// `ssh`, `scp` (or anything taking `-F`) with the test's configuration, and the token in
    /// its environment for its ProxyCommand.
    fn tool(&self, tool: &str) -> Command {
        let mut command = Command::new(tool);
        command.arg("-F").arg(&self.config).env("SESSION_TOKEN", self.system.token());
        command
    }

    /// What a failed run needs explained: what it printed, and what sshd logged.
    fn explain(&self, out: &Output) -> String {
        let hint = if is_root() {
            ""
        } else {
            "\n(not root: sshd logs in only the user running it, and not if its account is locked; \
             as root, `bash .ci/run` runs these tests)"
        };
        format!("{:?}\nstderr: {}\nsshd's log:\n{}{hint}", out.status, text(&out.stderr), self.sshd.log())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_through_the_proxy_runs_a_command_and_passes_its_exit_code() {
    let setup = Setup::start().await;
    let out = run(setup.tool("ssh").args(["web-1", "echo ok; exit 3"])).await;
    assert_eq!(text(&out.stdout), "ok\n", "{}", setup.explain(&out));
    assert_eq!(out.status.code(), Some(3), "ssh passes the remote exit code");
    assert!(out.stderr.is_empty(), "nothing from the proxy on a success: {}", text(&out.stderr));
    // The host key was learnt under the instance's name: the next login checks it.
    let known = std::fs::read_to_string(setup.sshd.path("known_hosts")).expect("known_hosts");
    assert!(known.starts_with("web-1 ssh-ed25519 "), "{known}");
    let out = run(setup.tool("ssh").args(["web-1", "true"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", setup.explain(&out));
}

/// Times one scp of `from` to `to`, asserting it succeeded.
async fn scp(setup: &Setup, from: &str, to: &str) -> Duration {
    let started = Instant::now();
    let out = run(setup.tool("scp").args(["-q", from, to])).await;
    let took = started.elapsed();
    assert!(out.status.success(), "scp {from} {to}: {}", setup.explain(&out));
    took
}

fn rate(took: Duration) -> String {
    format!("{:.2} s, {:.0} MB/s", took.as_secs_f64(), BULK as f64 / 1e6 / took.as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_through_the_proxy_copies_tens_of_megabytes_both_ways_intact() {
    let setup = Setup::start().await;
    let original = setup.sshd.path("original");
    random_file(&original, BULK);
    let expected = sha256(&original);
    let mut took = Vec::new();
    // Through the proxy, and straight to sshd's port for comparison in the test's output.
    for host in ["web-1", "direct"] {
        let (there, back) =
            (setup.sshd.path(&format!("{host}-there")), setup.sshd.path(&format!("{host}-back")));
        let remote = format!("{host}:{}", there.display());
        took.push(scp(&setup, &original.display().to_string(), &remote).await);
        took.push(scp(&setup, &remote, &back.display().to_string()).await);
        assert_eq!(sha256(&there), expected, "copied to {host} intact");
        assert_eq!(sha256(&back), expected, "copied back from {host} intact");
    }
    println!(
        "scp of {} MiB through the proxy: up {}, down {}; straight to sshd: up {}, down {}",
        BULK >> 20,
        rate(took[0]),
        rate(took[1]),
        rate(took[2]),
        rate(took[3])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsync_over_ssh_through_the_proxy_copies_a_file_intact() {
    let setup = Setup::start().await;
    let original = setup.sshd.path("original");
    random_file(&original, 4 << 20);
    let shell = format!("/usr/bin/ssh -F {}", setup.config.display());
    let there = format!("web-1:{}", setup.sshd.path("synced").display());
    let back = setup.sshd.path("back").display().to_string();
    for (from, to) in [(original.display().to_string(), there.clone()), (there, back)] {
        let out = run(Command::new("/usr/bin/rsync")
            .args(["-a", "-e", &shell, &from, &to])
            .env("SESSION_TOKEN", setup.system.token()))
        .await;
        assert!(out.status.success(), "rsync {from} {to}: {}", setup.explain(&out));
    }
    let expected = sha256(&original);
    assert_eq!(sha256(&setup.sshd.path("synced")), expected, "sent intact");
    assert_eq!(sha256(&setup.sshd.path("back")), expected, "received intact");
}

/// Runs `session-client proxy <instance> <target>` with `input` on its stdin, as the holder of
/// `token`, and returns what it printed and its status.
async fn proxy(system: &System, token: &str, instance: &str, target: &str, input: Vec<u8>) -> Output {
    let mut child = spawn_proxy(&system.url, token, &["proxy", instance, target]).await;
    let mut stdin = child.stdin.take().expect("stdin");
    // Written while the output is read: an echo sends back as it receives.
    let writing = tokio::spawn(async move {
        // A refused proxy reads none of it.
        let _ = stdin.write_all(&input).await;
    });
    let out = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .expect("the proxy ends")
        .expect("its output");
    writing.await.expect("input written");
    out
}

/// The client binary with `args`, dialing `relay` with `token`, its stdio piped.
async fn spawn_proxy(relay: &str, token: &str, args: &[&str]) -> tokio::process::Child {
    Command::new(client().await)
        .args(["--relay", relay])
        .args(args)
        .env("SESSION_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client binary runs")
}

/// Sends `line` into a running proxy to an echo, and reads it back.
async fn echoed(child: &mut tokio::process::Child, line: &[u8]) {
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin.write_all(line).await.expect("written to the proxy");
    let mut back = vec![0u8; line.len()];
    let stdout = child.stdout.as_mut().expect("stdout");
    tokio::time::timeout(BOUND, stdout.read_exact(&mut back)).await.expect("echoed").expect("read back");
    assert_eq!(back, line);
}

/// The end of stdin reaches the target as a half-close, which the echo answers by ending its
/// side, after echoing all of it: the proxy then exits 0 with stdout carrying every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_stdin_half_closes_and_the_proxy_exits_0_once_both_directions_ended() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let echo = Echo::start().await;
    let mut payload = vec![0u8; 4 << 20];
    std::fs::File::open("/dev/urandom").expect("/dev/urandom").read_exact(&mut payload).expect("random");
    let out = proxy(&system, system.token(), "web-1", &echo.port.to_string(), payload.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout == payload,
        "the echo came back whole ({} of {} bytes)",
        out.stdout.len(),
        payload.len()
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert_eq!(echo.accepted(), 1);
}

/// Asserts a refused proxy: exit 255, nothing on stdout (which is the TCP stream), and one line
/// on stderr, the error, containing `says`.
fn refused(out: &Output, says: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    failed(out, says);
}

/// Asserts a proxy that failed: exit 255, nothing on stdout, and its error as the last line on
/// stderr, containing `says`, after what it may have logged on the way.
fn failed(out: &Output, says: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout is the stream: {:?}", text(&out.stdout));
    let last = stderr.strip_suffix('\n').and_then(|s| s.lines().last()).unwrap_or_default();
    assert!(last.starts_with("session-client: ") && last.contains(says), "{says:?} in {stderr:?}");
    let errors = stderr.lines().filter(|line| line.starts_with("session-client: ")).count();
    assert_eq!(errors, 1, "the error in one line: {stderr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_proxy_exits_255_saying_what_refused_and_prints_nothing_on_stdout() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let token = system.token().to_owned();
    let input = || b"SSH-2.0-OpenSSH_9.2\r\n".to_vec();

    // Nothing listens there: the agent's connect fails.
    let closed = session_test_kit::ClosedPort::new();
    let port = closed.port;
    let out = proxy(&system, &token, "web-1", &port.to_string(), input()).await;
    refused(
        &out,
        &format!(
            "proxy to 127.0.0.1:{port} on web-1: the instance could not connect (CONNECT_FAILED): 127.0.0.1:{port}: "
        ),
    );

    // The agent's forward rules deny the port: refused before any connection.
    let echo = Echo::start().await;
    let deny: Rule = format!("127.0.0.1:{}", echo.port).parse().expect("a rule");
    system.agent_with("web-2", |config| config.forward = ForwardRules::new(Vec::new(), vec![deny])).await;
    let target = format!("127.0.0.1:{}", echo.port);
    let out = proxy(&system, &token, "web-2", &target, input()).await;
    refused(
        &out,
        &format!(
            "proxy to {target} on web-2: not allowed (PROHIBITED): {target} is not allowed by this agent"
        ),
    );
    assert_eq!(echo.accepted(), 0);

    // A user whose policies allow sessions but no port forward: the relay refuses.
    let policy = r#"{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "session:StartSession",
                    "Resource": "*"}]}"#;
    let alice = system.user("alice", policy);
    let out = proxy(&system, &alice.token, "web-1", &target, input()).await;
    refused(&out, "not allowed (PROHIBITED): alice may not session:StartPortForward on srn:session:");
    assert!(text(&out.stderr).contains("no policy allows it"), "{}", text(&out.stderr));
    assert_eq!(echo.accepted(), 0);

    // No such instance: the relay refuses the connection itself.
    let out = proxy(&system, &token, "nowhere", "22", input()).await;
    refused(&out, "unknown instance nowhere");

    // A target that is no port.
    let out = proxy(&system, &token, "web-1", "ssh", input()).await;
    refused(&out, "ssh: expected [host:]port");
}

/// A cut connection to the relay is dialed again and the channel re-attached: the TCP stream
/// goes on as if nothing happened, so an ssh session outlives a network change. With
/// `--reattach-for 0`, the proxy exits 255 instead, saying so in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_re_attaches_after_a_cut_and_exits_255_once_the_relay_is_lost_for_good() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let echo = Echo::start().await;
    let cut = session_test_kit::Proxy::start(system.relay.addr).await;
    let (url, port) = (format!("ws://{}", cut.addr), echo.port.to_string());

    let mut child = spawn_proxy(&url, system.token(), &["proxy", "web-1", &port]).await;
    echoed(&mut child, b"before the cut\n").await;
    assert_eq!(cut.cut(), 1, "the proxy's one connection to the relay");
    echoed(&mut child, b"after the cut\n").await;
    drop(child.stdin.take());
    let out = tokio::time::timeout(BOUND, child.wait_with_output()).await.expect("it ends").expect("output");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Its stderr may tell of the re-attach.
    assert!(out.stdout.is_empty(), "{out:?}");

    let mut child =
        spawn_proxy(&url, system.token(), &["--reattach-for", "0", "proxy", "web-1", &port]).await;
    echoed(&mut child, b"before the cut\n").await;
    assert_eq!(cut.cut(), 1);
    let out = tokio::time::timeout(BOUND, child.wait_with_output()).await.expect("it ends").expect("output");
    failed(&out, &format!("proxy to 127.0.0.1:{port} on web-1: the connection to the relay ended"));
}

/// ssh sends its ProxyCommand a HUP as it leaves: the proxy then closes its channel, so the
/// connection at the instance ends at once, rather than waiting for the re-attach the relay
/// would otherwise keep the session for; and it exits as a process ended by HUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_closes_the_channel_and_the_connection_at_the_instance() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a target");
    let port = listener.local_addr().expect("its address").port().to_string();
    let (ended, mut ends) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("the agent connects");
        let mut buf = vec![0u8; 1 << 16];
        // An echo that never half-closes: only a close of the channel ends its connection.
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            if stream.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = ended.send(());
    });

    let mut child = spawn_proxy(&system.url, system.token(), &["proxy", "web-1", &port]).await;
    echoed(&mut child, b"hello\n").await;
    assert!(ends.try_recv().is_err(), "the target's connection is up");
    let pid = child.id().expect("a pid").to_string();
    let sent = std::process::Command::new("kill").args(["-HUP", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let out = tokio::time::timeout(BOUND, child.wait_with_output()).await.expect("it ends").expect("output");
    assert_eq!(out.status.code(), Some(128 + 1), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "quietly: {}", text(&out.stderr));
    tokio::time::timeout(Duration::from_secs(5), ends)
        .await
        .expect("the connection at the instance ended with the channel")
        .expect("the target ran");
}
