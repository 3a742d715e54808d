//! The browser console in a real headless Chromium, driven over WebDriver, against a real
//! relay and agent on loopback: logging in, the instances a policy shows, a shell typed into,
//! resized, flooded and interrupted, a dropped connection re-attached, a foreign page refused,
//! and no token in any URL.

use core::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;
use session_test_kit::System;
use session_test_kit::browser::Browser;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// The most unrendered output the page may hold for one terminal: its window, 256 KiB, is
/// what the Session grants; 1 MiB is the issue's bound.
const MAX_PENDING: u64 = 1 << 20;

async fn browser() -> Browser {
    assert!(
        Browser::available(),
        "the console's tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver"
    );
    Browser::start().await.expect("a headless Chromium")
}

fn page(system: &System) -> String {
    format!("http://{}/", system.relay.addr)
}

/// Opens the console and logs in with `token`; returns once the login page has answered.
async fn log_in(browser: &Browser, system: &System, token: &str) {
    browser.goto(&page(system)).await.unwrap();
    browser.wait_for("!document.querySelector('#login-page').hidden", "the login page").await.unwrap();
    let client = browser.client();
    client.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    client.find(Locator::Css("#login-submit")).await.unwrap().click().await.unwrap();
}

async fn logged_in(browser: &Browser, system: &System, token: &str) {
    log_in(browser, system, token).await;
    browser
        .wait_for("!document.querySelector('#instances-page').hidden", "the instances page")
        .await
        .unwrap();
}

/// Clicks "Connect" on `instance` and waits until its shell is accepted.
async fn connect(browser: &Browser, instance: &str) {
    let row = format!("#instances tr[data-instance='{instance}'] button.connect");
    browser
        .wait_for(
            &format!("document.querySelector(\"{row}\") && !document.querySelector(\"{row}\").disabled"),
            "the row",
        )
        .await
        .unwrap();
    browser.client().find(Locator::Css(&row)).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            "sessionConsole.tabs().length && sessionConsole.tabs().at(-1).state === 'connected'",
            "a shell",
        )
        .await
        .unwrap();
}

/// Types `keys` into the focused terminal as a person would: key events into xterm.js.
async fn type_keys(browser: &Browser, keys: &str) {
    let textarea = browser
        .client()
        .find(Locator::Css(".terminal-tab:not([hidden]) .xterm-helper-textarea"))
        .await
        .unwrap();
    textarea.send_keys(keys).await.unwrap();
}

