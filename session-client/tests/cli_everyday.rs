//! What a person uses every day, through the binary: listings in words or JSON, profiles, the
//! `~.` escape on a real terminal, a shell without a terminal, and shell completions.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use session_test_kit::{System, read_until};

/// Runs the client with `args`, `env` and `stdin`; no relay or token unless `env` says.
fn client(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-client"));
    command
        .args(args)
        .env_remove("SESSION_TOKEN")
        .env_remove("SESSION_RELAY")
        .env("SESSION_CONFIG", "/nonexistent");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client runs");
    child.stdin.take().expect("stdin").write_all(stdin).expect("input written");
    child.wait_with_output().expect("the client ends")
}

/// [`client`] off the runtime's workers, which serve the relay and agent it talks to.
async fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        client(&args, &env, &stdin)
    })
    .await
    .expect("the client ran")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn system_with(name: &str) -> System {
    let mut system = System::start(None).await;
    system.agent(name).await;
    system
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_say_times_in_words_or_in_rfc3339_json() {
    let system = system_with("every-1").await;
    let env = [("SESSION_RELAY", system.url.as_str()), ("SESSION_TOKEN", system.token())];
    let table = run(&["list"], &env, b"").await;
    let table = text(&table.stdout);
    let row = table.lines().find(|l| l.starts_with("every-1")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("online") && row.contains("just now"), "{row}");

    let env = [("SESSION_RELAY", system.url.as_str()), ("SESSION_TOKEN", system.token())];
    let json = run(&["-o", "json", "list"], &env, b"").await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let seen = json["instances"][0]["last_seen"].as_str().unwrap();
    // 2026-12-02T14:07:43Z
    assert!(seen.len() == 20 && seen.ends_with('Z') && seen.as_bytes()[10] == b'T', "{seen}");

    let env = [("SESSION_RELAY", system.url.as_str()), ("SESSION_TOKEN", system.token())];
    let sessions = run(&["-o", "json", "sessions"], &env, b"").await;
    assert_eq!(text(&sessions.stdout).trim(), r#"{"sessions":[]}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_gives_the_relay_and_the_token_and_an_unknown_one_is_refused() {
    let system = system_with("every-2").await;
    let dir = std::env::temp_dir().join(format!("session-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("lab.token");
    std::fs::write(&token_file, system.token()).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.lab]\nrelay = \"{}\"\ntoken_file = \"{}\"\n", system.url, token_file.display()),
    )
    .unwrap();
    let config = config.display().to_string();

    let path = config.as_str();
    let out = run(
        &["--profile", "lab", "exec", "every-2", "--", "echo via-profile"],
        &[("SESSION_CONFIG", path)],
        b"",
    )
    .await;
    assert_eq!(
        (text(&out.stdout).as_str(), out.status.code()),
        ("via-profile\n", Some(0)),
        "{}",
        text(&out.stderr)
    );

    let path = config.as_str();
    let out = run(&["--profile", "prod", "list"], &[("SESSION_CONFIG", path)], b"").await;
    assert_eq!(out.status.code(), Some(255));
    let said = text(&out.stderr);
    assert!(said.contains("no profile prod") && said.contains("lab"), "{said}");
    assert!(!said.contains(system.token()), "never the token: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tilde_dot_drops_a_session_on_a_real_terminal_and_restores_it() {
    use tokio::io::AsyncWriteExt;
    let system = system_with("every-3").await;
    let (mut pty, pts) = pty_process::open().expect("a pty");
    let cooked = rustix::termios::tcgetattr(&pty).expect("terminal settings");
    let mut client = pty_process::Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(["--relay", &system.url, "connect", "every-3"])
        .env("SESSION_TOKEN", system.token())
        .env("SESSION_CONFIG", "/nonexistent")
        .spawn(pts)
        .expect("the client runs");
    let mut seen = String::new();
    read_until(&mut pty, &mut seen, "~. to leave").await;
    // `~~` at a line's start types one `~`; `~.` drops the session, whatever the remote does.
    pty.write_all(b"echo ~~x-$((6*7))\r").await.unwrap();
    read_until(&mut pty, &mut seen, "~x-42").await;
    pty.write_all(b"sleep 600\r~.").await.unwrap();
    read_until(&mut pty, &mut seen, "dropped").await;
    let status = tokio::time::timeout(core::time::Duration::from_secs(10), client.wait())
        .await
        .expect("the client ends at once")
        .expect("an exit status");
    assert_eq!(status.code(), Some(255));
    let after = rustix::termios::tcgetattr(&pty).expect("terminal settings");
    assert_eq!(after.local_modes, cooked.local_modes, "the terminal is restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_a_terminal_runs_the_login_shell_on_stdin() {
    let system = system_with("every-4").await;
    let env = [("SESSION_RELAY", system.url.as_str()), ("SESSION_TOKEN", system.token())];
    let out = run(&["connect", "every-4"], &env, b"echo hi-$((1+1)); exit 7\n").await;
    assert_eq!(text(&out.stdout), "hi-2\n");
    assert_eq!(out.status.code(), Some(7));
    assert!(text(&out.stderr).contains("stdin is not a terminal"), "{}", text(&out.stderr));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, mark) in [
        ("bash", "complete -F _session__client"),
        ("zsh", "#compdef session-client"),
        ("fish", "complete -c session-client"),
    ] {
        let out = client(&["completions", shell], &[], b"");
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(mark), "{shell}");
    }
}

#[test]
fn every_help_has_examples_and_says_how_it_ends() {
    let out = client(&["--help"], &[], b"");
    let help = text(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("ProxyCommand") && help.contains("Exit status:"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_forward_process_carries_several_specs_each_on_its_bind_address() {
    use std::io::{BufRead, Read};
    let system = system_with("every-5").await;
    let (first, second) = (session_test_kit::Echo::start().await, session_test_kit::Echo::start().await);
    let specs = [format!("0:127.0.0.1:{}", first.port), format!("127.0.0.1:0:localhost:{}", second.port)];
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-client"))
        .args(["--relay", &system.url, "forward", "every-5", &specs[0], &specs[1]])
        .env("SESSION_TOKEN", system.token())
        .env("SESSION_CONFIG", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client runs");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let echoed = tokio::task::spawn_blocking(move || {
        let mut echoed = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            stderr.read_line(&mut line).unwrap();
            // forwarding 127.0.0.1:PORT to HOST:PORT on every-5
            let local: core::net::SocketAddr =
                line.split_whitespace().nth(1).and_then(|a| a.parse().ok()).expect(&line);
            let mut stream = std::net::TcpStream::connect(local).unwrap();
            stream.write_all(line.as_bytes()).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = String::new();
            stream.read_to_string(&mut back).unwrap();
            echoed.push((line, back));
        }
        echoed
    });
    let echoed = tokio::time::timeout(core::time::Duration::from_secs(30), echoed)
        .await
        .expect("both answered")
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    for (line, back) in &echoed {
        assert_eq!(line, back, "each local port reaches its own target");
    }
    assert!(echoed[1].0.contains("localhost:"), "{echoed:?}");
    assert_eq!((first.accepted(), second.accepted()), (1, 1));
}
