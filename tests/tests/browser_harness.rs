//! The browser harness itself (`session_test_kit::browser`), against a page that a tiny server
//! in this test serves on loopback: a real headless Chromium reads it, runs its script, and
//! reports every URL it requested, WebSockets among them. Without Chromium and ChromeDriver
//! these tests fail, saying what to install: they never pass by skipping.

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use session_test_kit::Browser;
use session_test_kit::browser::BrowserError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The page: it fetches /ping, shows the answer, and opens a WebSocket that the server refuses.
const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>harness page</title></head>
<body>
<p id="pong">waiting</p>
<script>
  console.log("harness script ran");
  fetch("/ping").then((r) => r.text()).then((text) => {
    document.getElementById("pong").textContent = text;
  });
  const ws = new WebSocket("ws://" + location.host + "/ws");
  ws.onerror = () => { window.wsFailed = true; };
</script>
</body>
</html>
"#;

/// Serves `PAGE` at /, "pong" at /ping, and 404 to everything else, the WebSocket upgrade at
/// /ws included, on a free loopback port.
async fn serve_page() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    addr
}

/// One request on `stream`, answered and closed.
async fn answer(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, kind, body) = match path {
        "/" => ("200 OK", "text/html; charset=utf-8", PAGE),
        "/ping" => ("200 OK", "text/plain", "pong"),
        _ => ("404 Not Found", "text/plain", "not here"),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_reads_the_page_and_reports_every_url_it_requested() {
    let addr = serve_page().await;
    let started = Instant::now();
    let browser = Browser::start().await.expect("a headless Chromium");
    // Printed, never asserted: how long a start takes on this machine.
    eprintln!("browser started in {:?}", started.elapsed());

    browser.goto(&format!("http://{addr}/")).await.unwrap();
    assert_eq!(browser.client().title().await.unwrap(), "harness page");
    browser
        .wait_for("document.getElementById('pong').textContent === 'pong'", "the page to show /ping's answer")
        .await
        .unwrap();
    browser.wait_for("window.wsFailed", "the refused WebSocket's error event").await.unwrap();
    assert_eq!(browser.eval::<u32>("6 * 7").await.unwrap(), 42);
    assert_eq!(browser.eval::<String>("document.location.pathname").await.unwrap(), "/");
    // A promise's value, awaited by WebDriver.
    assert_eq!(browser.eval::<String>("fetch('/ping').then((r) => r.text())").await.unwrap(), "pong");

    let urls = browser.requested_urls().await.unwrap();
    for expected in [format!("http://{addr}/"), format!("http://{addr}/ping"), format!("ws://{addr}/ws")] {
        assert!(urls.contains(&expected), "{expected} not among the requested URLs {urls:?}");
    }
    // Entries are handed out once by ChromeDriver: the harness keeps them.
    assert_eq!(browser.requested_urls().await.unwrap()[..urls.len()], urls[..]);

    let console = browser.console_log().await.unwrap();
    assert!(
        console.iter().any(|entry| entry.message.contains("harness script ran")),
        "the script's console.log is not in {console:?}"
    );

    browser.set_window_size(800, 600).await.unwrap();
    browser.wait_for("window.outerWidth === 800", "the window to be 800 pixels wide").await.unwrap();
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_that_never_holds_fails_naming_what_and_the_last_value() {
    let browser = Browser::start().await.expect("a headless Chromium");
    let error = browser
        .wait_for_within(
            "document.querySelectorAll('p').length",
            "a paragraph on a blank page",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("a paragraph on a blank page"), "{message}");
    assert!(message.contains("last 0"), "the last value, 0, is not in {message}");
}

#[test]
fn without_chromium_the_error_says_what_to_install() {
    // The machine has both (.ci/run installs them): the message is checked on its own.
    let message = BrowserError::Missing("/usr/bin/chromedriver").to_string();
    assert!(message.contains("/usr/bin/chromedriver"), "{message}");
    assert!(message.contains("apt-get install chromium chromium-driver"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_browser_ends_every_process_it_started() {
    let browser = Browser::start().await.expect("a headless Chromium");
    let group = browser.process_group().expect("ChromeDriver runs");
    let dir = browser.dir().to_string_lossy().into_owned();
    // ChromeDriver and the browser's processes, all in ChromeDriver's group, and the crash
    // handlers, each in a session of its own but with its database in the browser's directory.
    let started = of_browser(group, &dir);
    assert!(started.len() > 2, "only {started:?}: where is Chromium?");
    assert!(started.iter().any(|p| p.contains("chrome_crashpad")), "no crash handler among {started:?}");
    drop(browser);
    // Drop waits for them to go.
    let left = of_browser(group, &dir);
    assert!(left.is_empty(), "still running after drop: {left:?}");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} is left behind");
}

/// The running processes of the browser with process group `group` and directory `dir`, as
/// "pid name". Zombies don't count: Chromium leaves its dead children to init to reap, which
/// on this machine takes some seconds; they hold nothing.
fn of_browser(group: u32, dir: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
        let Some((pid_comm, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let in_dir = String::from_utf8_lossy(&cmdline).contains(dir);
        if fields.get(2) == Some(&group.to_string().as_str()) || in_dir {
            found.push(pid_comm.replacen(" (", " ", 1));
        }
    }
    found
}
