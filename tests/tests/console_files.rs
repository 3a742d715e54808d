//! The console's files (issue 16, spec 11.10): a folder listed, a file downloaded whole by the
//! browser's own download manager, uploads that land with their bytes and mode, a folder
//! uploaded with its tree, an upload cancelled mid-way that leaves no file under its name, and a
//! policy's refusal shown in words; in a real headless Chromium against a real relay and agent.
//! Then the endpoints over raw HTTP, without a browser: who may ask, and what each answers.

use core::net::SocketAddr;
use core::time::Duration;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use fantoccini::Locator;
use serde_json::{Value, json};
use session_test_kit::System;
use session_test_kit::browser::Browser;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Only so that a broken test fails instead of hanging: nothing is timed.
const BOUND: Duration = Duration::from_secs(60);

async fn browser() -> Browser {
    assert!(
        Browser::available(),
        "the console's tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver"
    );
    Browser::start().await.expect("a headless Chromium")
}

/// Opens the console at `origin` (the relay, or a proxy in front of it), logs in with `token`,
/// and opens a terminal on `instance`, whose tab holds the files panel.
async fn terminal(browser: &Browser, origin: SocketAddr, token: &str, instance: &str) {
    browser.goto(&format!("http://{origin}/")).await.unwrap();
    browser.wait_for("!document.querySelector('#login-page').hidden", "the login page").await.unwrap();
    let client = browser.client();
    client.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    client.find(Locator::Css("#login-submit")).await.unwrap().click().await.unwrap();
    let row = format!("#instances tr[data-instance='{instance}'] button.connect");
    let ready = format!("document.querySelector(\"{row}\") && !document.querySelector(\"{row}\").disabled");
    browser.wait_for(&ready, "the instance's row").await.unwrap();
    client.find(Locator::Css(&row)).await.unwrap().click().await.unwrap();
    browser
        .wait_for(
            "sessionConsole.tabs().length && sessionConsole.tabs().at(-1).state === 'connected'",
            "a shell",
        )
        .await
        .unwrap();
}

/// Lists folder `path` in tab 0's panel and returns the names listed, failing on an error.
async fn cd(browser: &Browser, path: &Path) -> Vec<String> {
    let js = format!("sessionConsole.cd(0, {})", json!(path.to_str().unwrap()));
    match browser.eval::<Value>(&js).await.unwrap() {
        Value::Array(names) => names.into_iter().map(|n| n.as_str().unwrap().to_owned()).collect(),
        other => panic!("listing {}: {other}", path.display()),
    }
}

/// Waits until upload `index` of tab 0 has ended, and returns its summary.
async fn upload_ended(browser: &Browser, index: usize) -> Value {
    let js = format!(
        "(u => u && !['queued', 'uploading'].includes(u.state) && u)(sessionConsole.uploads(0)[{index}])"
    );
    browser.wait_for(&js, "the upload's end").await.unwrap()
}

/// Bytes `(i * 7 + 3) % 251` for i in 0..len: what the page makes with the same formula.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