/// Waits until the text of terminal `index` has a line that starts with `wanted` (which may
/// span lines).
async fn until_text(browser: &Browser, index: usize, wanted: &str) -> String {
    let wanted_js = serde_json::to_string(&format!("\n{wanted}")).unwrap();
    let js = format!(
        "('\\n' + sessionConsole.text({index})).includes({wanted_js}) && sessionConsole.text({index})"
    );
    match browser.wait_for(&js, wanted).await {
        Ok(Value::String(text)) => text,
        other => {
            let text: String =
                browser.eval(&format!("sessionConsole.text({index})")).await.unwrap_or_default();
            let log = browser.console_log().await.unwrap_or_default();
            panic!("{other:?}; the terminal shows:\n{text}\n{log:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_and_a_good_one_logs_in() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let browser = browser().await;
    log_in(&browser, &system, "srt_0123456789abcdef_00").await;
    let error =
        browser.wait_for("document.querySelector('#login-error').textContent", "a refusal").await.unwrap();
    assert!(error.as_str().unwrap().contains("malformed token"), "{error}");
    assert!(browser.eval::<bool>("document.querySelector('#instances-page').hidden").await.unwrap());

    browser.client().find(Locator::Css("#token")).await.unwrap().clear().await.unwrap();
    logged_in(&browser, &system, system.token()).await;
    assert_eq!(
        browser.eval::<String>("document.querySelector('#user').textContent").await.unwrap(),
        "tester"
    );
    // The login survives a reload (the cookie), and logging out ends it.
    browser.goto(&page(&system)).await.unwrap();
    browser.wait_for("!document.querySelector('#instances-page').hidden", "still logged in").await.unwrap();
    browser.client().find(Locator::Css("#logout")).await.unwrap().click().await.unwrap();
    browser.wait_for("!document.querySelector('#login-page').hidden", "logged out").await.unwrap();
    browser.goto(&page(&system)).await.unwrap();
    browser.wait_for("!document.querySelector('#login-page').hidden", "still logged out").await.unwrap();
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instances_page_lists_what_the_policy_lets_its_user_describe() {
    let mut system = System::start(None).await;
    for name in ["web-1", "web-2", "db-1"] {
        system.agent(name).await;
    }
    let web_only = r#"{"Version": "1", "Statement": {"Effect": "Allow",
        "Action": ["session:DescribeInstanceStatus", "session:StartSession"],
        "Resource": "srn:session:test:test:instance/web-*"}}"#;
    let alice = system.user("alice", web_only);
    let browser = browser().await;
    logged_in(&browser, &system, &alice.token).await;
    let rows = browser
        .wait_for(
            "document.querySelectorAll('#instances tbody tr').length === 2 && \
             [...document.querySelectorAll('#instances tbody tr')].map(r => r.dataset.instance + ' ' + \
             r.querySelector('.status').textContent + ' ' + r.querySelector('.last-seen').textContent)",
            "two rows",
        )
        .await;
    let shown: Value = browser.eval("document.querySelector('#instances').innerText + document.querySelector('#instances-error').textContent").await.unwrap();
    let rows: Vec<String> =
        serde_json::from_value(rows.unwrap_or_else(|e| panic!("{e:?}: {shown}"))).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].starts_with("web-1 online ") && rows[1].starts_with("web-2 online "), "{rows:?}");
    // Last seen in words, not epoch seconds.
    assert!(rows.iter().all(|r| r.ends_with("just now") || r.ends_with(" s ago")), "{rows:?}");
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_runs_commands_follows_the_window_and_no_url_carries_the_token() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let browser = browser().await;
    logged_in(&browser, &system, system.token()).await;
    connect(&browser, "web-1").await;

    type_keys(&browser, "echo hello-$((6*7))\n").await;
    until_text(&browser, 0, "hello-42").await;

    // The shell started at the terminal's size, and follows the window's.
    let (cols, rows): (u64, u64) =
        browser.eval("[sessionConsole.tabs()[0].cols, sessionConsole.tabs()[0].rows]").await.unwrap();
    type_keys(&browser, "stty size\n").await;
    until_text(&browser, 0, &format!("{rows} {cols}")).await;
    browser.set_window_size(800, 500).await.unwrap();
    let smaller: Value = browser
        .wait_for(&format!("sessionConsole.tabs()[0].cols < {cols} && [sessionConsole.tabs()[0].rows, sessionConsole.tabs()[0].cols]"), "a smaller terminal")
        .await
        .unwrap();
    type_keys(&browser, "stty size\n").await;
    until_text(&browser, 0, &format!("{} {}", smaller[0], smaller[1])).await;

    // The session's id is shown, as the relay names it.
    let id = browser.wait_for("sessionConsole.tabs()[0].sessionId", "the session id").await.unwrap();
    assert!(id.as_str().unwrap().starts_with("tester-"), "{id}");

    let urls = browser.requested_urls().await.unwrap();
    assert!(urls.iter().any(|u| u.contains("/v1/client/web-1")), "{urls:?}");
    let token = system.token();
    let key = token.rsplit('_').next().unwrap();
    assert!(urls.iter().all(|u| !u.contains(key) && !u.contains("srt_")), "a token in a URL: {urls:?}");
    let log = browser.console_log().await.unwrap();
    assert!(log.iter().all(|entry| entry.level != "SEVERE"), "{log:?}");

    // Terminate, as the CLI's `terminate`: the relay ends the session and says who did.
    browser.client().find(Locator::Css(".terminal-tab .terminate")).await.unwrap().click().await.unwrap();
    browser.wait_for("sessionConsole.tabs()[0].state === 'ended'", "the session's end").await.unwrap();
    until_text(&browser, 0, "[the session was terminated by tester]").await;
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_stays_within_the_window_and_ctrl_c_brings_the_prompt_back() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let browser = browser().await;
    logged_in(&browser, &system, system.token()).await;
    connect(&browser, "web-1").await;

    type_keys(&browser, "yes flood-line\n").await;
    until_text(&browser, 0, "flood-line\nflood-line\nflood-line").await;
    // Let it run: the page renders as fast as it can, and never holds more than its window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending: u64 = browser.eval("sessionConsole.tabs()[0].maxPending").await.unwrap();
    assert!(pending > 0 && pending <= MAX_PENDING, "pending output {pending} bytes");

    type_keys(&browser, &format!("{}c{}", Key::Control, Key::Control)).await;
    type_keys(&browser, "echo after-$((40+2))\n").await;
    // The bound is a hang guard, not a measure: how long it took is in BENCHMARKS.md.
    until_text(&browser, 0, "after-42").await;
    let pending: u64 = browser.eval("sessionConsole.tabs()[0].maxPending").await.unwrap();
    assert!(pending <= MAX_PENDING, "pending output {pending} bytes");
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_reattaches_to_the_same_shell_and_output_arrives_once() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let browser = browser().await;
    logged_in(&browser, &system, system.token()).await;
    connect(&browser, "web-1").await;

    type_keys(&browser, "echo pid-$$\n").await;
    let before = until_text(&browser, 0, "pid-").await;
    let pid = before.lines().find(|l| l.starts_with("pid-")).unwrap().to_owned();

    // Output keeps coming while the page's connection drops, twice.
    let lines = 2000;
    type_keys(
        &browser,
        &format!("clear; for i in $(seq 1 {lines}); do echo n-$i; sleep 0.002; done; echo done-$((1+1))\n"),
    )
    .await;
    until_text(&browser, 0, "n-100\n").await;
    browser.eval::<Value>("sessionConsole.dropConnection(0)").await.unwrap();
    browser
        .wait_for("sessionConsole.tabs()[0].state.startsWith('reconnecting')", "reconnecting")
        .await
        .unwrap();
    browser.wait_for("sessionConsole.tabs()[0].state === 'connected'", "re-attached").await.unwrap();
    until_text(&browser, 0, "n-1000\n").await;
    browser.eval::<Value>("sessionConsole.dropConnection(0)").await.unwrap();
    let text = until_text(&browser, 0, "done-2").await;

    let numbers: Vec<usize> =
        text.lines().filter_map(|l| l.strip_prefix("n-")).filter_map(|n| n.parse().ok()).collect();
    let wanted: Vec<usize> = (1..=lines).collect();
    assert!(
        numbers == wanted,
        "{} lines, first missing or repeated near {:?}",
        numbers.len(),
        first_difference(&numbers, &wanted)
    );

    type_keys(&browser, "echo pid-$$\n").await;
    let after = until_text(&browser, 0, &format!("{pid}\n")).await;
    assert!(after.matches(&pid).count() >= 1, "the same shell");
    browser.close().await.unwrap();
}

