//! The relay binary: `admin` commands manage the store the relay serves from, TLS when given a
//! certificate, loopback only without one, and no secret in its log.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "processes and files")]

mod process;

use std::process::Command;
use std::time::Duration;

use process::{Served, admin, agent, full_access_user, ok, scratch};
use session_client::{Error, Relay};
use session_link::dial::Trust;
use session_test_kit::{Ran, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_manage_what_the_running_relay_allows_and_no_secret_reaches_its_log() {
    let dir = scratch("admin");
    let db = dir.join("relay.db");
    ok(&db, &["user", "add", "alice"]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600,
        "the store is its owner's alone"
    );
    let again = admin(&db, &["user", "add", "alice"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("user alice exists"));

    // A malformed policy is refused with where it is wrong.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "session:StartSession", "Resource": "*"},
        {"Effect": "Perhaps", "Action": "session:StartSession", "Resource": "*"}]}"#,
    )
    .unwrap();
    let out = admin(&db, &["policy", "put", "web", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Statement[1].Effect: must be \"Allow\" or \"Deny\""), "{stderr}");

    let good = dir.join("web.json");
    std::fs::write(
        &good,
        r#"{"Version": "1", "Statement": {"Effect": "Allow",
        "Action": ["session:StartSession", "session:DescribeInstanceStatus"],
        "Resource": "srn:session:eu-1:acme:instance/i-001*"}}"#,
    )
    .unwrap();
    ok(&db, &["policy", "put", "web", good.to_str().unwrap()]);
    ok(&db, &["policy", "attach", "web", "alice"]);
    assert_eq!(ok(&db, &["user", "list"]), "alice\tweb\n");
    let token = ok(&db, &["token", "create", "alice", "--expires-in", "1h"]).trim().to_owned();
    assert!(token.starts_with("srt_") && !token.contains('\n'), "only the token on stdout: {token}");
    let code = ok(&db, &["activation", "create", "--account", "acme", "--label", "web-1"]).trim().to_owned();
    assert!(code.starts_with("sra_"), "{code}");

    let audit_log = dir.join("audit.jsonl");
    // On one thread, as a small relay may be run: the store's and the sessions' work share it.
    let served = Served::start(
        &db,
        &[
            "--listen",
            "127.0.0.1:0",
            "--region",
            "eu-1",
            "--audit-log",
            audit_log.to_str().unwrap(),
            "--threads",
            "1",
        ],
    );
    assert_eq!(
        std::fs::metadata(&audit_log).unwrap().permissions().mode() & 0o777,
        0o600,
        "the audit log is its owner's alone, as the store is"
    );
    let url = format!("ws://127.0.0.1:{}", served.port);
    let alice = Relay::new(&url, &token);
    let agent = agent(&url, "i-0017", &code, Trust::system(), &alice).await;
    assert_eq!(
        run(&alice, "i-0017", "echo through").await.unwrap(),
        Ran { stdout: "through\n".into(), code: 0 }
    );

    let instances = ok(&db, &["instance", "list"]);
    assert!(instances.starts_with("i-0017\tacme\tweb-1\tseen "), "{instances}");
    let listing = alice.list().await.unwrap();
    assert_eq!(
        listing["instances"][0]["labels"],
        serde_json::json!({"region": "eu-1", "account": "acme", "name": "web-1"})
    );

    ok(&db, &["switch", "acme", "off"]);
    assert_eq!(ok(&db, &["switch", "acme"]), "acme\tsessions off\n");
    let refused = run(&alice, "i-0017", "true").await.unwrap_err();
    assert!(
        matches!(&refused, Error::OpenRefused { message, .. } if message == "session management is turned off for account acme"),
        "{refused}"
    );
    ok(&db, &["switch", "acme", "on"]);

    let tokens = ok(&db, &["token", "list"]);
    let id = &token[4..20];
    assert!(tokens.starts_with(&format!("{id}\talice\texpires in ")), "{tokens}");
    assert!(!tokens.contains(&token[21..]), "token list shows no secret");
    ok(&db, &["token", "revoke", id]);
    let refused = run(&alice, "i-0017", "true").await.unwrap_err();
    assert!(
        matches!(&refused, Error::Refused { status: 401, reason, .. } if reason == "token has been revoked"),
        "{refused}"
    );

    // The relay's audit writer is a thread of its own: wait for the revoked token's refusal.
    let mut audit = String::new();
    for _ in 0..200 {
        audit = ok(&db, &["audit", "--limit", "100"]);
        if audit.contains("token has been revoked") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        audit.contains(r#""kind":"exec: echo through""#) && audit.contains(r#""actor":"alice""#),
        "{audit}"
    );
    assert!(
        audit.contains("turned off")
            || audit.contains(r#""event":"settings""#)
            || audit.contains(r#""event":"session""#)
    );

    // What admins changed is audited too, by its arguments (no secret among them).
    for change in
        [r#"User(Add { name: \"alice\" })"#, "Token(Create", "Token(Revoke", "Switch { account: \\\"acme\\\""]
    {
        assert!(audit.contains(change), "{change} not in {audit}");
    }
    // The log is copied in by a thread of the test's: wait for the line.
    let log = served.log_once(|log| log.contains("handshake refused"));
    assert!(log.contains("handshake refused"), "refusals are logged: {log}");
    for secret in [&token[21..], &code[21..]] {
        assert!(!log.contains(secret), "a secret reached the relay's log");
    }
    assert!(!audit.contains(&token[21..]) && !audit.contains(&code[21..]), "nor the audit log");
    agent.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_tls_the_relay_listens_on_loopback_only_unless_told() {
    let dir = scratch("exposure");
    let db = dir.join("relay.db");
    let out = Command::new(env!("CARGO_BIN_EXE_session-relay"))
        .arg("--db")
        .arg(&db)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0:0 without TLS"), "{stderr}");

    let served = Served::start(&db, &["--listen", "0.0.0.0:0", "--insecure-listen"]);
    assert!(served.port > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_every_connection_is_tls() {
    let dir = scratch("tls");
    let db = dir.join("relay.db");
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).unwrap();
    std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();

    let token = full_access_user(&db, &dir);
    let code = ok(&db, &["activation", "create"]).trim().to_owned();

    let served = Served::start(
        &db,
        &["--listen", "0.0.0.0:0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let url = format!("wss://localhost:{}", served.port);
    let trust = Trust::ca_file(&cert).unwrap();
    let mut ops = Relay::new(&url, &token);
    ops.trust = trust.clone();
    let agent = agent(&url, "i-tls", &code, trust, &ops).await;
    assert_eq!(run(&ops, "i-tls", "echo sealed").await.unwrap(), Ran { stdout: "sealed\n".into(), code: 0 });

    // Plain WebSocket to the same port, or TLS with a certificate nobody vouched for, is no way in.
    let plain = Relay::new(&format!("ws://127.0.0.1:{}", served.port), &token);
    assert!(plain.list().await.is_err(), "plain WebSocket is refused");
    refused_without_the_ca(&url, &token).await;
    agent.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client trusting only the system's roots cannot reach the relay at `url`: its certificate
/// is one nobody they know vouched for.
async fn refused_without_the_ca(url: &str, token: &str) {
    let unvouched = Relay::new(url, token).list().await.unwrap_err();
    assert!(
        matches!(unvouched, Error::Unreachable { .. })
            && unvouched.to_string().to_lowercase().contains("certificate"),
        "{unvouched}"
    );
}

/// `admin tls` makes what the README's TLS recipe runs with: a CA for clients and agents, and a
/// certificate signed by it for the relay, by IP address as by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tls_makes_a_ca_and_a_certificate_the_relay_serves_and_its_clients_trust() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("admin-tls");
    let db = dir.join("relay.db");
    let certs = dir.join("tls");
    let made = ok(&db, &["tls", certs.to_str().unwrap(), "--name", "127.0.0.1", "--name", "localhost"]);
    assert!(made.contains("ca.pem") && made.contains("--ca-file"), "{made}");
    assert!(!db.exists(), "admin tls needs no store and makes none");
    let (ca, cert, key) = (certs.join("ca.pem"), certs.join("cert.pem"), certs.join("key.pem"));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "the key is its owner's"
    );
    assert!(!certs.join("ca.key").exists(), "the CA's key is not kept");
    // Made once: a second run would replace what clients already trust.
    let again = admin(&db, &["tls", certs.to_str().unwrap(), "--name", "127.0.0.1"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("ca.pem exists"));

    let token = full_access_user(&db, &dir);
    let code = ok(&db, &["activation", "create"]).trim().to_owned();
    let served = Served::start(
        &db,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let trust = Trust::ca_file(&ca).unwrap();
    for url in [format!("wss://127.0.0.1:{}", served.port), format!("wss://localhost:{}", served.port)] {
        let mut ops = Relay::new(&url, &token);
        ops.trust = trust.clone();
        assert!(ops.list().await.is_ok(), "{url} with --ca-file ca.pem");
    }
    let url = format!("wss://127.0.0.1:{}", served.port);
    let mut ops = Relay::new(&url, &token);
    ops.trust = trust.clone();
    let agent = agent(&url, "i-ca", &code, trust, &ops).await;
    assert_eq!(run(&ops, "i-ca", "echo vouched").await.unwrap(), Ran { stdout: "vouched\n".into(), code: 0 });

    // Without the CA, the system's roots know nothing of it.
    refused_without_the_ca(&url, &token).await;
    agent.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Idle connections that never finish their handshake cannot take the relay's descriptors:
/// under `ulimit -n 256`, 300 of them from one address leave a user's request served (before,
/// 1,100 idle connections under `ulimit -n 1024` made real requests fail with "accept failed").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_handshakes_from_one_source_do_not_take_the_relays_descriptors() {
    let dir = scratch("descriptors");
    let db = dir.join("relay.db");
    let token = full_access_user(&db, &dir);
    let served = Served::start_with_open_files(&db, &["--listen", "127.0.0.1:0"], 256);
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], served.port));

    // Another loopback address stands for the attacker's.
    let mut idle = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        if let Ok(stream) = socket.connect(target).await {
            idle.push(stream);
        }
    }
    let relay = Relay::new(&format!("ws://127.0.0.1:{}", served.port), &token);
    let listing = relay.list().await;
    assert!(listing.is_ok(), "a user's request while 300 handshakes idle: {listing:?}");
    let log = served.log_once(|log| log.contains("too many connections in their handshake"));
    assert!(log.contains("too many connections in their handshake"), "{log}");
    assert!(!log.contains("accept failed"), "no descriptor ran out: {log}");
    drop(idle);
    let _ = std::fs::remove_dir_all(&dir);
}