const PATTERN_JS: &str = "Uint8Array.from({length: LEN}, (_, i) => (i * 7 + 3) % 251)";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A folder for one test's files. The agent runs as the test's user, so it may write there.
fn folder() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("console-files-").tempdir().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_lists_a_folder_and_the_browser_downloads_a_file_whole() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let dir = folder();
    std::fs::write(dir.path().join("hello.txt"), b"hello, files").unwrap();
    let content = pattern(3 << 20);
    std::fs::write(dir.path().join("data.bin"), &content).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub").join("inner.txt"), b"inside").unwrap();
    // A name that is not UTF-8: listed with U+FFFD, downloaded by its exact bytes.
    std::fs::write(dir.path().join(OsStr::from_bytes(b"caf\xe9.txt")), b"latin-1 name").unwrap();
    // A link to a file: listing it fails (not a folder), so the panel downloads it instead.
    std::os::unix::fs::symlink("hello.txt", dir.path().join("link.txt")).unwrap();
    // Times three days back, so that the words the panel shows do not depend on how long the
    // test took to get there.
    let then = std::time::SystemTime::now() - core::time::Duration::from_secs(3 * 86_400 + 3_600);
    for name in ["hello.txt", "data.bin", "sub"] {
        std::fs::File::open(dir.path().join(name)).unwrap().set_modified(then).unwrap();
    }

    let browser = browser().await;
    terminal(&browser, system.relay.addr, system.token(), "web-1").await;
    let mut names = cd(&browser, dir.path()).await;
    names.sort();
    assert_eq!(names, ["caf\u{fffd}.txt", "data.bin", "hello.txt", "link.txt", "sub"]);
    // Folders first, then files by name; sizes and times in words.
    let rows: Vec<String> = browser
        .eval(
            "[...document.querySelectorAll('.terminal-tab:not([hidden]) .files-list .file-row')]\
             .map(r => [...r.children].map(c => c.textContent).join('|'))",
        )
        .await
        .unwrap();
    assert_eq!(rows[1], "sub||3 days ago", "{rows:?}");
    assert!(rows.contains(&"hello.txt|12 B|3 days ago".to_owned()), "{rows:?}");
    assert!(rows.contains(&"data.bin|3.0 MiB|3 days ago".to_owned()), "{rows:?}");
    assert!(rows[0].starts_with(".."), "{rows:?}");

    // Into a folder by clicking it, and back by its breadcrumb.
    let sub = ".terminal-tab:not([hidden]) .file-row.dir[data-name='sub'] .file-name";
    browser.client().find(Locator::Css(sub)).await.unwrap().click().await.unwrap();
    let inner = browser
        .wait_for(
            "sessionConsole.filesState(0).path.endsWith('/sub') && sessionConsole.files(0)",
            "the sub-folder",
        )
        .await
        .unwrap();
    assert_eq!(inner, json!(["inner.txt"]));

    // The download URL fetched by the page: the whole file, named for the browser.
    let url: String = browser
        .eval(&format!("sessionConsole.downloadUrl(0, {})", json!(dir.path().join("data.bin"))))
        .await
        .unwrap();
    let fetched: Value = browser
        .eval(&format!(
            "fetch({}).then(async r => [r.status, r.headers.get('content-disposition'), \
             [...new Uint8Array(await crypto.subtle.digest('SHA-256', await r.arrayBuffer()))]\
             .map(b => b.toString(16).padStart(2, '0')).join('')])",
            json!(url)
        ))
        .await
        .unwrap();
    assert_eq!(fetched[0], 200);
    assert_eq!(fetched[1], "attachment; filename=\"data.bin\"; filename*=UTF-8''data.bin");
    assert_eq!(fetched[2], sha256_hex(&content));

    // A click on a file: the browser's download manager saves it, as it comes, to its folder.
    let downloads = folder();
    browser
        .devtools(
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allow", "downloadPath": downloads.path().to_str().unwrap() }),
        )
        .await
        .unwrap();
    cd(&browser, dir.path()).await;
    for name in ["data.bin", "caf\u{fffd}.txt"] {
        let link = format!(".terminal-tab:not([hidden]) .file-row.file[data-name='{name}'] a.file-name");
        browser.client().find(Locator::Css(&link)).await.unwrap().click().await.unwrap();
    }
    let link = ".terminal-tab:not([hidden]) .file-row.symlink[data-name='link.txt'] .file-name";
    browser.client().find(Locator::Css(link)).await.unwrap().click().await.unwrap();
    let saved = downloads.path().join("data.bin");
    let odd_saved = downloads.path().join("caf\u{fffd}.txt");
    let link_saved = downloads.path().join("link.txt");
    until(
        || {
            std::fs::read(&saved).is_ok_and(|bytes| bytes == content)
                && odd_saved.exists()
                && link_saved.exists()
        },
        "the saved downloads",
    )
    .await;
    assert_eq!(std::fs::read(&odd_saved).unwrap(), b"latin-1 name");
    assert_eq!(std::fs::read(&link_saved).unwrap(), b"hello, files");
    assert_eq!(browser.eval::<String>("sessionConsole.filesState(0).error").await.unwrap(), "");
    // No error but the one the link's probe brought: the browser reports every answer other
    // than 2xx to a fetch as one.
    let log = browser.console_log().await.unwrap();
    let probe = "link.txt - Failed to load resource: the server responded with a status of 409";
    assert!(log.iter().all(|entry| entry.level != "SEVERE" || entry.message.contains(probe)), "{log:?}");
    browser.close().await.unwrap();
}

