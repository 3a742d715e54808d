//! The console's grid (issue 17), in a real headless Chromium against a real relay and agents on
//! loopback: instances ticked in the list, a terminal on each side by side, a broadcast line
//! that reaches the terminals whose toggle is on and no other, and each terminal's last
//! command's status in its header, as bash reports it through the PROMPT_COMMAND the grid's
//! Open sets (a login shell run by the agent keeps it) and OSC 133.

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;
use session_test_kit::System;
use session_test_kit::browser::Browser;

const INSTANCES: [&str; 3] = ["web-1", "web-2", "web-3"];

async fn browser() -> Browser {
    assert!(
        Browser::available(),
        "the console's tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver"
    );
    Browser::start().await.expect("a headless Chromium")
}

async fn logged_in(browser: &Browser, system: &System) {
    browser.goto(&format!("http://{}/", system.relay.addr)).await.unwrap();
    browser.wait_for("!document.querySelector('#login-page').hidden", "the login page").await.unwrap();
    let client = browser.client();
    client.find(Locator::Css("#token")).await.unwrap().send_keys(system.token()).await.unwrap();
    client.find(Locator::Css("#login-submit")).await.unwrap().click().await.unwrap();
    browser
        .wait_for("!document.querySelector('#instances-page').hidden", "the instances page")
        .await
        .unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser.client().find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

/// Types `keys` into the grid's terminal on `instance`, as a person would.
async fn type_into(browser: &Browser, instance: &str, keys: &str) {
    let css = format!(".grid-cell[data-instance='{instance}'] .xterm-helper-textarea");
    browser.client().find(Locator::Css(&css)).await.unwrap().send_keys(keys).await.unwrap();
}

/// Types `line` into the broadcast line, and Enter.
async fn broadcast(browser: &Browser, line: &str) {
    let input =
        browser.client().find(Locator::Css(".grid-tab:not([hidden]) .broadcast-input")).await.unwrap();
    input.send_keys(line).await.unwrap();
    input.send_keys(&Key::Enter.to_string()).await.unwrap();
}

/// Waits until the text of the grid's terminal `index` has a line that starts with `wanted`.
async fn until_text(browser: &Browser, index: usize, wanted: &str) -> String {
    let wanted_js = serde_json::to_string(&format!("\n{wanted}")).unwrap();
    let text = format!("sessionConsole.gridText(0, {index})");
    let js = format!("('\\n' + {text}).includes({wanted_js}) && {text}");
    match browser.wait_for(&js, wanted).await {
        Ok(Value::String(text)) => text,
        other => {
            let shown: String = browser.eval(&text).await.unwrap_or_default();
            panic!("{other:?}; terminal {index} shows:\n{shown}")
        }
    }
}

/// Each grid terminal's status as its header shows it, in the grid's order.
async fn marks(browser: &Browser) -> Vec<String> {
    browser
        .eval("[...document.querySelectorAll('.grid-cell')].map(c => c.querySelector('.mark').textContent)")
        .await
        .unwrap()
}

/// Waits until the headers show `wanted`, each terminal's status in the grid's order.
async fn until_marks(browser: &Browser, wanted: &[&str]) {
    let wanted_js = serde_json::to_string(wanted).unwrap();
    let js = format!(
        "JSON.stringify([...document.querySelectorAll('.grid-cell')].map(c => c.querySelector('.mark').textContent)) \
         === JSON.stringify({wanted_js})"
    );
    if let Err(e) = browser.wait_for(&js, "the statuses").await {
        let summary: Value = browser.eval("sessionConsole.grids()").await.unwrap_or_default();
        panic!("{e:?}: wanted {wanted:?}, the headers show {:?}; {summary}", marks(browser).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_broadcasts_to_the_terminals_toggled_in_and_shows_each_ones_last_status() {
    let mut system = System::start(None).await;
    for (i, name) in INSTANCES.iter().enumerate() {
        let labels = [("role", "web".to_owned()), ("tier", format!("t{i}"))];
        system
            .agent_with(name, |config| {
                config.labels = labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            })
            .await;
    }
    let browser = browser().await;
    logged_in(&browser, &system).await;
    browser
        .wait_for("document.querySelectorAll('#instances tbody tr').length === 3", "the rows")
        .await
        .unwrap();

    // The agent's labels, each on its own; the relay's, in a few words: account and region (its
    // name label is the instance's name, not repeated).
    let (chips, relay_labels, keys): (Vec<String>, String, String) = browser
        .eval(
            "(row => [[...row.querySelectorAll('.label')].map(l => l.textContent), \
             row.querySelector('.relay-labels').textContent, row.querySelector('.relay-labels').title])\
             (document.querySelector(\"#instances tr[data-instance='web-2']\"))",
        )
        .await
        .unwrap();
    assert_eq!(chips, ["role=web", "tier=t1"]);
    assert_eq!((relay_labels.as_str(), keys.as_str()), ("test · test", "account=test, region=test"));

    // Nothing ticked, no grid; three ticked, a grid of three.
    assert!(browser.eval::<bool>("document.querySelector('#open-grid').disabled").await.unwrap());
    for name in INSTANCES {
        click(&browser, &format!("#instances tr[data-instance='{name}'] input.pick")).await;
    }
    let open: (bool, String) = browser
        .eval("(b => [b.disabled, b.textContent])(document.querySelector('#open-grid'))")
        .await
        .unwrap();
    assert_eq!(open, (false, "Open grid (3)".to_owned()));
    assert!(browser.eval::<bool>("document.querySelector('#pick-all').checked").await.unwrap());
    click(&browser, "#open-grid").await;
    let ready = "sessionConsole.grids().length === 1 && \
                 sessionConsole.grids()[0].terminals.every(t => t.state === 'connected') && \
                 sessionConsole.grids()[0].terminals.map(t => t.instance)";
    let shown = browser.wait_for(ready, "three shells").await.unwrap();
    assert_eq!(shown, serde_json::json!(INSTANCES));
    let urls = browser.requested_urls().await.unwrap();
    for name in INSTANCES {
        assert!(urls.iter().any(|u| u.ends_with(&format!("/v1/client/{name}"))), "{urls:?}");
    }
    // No command yet: no status, whatever the shells' first prompts said.
    assert_eq!(marks(&browser).await, ["unknown", "unknown", "unknown"]);
    assert!(browser.eval::<bool>("document.querySelector('#instances-page').hidden").await.unwrap());

    // web-2 toggled out: a broadcast reaches web-1 and web-3 only.
    click(&browser, ".grid-cell[data-instance='web-2'] input.broadcast").await;
    let count: String =
        browser.eval("document.querySelector('.grid-tab .broadcast-count').textContent").await.unwrap();
    assert_eq!(count, "2 of 3");
    // Sent at once, while the shells may still be starting: typed ahead, it runs after their
    // first prompt, whose status is not a command's.
    broadcast(&browser, "echo grid-$((6*7)); (exit 4)").await;
    until_text(&browser, 0, "grid-42").await;
    until_text(&browser, 2, "grid-42").await;
    until_marks(&browser, &["failed (4)", "unknown", "failed (4)"]).await;
    // Typed into web-2 itself, after the broadcast: once its output is there, anything the
    // broadcast had sent it would be there before it.
    type_into(&browser, "web-2", "echo solo-$((1+1))\n").await;
    let excluded = until_text(&browser, 1, "solo-2").await;
    assert!(!excluded.contains("grid-"), "the broadcast reached web-2:\n{excluded}");
    until_marks(&browser, &["failed (4)", "ok", "failed (4)"]).await;
    for index in [0, 2] {
        let text: String = browser.eval(&format!("sessionConsole.gridText(0, {index})")).await.unwrap();
        assert!(!text.contains("solo-"), "typing into web-2 reached terminal {index}:\n{text}");
    }

    // Each shell in a folder of its own, the marker in web-1's and web-3's only; each command
    // fails with 3, typed into each terminal.
    let dirs: Vec<tempfile::TempDir> = INSTANCES.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, name) in INSTANCES.iter().enumerate() {
        if *name != "web-2" {
            std::fs::write(dirs[i].path().join("grid-marker"), b"").unwrap();
        }
        let dir = dirs[i].path().to_str().unwrap();
        type_into(&browser, name, &format!("cd '{dir}'; (exit 3)\n")).await;
    }
    until_marks(&browser, &["failed (3)", "failed (3)", "failed (3)"]).await;

    // web-2 back in; one broadcast, whose command fails on web-2 alone.
    click(&browser, ".grid-cell[data-instance='web-2'] input.broadcast").await;
    broadcast(&browser, "test -e grid-marker").await;
    until_marks(&browser, &["ok", "failed (1)", "ok"]).await;
    let states: Vec<String> = browser
        .eval("[...document.querySelectorAll('.grid-cell .mark')].map(m => m.dataset.status)")
        .await
        .unwrap();
    assert_eq!(states, ["ok", "failed", "ok"]);
    // The login shell kept the variable the Open set (a startup file may add its own hooks
    // before it: pyenv's does here, and keeps `$?` for what follows).
    broadcast(&browser, "echo \"pc=[$PROMPT_COMMAND]\"").await;
    for index in 0..3 {
        let text = until_text(&browser, index, "pc=[").await;
        // A narrow terminal wraps the line.
        let unwrapped = text.replace('\n', "");
        assert!(unwrapped.contains(r#"printf "\033]133;D;%s\007" "$?"]"#), "terminal {index}:\n{text}");
    }
    until_marks(&browser, &["ok", "ok", "ok"]).await;

    let log = browser.console_log().await.unwrap();
    assert!(log.iter().all(|entry| entry.level != "SEVERE"), "{log:?}");

    // Closing the grid ends its shells and goes back to the list.
    click(&browser, ".grid-tab .close-grid").await;
    browser
        .wait_for(
            "sessionConsole.grids().length === 0 && !document.querySelector('#instances-page').hidden && \
             !document.querySelector('#tabs .tab[data-tab^=\"g\"]')",
            "the list again",
        )
        .await
        .unwrap();
    browser.close().await.unwrap();
}