fn first_difference(got: &[usize], wanted: &[usize]) -> Option<(usize, Option<usize>, Option<usize>)> {
    (0..got.len().max(wanted.len()))
        .find(|&i| got.get(i) != wanted.get(i))
        .map(|i| (i, got.get(i).copied(), wanted.get(i).copied()))
}

/// A page served from another origin, in the same browser, after a login on the relay: its
/// WebSocket to the relay carries the login's cookie (the two are the same site) and is refused
/// for its Origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_another_origin_cannot_use_the_login() {
    let system = System::start(None).await;
    let browser = browser().await;
    logged_in(&browser, &system, system.token()).await;
    // From the console's own origin, the same request is answered.
    let own = format!(
        "new Promise(r => {{ const ws = new WebSocket('ws://{}/v1/instances', 'session-proto.v1'); \
         ws.onmessage = () => r('answered'); ws.onclose = () => r('refused'); }})",
        system.relay.addr
    );
    assert_eq!(browser.eval::<String>(&own).await.unwrap(), "answered");

    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign = elsewhere.local_addr().unwrap();
    let html = "<!doctype html><title>elsewhere</title>";
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = elsewhere.accept().await {
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
            let mut request = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    browser.goto(&format!("http://{foreign}/")).await.unwrap();
    assert_eq!(browser.eval::<String>(&own).await.unwrap(), "refused");
    browser.close().await.unwrap();
}

/// The README's pictures: `cargo test -p session-tests --test console_browser -- --ignored
/// screenshots` writes them to `docs/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the README's screenshots"]
async fn screenshots() {
    let mut system = System::start(None).await;
    for name in ["web-1", "web-2", "db-1"] {
        system.agent(name).await;
    }
    let browser = browser().await;
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    std::fs::create_dir_all(&docs).unwrap();
    let shoot = |name: &'static str| {
        let path = docs.join(name);
        async { std::fs::write(path, browser.client().screenshot().await.unwrap()).unwrap() }
    };
    browser.goto(&page(&system)).await.unwrap();
    browser.wait_for("!document.querySelector('#login-page').hidden", "the login page").await.unwrap();
    shoot("console-login.png").await;
    logged_in(&browser, &system, system.token()).await;
    browser
        .wait_for("document.querySelectorAll('#instances tbody tr').length === 3", "the rows")
        .await
        .unwrap();
    shoot("console-instances.png").await;
    connect(&browser, "web-1").await;
    type_keys(&browser, "uname -sr; stty size; printf 'caf\\xc3\\xa9 \\xe2\\x9c\\x93\\n'\n").await;
    until_text(&browser, 0, "caf").await;
    shoot("console-terminal.png").await;
    browser.close().await.unwrap();
}