/// Waits until `done` holds, checking every 50 ms; a hang fails the test after [`BOUND`].
async fn until(done: impl Fn() -> bool, what: &str) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(BOUND, wait).await.unwrap_or_else(|_| panic!("gave up waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_with_their_bytes_and_mode_and_a_folder_with_its_tree() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let dir = folder();
    let browser = browser().await;
    terminal(&browser, system.relay.addr, system.token(), "web-1").await;
    assert!(cd(&browser, dir.path()).await.is_empty());

    // A file as the Upload button or a drop gives it, with the mode asked for.
    let len = 3 << 20;
    let js = format!(
        "sessionConsole.upload(0, 'up.bin', {}, {{mode: '640'}})",
        PATTERN_JS.replace("LEN", &len.to_string())
    );
    let index: usize = browser.eval(&js).await.unwrap();
    let done = upload_ended(&browser, index).await;
    assert_eq!(done["state"], "done", "{done}");
    let landed = dir.path().join("up.bin");
    assert!(std::fs::read(&landed).unwrap() == pattern(len), "the bytes sent");
    assert_eq!(std::fs::metadata(&landed).unwrap().permissions().mode() & 0o7777, 0o640);

    // Again: refused, the file being there, until Replace is asked for.
    let js = "sessionConsole.upload(0, 'up.bin', 'a shorter file')";
    let again: usize = browser.eval(js).await.unwrap();
    let refused = upload_ended(&browser, again).await;
    assert_eq!(
        (refused["state"].as_str(), refused["code"].as_str()),
        (Some("failed"), Some("EXISTS")),
        "{refused}"
    );
    assert!(refused["error"].as_str().unwrap().contains("exists"), "{refused}");
    let replace =
        format!(".terminal-tab:not([hidden]) .uploads .upload:nth-child({}) .upload-replace", again + 1);
    browser.client().find(Locator::Css(&replace)).await.unwrap().click().await.unwrap();
    let replaced = upload_ended(&browser, again).await;
    assert_eq!(replaced["state"], "done", "{replaced}");
    assert_eq!(std::fs::read(&landed).unwrap(), b"a shorter file");

    // A folder, as a drop of one gives it: its folders made, then its files.
    let tree = json!({ "tree": { "a.txt": "alpha", "deeper": { "b.txt": "beta", "empty": {} } } });
    browser.eval::<Value>(&format!("sessionConsole.uploadFolder(0, {tree})")).await.unwrap();
    browser
        .wait_for(
            "sessionConsole.uploads(0).length === 4 && sessionConsole.uploads(0).every(u => u.state === 'done')",
            "the folder's files",
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("tree/a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(dir.path().join("tree/deeper/b.txt")).unwrap(), b"beta");
    assert!(dir.path().join("tree/deeper/empty").is_dir());

    // A file dropped on the panel.
    browser
        .eval::<Value>(
            "(() => { const dt = new DataTransfer(); dt.items.add(new File(['dropped!'], 'dropped.txt')); \
             document.querySelector('.terminal-tab:not([hidden]) .files-panel').dispatchEvent(\
             new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); return true; })()",
        )
        .await
        .unwrap();
    upload_ended(&browser, 4).await;
    assert_eq!(std::fs::read(dir.path().join("dropped.txt")).unwrap(), b"dropped!");
    // The listing follows.
    browser
        .wait_for(
            "['dropped.txt', 'tree', 'up.bin'].every(n => sessionConsole.files(0).includes(n))",
            "the new names",
        )
        .await
        .unwrap();
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cancelled_mid_way_leaves_no_file_under_its_name() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let dir = folder();
    // The browser reaches the relay through a valve that can hold what it sends: the upload is
    // then mid-way for as long as the test needs, however fast the machine.
    let valve = Valve::start(system.relay.addr).await;
    let browser = browser().await;
    terminal(&browser, valve.addr, system.token(), "web-1").await;
    cd(&browser, dir.path()).await;

    // 4 MiB go through, then nothing more: far short of the 48 MiB the file has.
    valve.hold_after(4 << 20);
    let index: usize =
        browser.eval("sessionConsole.upload(0, 'big.bin', new Uint8Array(48 << 20))").await.unwrap();
    browser
        .wait_for(&format!("sessionConsole.uploads(0)[{index}].loaded > 0"), "the upload under way")
        .await
        .unwrap();
    // The agent has begun writing it: its partial file is there (spec 12.11).
    let partial = dir.path().join(".big.bin.session-partial");
    until(|| partial.exists(), "the agent's partial file").await;

    let cancel = ".terminal-tab:not([hidden]) .uploads .upload[data-state='uploading'] .upload-cancel";
    browser.client().find(Locator::Css(cancel)).await.unwrap().click().await.unwrap();
    let cancelled = upload_ended(&browser, index).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    // What the browser had sent before it gave up reaches the relay, and then its end.
    valve.open();

    let target = dir.path().join("big.bin");
    let kind = format!("file write: {}", target.display());
    let record = audited(&system, |r| r["kind"] == kind.as_str() && r["event"] == "session").await;
    assert_eq!(record["file_outcome"], "cancelled", "{record}");
    assert!(record["bytes_to_instance"].as_u64().unwrap() > 0, "{record}");
    assert!(!target.exists(), "no file under the upload's name");
    browser.close().await.unwrap();
}

/// The first audit record that `wanted` picks, once the store has it.
async fn audited(system: &System, wanted: impl Fn(&Value) -> bool) -> Value {
    let find = async {
        loop {
            let records = system.store.audit(10_000).unwrap();
            if let Some(record) =
                records.iter().filter_map(|r| serde_json::from_str::<Value>(r).ok()).find(|r| wanted(r))
            {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // A hang fails the test after BOUND, saying what the audit held then.
    match tokio::time::timeout(BOUND, find).await {
        Ok(record) => record,
        Err(_) => panic!("no such audit record in {:#?}", system.store.audit(10_000).unwrap()),
    }
}

/// A policy that lets alice browse and read, and denies her writing.
const READER: &str = r#"{"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": ["session:DescribeInstanceStatus", "session:StartSession",
        "session:ListFiles", "session:ReadFile"], "Resource": "*"},
    {"Effect": "Deny", "Action": "session:WriteFile", "Resource": "*"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_denies_writing_shows_why_the_upload_was_refused() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let alice = system.user("alice", READER);
    let dir = folder();
    let browser = browser().await;
    terminal(&browser, system.relay.addr, &alice.token, "web-1").await;
    cd(&browser, dir.path()).await;
    let index: usize = browser.eval("sessionConsole.upload(0, 'nope.txt', 'not allowed')").await.unwrap();
    let refused = upload_ended(&browser, index).await;
    assert_eq!((refused["state"].as_str(), refused["code"].as_str()), (Some("failed"), Some("PROHIBITED")));
    // The words on the page: who may not do what, where, and why.
    let shown: String = browser
        .eval(&text_of(".terminal-tab:not([hidden]) .uploads .upload[data-state='failed'] .upload-error"))
        .await
        .unwrap();
    let path = dir.path().join("nope.txt");
    assert_eq!(
        shown,
        format!(
            "alice may not session:WriteFile on srn:session:test:test:instance/web-1 for {}: a policy denies it",
            path.display()
        )
    );
    assert!(!path.exists());
    browser.close().await.unwrap();
}

/// The text of the element `selector` finds, as a JavaScript expression.
fn text_of(selector: &str) -> String {
    format!("document.querySelector({}).textContent", json!(selector))
}

/// A TCP proxy in front of the relay whose browser-to-relay direction passes a budget of bytes
/// ([`Valve::hold_after`]) and then holds everything until [`Valve::open`]; the other direction
/// always flows.
struct Valve {
    addr: SocketAddr,
    budget: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Valve {
    async fn start(relay: SocketAddr) -> Valve {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (budget, _) = watch::channel(u64::MAX);
        let shared = budget.clone();
        let accept = tokio::spawn(async move {
            while let Ok((browser, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(relay).await else { continue };
                let _ = browser.set_nodelay(true);
                let (from_browser, to_browser) = browser.into_split();
                let (from_relay, to_relay) = upstream.into_split();
                tokio::spawn(held(from_browser, to_relay, shared.clone()));
                tokio::spawn(async move {
                    let (mut from_relay, mut to_browser) = (from_relay, to_browser);
                    let _ = tokio::io::copy(&mut from_relay, &mut to_browser).await;
                    let _ = to_browser.shutdown().await;
                });
            }
        });
        Valve { addr, budget, accept }
    }

    /// From now on, `bytes` more go to the relay, then nothing.
    fn hold_after(&self, bytes: u64) {
        self.budget.send_replace(bytes);
    }

    fn open(&self) {
        self.budget.send_replace(u64::MAX);
    }
}

impl Drop for Valve {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Moves what the browser sends to the relay within the budget; what is not read waits in the
/// sockets, so the browser's sending stalls as it would on a slow link.
async fn held(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    budget: watch::Sender<u64>,
) {
    let mut allowed = budget.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(left) = allowed.wait_for(|left| *left > 0).await.map(|left| *left) else { break };
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let read = match from.read(&mut buf[..room]).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        budget.send_modify(|left| {
            if *left != u64::MAX {
                *left = left.saturating_sub(read as u64);
            }
        });
        if to.write_all(&buf[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

// ---- The endpoints over raw HTTP -------------------------------------------------------------

/// One HTTP response, read to the connection's end.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// `method target` with `headers` and `body`, on a connection of its own.
async fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply { status, head, body: raw[end..].to_vec() }
}

/// A console login for `token`: the cookie, and the Origin its requests carry.
async fn login(system: &System, token: &str) -> (String, String) {
    let origin = format!("http://{}", system.relay.addr);
    let body = json!({ "token": token }).to_string();
    let headers = [("Origin", origin.as_str()), ("Content-Type", "application/json")];
    let reply = http(system.relay.addr, "POST", "/console/api/login", &headers, body.as_bytes()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    (cookie, origin)
}

/// Percent-encodes every byte of `path`.
fn pct(path: &[u8]) -> String {
    path.iter().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_refuse_strangers_foreign_pages_and_what_the_policy_denies() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let addr = system.relay.addr;
    let logs_only = r#"{"Version": "1", "Statement": {"Effect": "Allow",
        "Action": ["session:ListFiles", "session:ReadFile"], "Resource": "*",
        "Condition": {"StringLike": {"session:FilePath": "/var/log/*"}}}}"#;
    let alice = system.user("alice", logs_only);
    let (cookie, origin) = login(&system, &alice.token).await;
    let with_login = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];

    // No login: 401, whatever is asked.
    for (method, target) in [
        ("GET", "/console/api/files/web-1"),
        ("GET", "/console/api/download/web-1?path=/etc/hosts"),
        ("PUT", "/console/api/upload/web-1?path=/tmp/x"),
        ("POST", "/console/api/mkdir/web-1?path=/tmp/d"),
    ] {
        let reply = http(addr, method, target, &[("Origin", origin.as_str())], b"").await;
        assert_eq!(reply.status, 401, "{method} {target}: {reply:?}");
        assert!(reply.json()["error"].as_str().unwrap().contains("not logged in"));
    }
    // A page of another origin, the login's cookie with it: 403.
    let foreign = [("Cookie", cookie.as_str()), ("Origin", "http://evil.example")];
    let reply = http(addr, "GET", "/console/api/files/web-1?path=/var/log", &foreign, b"").await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.json()["error"], "origin http://evil.example is not allowed");
    let reply =
        http(addr, "PUT", "/console/api/upload/web-1?path=/var/log/x", &[("Cookie", &cookie)], b"x").await;
    assert_eq!(reply.status, 403, "a change without an Origin: {reply:?}");

    // The policy: a listing outside /var/log, and any upload, refused with its words.
    let reply = http(addr, "GET", "/console/api/files/web-1?path=/etc", &with_login, b"").await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (403, Some("PROHIBITED")), "{reply:?}");
    assert_eq!(
        reply.json()["error"],
        "alice may not session:ListFiles on srn:session:test:test:instance/web-1 for /etc: \
         no policy allows it (condition StringLike session:FilePath /var/log/* does not hold)"
    );
    let reply = http(addr, "PUT", "/console/api/upload/web-1?path=/var/log/x", &with_login, b"abc").await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(reply.json()["error"].as_str().unwrap().starts_with("alice may not session:WriteFile"));

    // Not found: an instance, and a file.
    let reply = http(addr, "GET", "/console/api/files/db-9?path=/var/log", &with_login, b"").await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (404, Some("unknown instance db-9")));
    let reply =
        http(addr, "GET", "/console/api/download/web-1?path=/var/log/no-such-file", &with_login, b"").await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (404, Some("NOT_FOUND")), "{reply:?}");
    // And what the request itself gets wrong.
    let reply = http(addr, "GET", "/console/api/files/web-1?path=var/log", &with_login, b"").await;
    assert_eq!(reply.status, 400);
    let reply = http(addr, "POST", "/console/api/files/web-1", &with_login, b"").await;
    assert_eq!(reply.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_up_and_down_over_plain_http_with_their_hashes() {
    let mut system = System::start(None).await;
    system.agent("web-1").await;
    let addr = system.relay.addr;
    let (cookie, origin) = login(&system, system.token()).await;
    let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    let dir = folder();
    let base = dir.path().to_str().unwrap().as_bytes().to_vec();
    let path = |name: &[u8]| pct(&[base.as_slice(), b"/", name].concat());

    // A folder, and a file in it whose name is not UTF-8.
    let reply =
        http(addr, "POST", &format!("/console/api/mkdir/web-1?path={}&mode=750", path(b"d")), &headers, b"")
            .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(std::fs::metadata(dir.path().join("d")).unwrap().permissions().mode() & 0o777, 0o750);
    let content = pattern(5 << 20);
    let target = format!("/console/api/upload/web-1?path={}&mode=600", path(b"d/r\xe9sum\xe9.bin"));
    let reply = http(addr, "PUT", &target, &headers, &content).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.json()["size"], content.len());
    assert_eq!(reply.json()["sha256"], sha256_hex(&content));
    // Not again unless asked.
    let reply = http(addr, "PUT", &target, &headers, b"other").await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (409, Some("EXISTS")), "{reply:?}");

    let reply =
        http(addr, "GET", &format!("/console/api/files/web-1?path={}", path(b"d")), &headers, b"").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let listing = reply.json();
    assert_eq!(listing["entries"][0]["name_hex"], hex::encode(b"r\xe9sum\xe9.bin"));
    assert_eq!(listing["entries"][0]["name"], "r\u{fffd}sum\u{fffd}.bin");
    assert_eq!(listing["entries"][0]["size"], content.len());
    assert_eq!(listing["entries"][0]["mode"], 0o600);

    let download = format!("/console/api/download/web-1?path={}", path(b"d/r\xe9sum\xe9.bin"));
    let reply = http(addr, "GET", &download, &headers, b"").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some(content.len().to_string().as_str()));
    assert!(reply.body == content, "the bytes uploaded");
    let reply =
        http(addr, "GET", &format!("/console/api/download/web-1?path={}", path(b"d")), &headers, b"").await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (409, Some("IS_A_DIRECTORY")), "{reply:?}");

    // Renamed, then removed; each a session in the audit, with what moved.
    let rename =
        format!("/console/api/rename/web-1?from={}&to={}", path(b"d/r\xe9sum\xe9.bin"), path(b"d/cv.bin"));
    assert_eq!(http(addr, "POST", &rename, &headers, b"").await.status, 200);
    let remove = format!("/console/api/remove/web-1?path={}", path(b"d/cv.bin"));
    assert_eq!(http(addr, "POST", &remove, &headers, b"").await.status, 200);
    assert!(std::fs::read_dir(dir.path().join("d")).unwrap().next().is_none());
    let written = format!("file write: {}/d/r\u{fffd}sum\u{fffd}.bin", dir.path().display());
    let record = audited(&system, |r| r["kind"] == written.as_str() && r["file_outcome"] == "ok").await;
    assert_eq!(record["actor"], "tester");
    assert_eq!(record["file_size"], content.len());
    assert_eq!(record["file_sha256"], sha256_hex(&content));
}