/// The figures in BENCHMARKS.md's console section: `cargo test --release -p session-tests
/// --test console_browser -- --ignored --nocapture measure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, run by hand"]
async fn measure() {
    use session_test_kit::run::{exec_on_terminal, pipes, size};
    use tokio::io::AsyncReadExt;

    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let browser = browser().await;
    logged_in(&browser, &system, system.token()).await;

    // Connect to prompt: the click, until the shell's first output is rendered.
    let mut connects = Vec::new();
    for i in 0..5 {
        connect(&browser, "web-1").await;
        let ms: f64 = browser
            .wait_for(
                &format!(
                    "(t => t.firstOutput && t.firstOutput - t.clicked)(sessionConsole.tabs()[{i}].timings)"
                ),
                "output",
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        connects.push(ms);
        browser
            .client()
            .find(Locator::Css("#tabs .tab[data-tab='instances']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    println!("connect to first output, ms: {connects:?}");

    // Keystroke echo in the browser: typed into xterm.js, echoed by the remote pty, parsed.
    let mut browser_echo: Vec<f64> = browser.eval("sessionConsole.measureEcho(0, 300)").await.unwrap();
    // The same through the Rust client: a byte to the pty, its echo back.
    let connection = system.connect("web-1").await;
    let (io, mut input, mut output, _errors) = pipes();
    let running =
        tokio::spawn(async move { connection.open(exec_on_terminal("cat", size(80, 24)), io).await });
    let mut cli_echo = Vec::new();
    let mut byte = [0u8; 1];
    for i in 0..300 {
        let start = std::time::Instant::now();
        input.write_all(b"x").await.unwrap();
        output.read_exact(&mut byte).await.unwrap();
        if i > 0 {
            cli_echo.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    drop(input);
    running.abort();
    let percentile = |samples: &mut Vec<f64>, p: f64| {
        samples.sort_by(f64::total_cmp);
        samples[((samples.len() - 1) as f64 * p) as usize]
    };
    println!(
        "keystroke echo, ms: browser p50 {:.2} p99 {:.2}; Rust client p50 {:.2} p99 {:.2}",
        percentile(&mut browser_echo, 0.5),
        percentile(&mut browser_echo, 0.99),
        percentile(&mut cli_echo, 0.5),
        percentile(&mut cli_echo, 0.99)
    );

    // A flood: the tab's heap and what it holds unrendered, over a minute.
    let first: String = browser.eval("sessionConsole.tabs()[0].id").await.unwrap();
    let tab = format!("#tabs .tab[data-tab='{first}']");
    browser.client().find(Locator::Css(&tab)).await.unwrap().click().await.unwrap();
    let heap = "performance.memory.usedJSHeapSize";
    // The echo's x's are still on the command line.
    type_keys(&browser, &format!("{}c{}", Key::Control, Key::Control)).await;
    type_keys(&browser, "cat /dev/urandom | base64\n").await;
    let mut last = 0;
    for second in (0..=60).step_by(10) {
        let (used, pending, rendered): (u64, u64, u64) = browser
            .eval(&format!(
                "[{heap}, sessionConsole.tabs()[0].maxPending, sessionConsole.tabs()[0].rendered]"
            ))
            .await
            .unwrap();
        println!(
            "flood at {second:>2} s: JS heap {:.1} MiB, most pending {pending} B, rendered {:.2} MB/s",
            used as f64 / 1048576.0,
            (rendered - last) as f64 / 10e6
        );
        last = rendered;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // Ctrl-C: when the page took the key, and when the output stopped coming.
    let sent: f64 = browser.eval("performance.now()").await.unwrap();
    type_keys(&browser, &format!("{}c{}", Key::Control, Key::Control)).await;
    let mut last = (0, 0.0);
    loop {
        let (rendered, now): (u64, f64) =
            browser.eval("[sessionConsole.tabs()[0].rendered, performance.now()]").await.unwrap();
        if rendered == last.0 && now - last.1 > 500.0 {
            break;
        }
        if rendered != last.0 {
            last = (rendered, now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took: f64 = browser.eval("sessionConsole.tabs()[0].timings.lastInput").await.unwrap();
    println!(
        "Ctrl-C during the flood: taken by the page after {:.0} ms, output over {:.0} ms after it was sent",
        took - sent,
        last.1 - sent
    );
    let start = std::time::Instant::now();
    type_keys(&browser, "echo after-$((40+2))\n").await;
    until_text(&browser, 0, "after-42").await;
    println!("then a command typed, to its output: {} ms", start.elapsed().as_millis());
    browser.close().await.unwrap();
}
