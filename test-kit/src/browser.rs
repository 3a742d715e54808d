//! Headless Chromium driven over WebDriver, for end-to-end tests of what runs in a browser.
//!
//! [`Browser::start`] runs Debian's ChromeDriver on a loopback port of its own choosing and opens
//! one session in a new headless Chromium with a new, temporary profile. The browser records
//! every request its pages make and everything they write to the console, which
//! [`Browser::requested_urls`] and [`Browser::console_log`] read back. Dropping the `Browser`
//! kills ChromeDriver and every browser process it started, and returns once none runs.
//!
//! This machine's network is closed: the flags below turn off everything Chromium would fetch
//! by itself, else it stalls on refused connections.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The WebDriver client's crate, for its locators and keys: the same version as [`Browser::client`].
pub use fantoccini;

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver (package `chromium-driver`), of the same version as Chromium.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The window's size when started: a laptop's, so pages lay out as they would for a person.
pub const WINDOW: (u32, u32) = (1200, 800);

/// How long ChromeDriver and Chromium may take to start, and a `wait_for` condition to hold.
/// Only so that a broken browser fails the test instead of hanging it: nothing is timed.
const BOUND: Duration = Duration::from_secs(30);
/// How often a condition is asked again.
const POLL: Duration = Duration::from_millis(50);

/// What went wrong driving the browser.
#[derive(Debug)]
pub enum BrowserError {
    /// Chromium or ChromeDriver is not installed at the path named.
    Missing(&'static str),
    /// ChromeDriver could not be started, or did not come up; what it printed is attached.
    Driver(String),
    /// ChromeDriver opened no session: Chromium did not start.
    Session {
        /// ChromeDriver's answer.
        error: fantoccini::error::NewSessionError,
        /// What ChromeDriver printed, Chromium's own complaints among it.
        printed: String,
    },
    /// A WebDriver command failed, a script threw among them.
    Command(fantoccini::error::CmdError),
    /// A result was not of the type asked for.
    Json(serde_json::Error),
    /// `wait_for` gave up on a condition.
    Timeout {
        /// What was waited for.
        what: String,
        /// The condition's last value, or the error its last evaluation ended with.
        last: String,
        /// How long it was waited for.
        waited: Duration,
    },
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrowserError::Missing(path) => write!(
                f,
                "{path} is missing: browser tests need Debian's Chromium and ChromeDriver; \
                 install them with `apt-get install chromium chromium-driver` (.ci/run does)"
            ),
            BrowserError::Driver(why) => write!(f, "chromedriver did not start: {why}"),
            BrowserError::Session { error, printed } => {
                write!(f, "no WebDriver session (did Chromium start?): {error}\n{printed}")
            }
            BrowserError::Command(e) => write!(f, "WebDriver command failed: {e}"),
            BrowserError::Json(e) => write!(f, "unexpected result from the browser: {e}"),
            BrowserError::Timeout { what, last, waited } => {
                write!(f, "gave up after {waited:?} waiting for {what}; the condition was last {last}")
            }
        }
    }
}

impl std::error::Error for BrowserError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BrowserError::Session { error, .. } => Some(error),
            BrowserError::Command(e) => Some(e),
            BrowserError::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<fantoccini::error::CmdError> for BrowserError {
    fn from(e: fantoccini::error::CmdError) -> BrowserError {
        BrowserError::Command(e)
    }
}

impl From<serde_json::Error> for BrowserError {
    fn from(e: serde_json::Error) -> BrowserError {
        BrowserError::Json(e)
    }
}

/// One line a page wrote to the console, or an error the browser reported for it (a failed
/// load, an uncaught exception).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleEntry {
    /// ChromeDriver's level: `INFO` for `console.log`, `WARNING`, `SEVERE` for errors.
    pub level: String,
    /// The text, prefixed by Chromium with the script's URL and line.
    pub message: String,
}

/// A headless Chromium with its own ChromeDriver and profile, for one test.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    /// ChromeDriver's process, the leader of the group that Chromium's processes join.
    driver: tokio::process::Child,
    /// ChromeDriver's port on 127.0.0.1.
    port: u16,
    /// HOME for ChromeDriver and Chromium, removed when the `Browser` drops, after `drop` has
    /// killed what writes there.
    home: tempfile::TempDir,
    /// What the logs have returned so far: ChromeDriver hands each log entry out only once.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    urls: Vec<String>,
    console: Vec<ConsoleEntry>,
}

impl Browser {
    /// Whether Chromium and ChromeDriver are installed. Browser tests do not skip without them:
    /// [`Browser::start`] fails, saying what to install.
    pub fn available() -> bool {
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
    }

    /// Starts ChromeDriver and opens a session in a new headless Chromium, its window
    /// [`WINDOW`] large, on a blank page. Fails, saying what to install, without Chromium or
    /// ChromeDriver.
    pub async fn start() -> Result<Browser, BrowserError> {
        for path in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(path).exists() {
                return Err(BrowserError::Missing(path));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("session-browser-")
            .tempdir()
            .map_err(|e| BrowserError::Driver(format!("no temporary directory: {e}")))?;
        let log_path = dir.path().join("chromedriver.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| BrowserError::Driver(format!("{}: {e}", log_path.display())))?;
        let log_too = log.try_clone().map_err(|e| BrowserError::Driver(e.to_string()))?;

        // Port 0: ChromeDriver binds a free port itself and prints it, so no other test can take
        // the port between choosing and binding it. It listens on loopback only unless given
        // --allowed-ips, which it is not. Its output goes to a file rather than a pipe, so
        // nothing has to keep reading it for ChromeDriver not to block.
        let mut driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg("--port=0")
            // Chromium keeps its crash reports and a few other files under the user's config
            // directory whatever --user-data-dir says: all of it goes to the temporary
            // directory instead, so starts share nothing and leave nothing behind.
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            // A group of its own, which the browser's processes join: one signal ends them all,
            // and a ^C to the test's terminal group does not reach them half-way.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BrowserError::Driver(format!("{CHROMEDRIVER}: {e}")))?;
        let pid = driver.id().ok_or_else(|| BrowserError::Driver("exited at once".into()))?;

        // From here on a failure must not leave ChromeDriver running: `Starting` kills its
        // group on drop until the Browser owns it.
        let starting = Starting { group: Some(pid), home: dir.path().to_owned() };
        let port = match announced_port(&mut driver, &log_path).await {
            Ok(port) => port,
            Err(why) => return Err(BrowserError::Driver(format!("{why}\n{}", tail(&log_path)))),
        };
        if let Err(why) = ready(port).await {
            return Err(BrowserError::Driver(format!("{why}\n{}", tail(&log_path))));
        }

        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&dir.path().join("profile")))
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|error| BrowserError::Session { error, printed: tail(&log_path) })?;
        starting.disarm();
        Ok(Browser { client, driver, port, home: dir, seen: Mutex::new(Seen::default()) })
    }

    /// The WebDriver client, for everything the helpers here don't do.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// ChromeDriver's address: `http://127.0.0.1:PORT`.
    pub fn driver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process group of ChromeDriver and every browser process, all of which drop kills.
    /// Chromium's crash handlers alone leave it, for a session of their own: they end when the
    /// browser does.
    pub fn process_group(&self) -> Option<u32> {
        self.driver.id()
    }

    /// The temporary directory that ChromeDriver and Chromium run in, as their HOME: the
    /// profile, the crash handlers' database, ChromeDriver's output. Removed on drop.
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        Ok(self.client.goto(url).await?)
    }

    /// Resizes the window to `width` by `height` CSS pixels.
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<(), BrowserError> {
        Ok(self.client.set_window_size(width, height).await?)
    }

    /// The value of the JavaScript expression `js` in the current page, converted from JSON.
    /// A promise is awaited. `js` is one expression: it is run as `return (js);`.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> Result<T, BrowserError> {
        let value = self.client.execute(&format!("return ({js});"), Vec::new()).await?;
        Ok(serde_json::from_value(value)?)
    }

    /// Evaluates the JavaScript expression `js` until its value is truthy, and returns that
    /// value. Errors while evaluating (a page still loading, a name not yet defined) count as
    /// not yet. Gives up after a generous bound, 30 s, naming `what` and the last value or
    /// error.
    pub async fn wait_for(&self, js: &str, what: &str) -> Result<Value, BrowserError> {
        self.wait_for_within(js, what, BOUND).await
    }

    /// As [`Browser::wait_for`], giving up after `bound`: for a test of what must not happen.
    pub async fn wait_for_within(
        &self,
        js: &str,
        what: &str,
        bound: Duration,
    ) -> Result<Value, BrowserError> {
        let script = format!("return ({js});");
        let start = Instant::now();
        loop {
            let last = match self.client.execute(&script, Vec::new()).await {
                Ok(value) if truthy(&value) => return Ok(value),
                Ok(value) => value.to_string(),
                Err(e) => format!("an error: {e}"),
            };
            if start.elapsed() >= bound {
                return Err(BrowserError::Timeout { what: what.to_owned(), last, waited: start.elapsed() });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every URL the browser requested since it started, in order: documents, scripts,
    /// `fetch`es, and the WebSockets it opened (`ws://`, `wss://`), whether or not they
    /// were answered.
    pub async fn requested_urls(&self) -> Result<Vec<String>, BrowserError> {
        let entries = self.log("performance").await?;
        let mut seen = self.seen.lock().expect("the log's lock");
        seen.urls.extend(entries.iter().filter_map(requested_url));
        Ok(seen.urls.clone())
    }

    /// Everything the pages wrote to the console since the browser started, in order, with
    /// the errors the browser reported for them.
    pub async fn console_log(&self) -> Result<Vec<ConsoleEntry>, BrowserError> {
        let entries = self.log("browser").await?;
        let mut seen = self.seen.lock().expect("the log's lock");
        seen.console.extend(entries.iter().map(|entry| ConsoleEntry {
            level: entry["level"].as_str().unwrap_or_default().to_owned(),
            message: entry["message"].as_str().unwrap_or_default().to_owned(),
        }));
        Ok(seen.console.clone())
    }

    /// Runs the Chrome DevTools Protocol command `cmd` with `params` in the current page, as
    /// ChromeDriver relays it, and returns its result: for what WebDriver has no command for,
    /// such as where downloads go (`Browser.setDownloadBehavior`).
    pub async fn devtools(&self, cmd: &str, params: Value) -> Result<Value, BrowserError> {
        let body = json!({ "cmd": cmd, "params": params });
        Ok(self.client.issue_cmd(Devtools(body)).await?)
    }

    /// The entries of ChromeDriver's log `kind` that it has not handed out before.
    async fn log(&self, kind: &'static str) -> Result<Vec<Value>, BrowserError> {
        match self.client.issue_cmd(GetLog(kind)).await? {
            Value::Array(entries) => Ok(entries),
            other => Err(BrowserError::Driver(format!("log {kind} is not a list: {other}"))),
        }
    }

    /// Ends the session, which closes Chromium, then ChromeDriver. Dropping the `Browser` does
    /// the same by force; this is the orderly way, for a test that has finished.
    pub async fn close(mut self) -> Result<(), BrowserError> {
        let closed = self.client.clone().close().await;
        self.kill();
        let _ = self.driver.wait().await;
        Ok(closed?)
    }

    /// Kills ChromeDriver, every browser process and the browser's crash handlers.
    fn kill(&self) {
        end(self.driver.id(), self.home.path());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The client's own drop asks ChromeDriver to end the session, but only in the
        // background and only while the runtime lives: the kill is what makes sure.
        self.kill();
    }
}

/// Ends ChromeDriver and what it started if `Browser::start` fails after starting it.
#[derive(Debug)]
struct Starting {
    group: Option<u32>,
    home: PathBuf,
}

impl Starting {
    fn disarm(mut self) {
        self.group = None;
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if self.group.is_some() {
            end(self.group, &self.home);
        }
    }
}

/// Kills ChromeDriver, whose process group is `group`, with every process of the browser it
/// started in `home`, and waits until none of them runs: a test that goes on, or a test binary
/// that exits, leaves no browser behind, using the CPU or writing to the removed directory.
/// The wait blocks, in a destructor; it takes milliseconds.
fn end(group: Option<u32>, home: &Path) {
    let group = group.and_then(|pid| i32::try_from(pid).ok());
    if let Some(group) = group {
        // ESRCH, the group already gone, is what a second kill finds.
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    let start = Instant::now();
    loop {
        let left = running(group, home);
        if left.is_empty() || start.elapsed() > BOUND {
            return;
        }
        // The crash handlers, and anything that left the group since.
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes still running of the browser whose ChromeDriver leads `group` and that runs
/// in `home`: the group's, which every Chromium process inherits, and the crash handlers,
/// which Chromium starts in sessions of their own but with their database under `home`.
/// Zombies don't count: they hold nothing, and Chromium leaves its dead children to init to
/// reap.
fn running(group: Option<i32>, home: &Path) -> Vec<i32> {
    let mark = format!("--database={}/", home.display());
    let Ok(processes) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|pid| pid.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else { continue };
        // "pid (comm) state ppid pgrp ...": comm may hold anything, so split after its ')'.
        let Some((_, fields)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let in_group = group.is_some_and(|group| fields.get(2) == Some(&group.to_string().as_str()));
        let crash_handler = || {
            let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
            let mut args = cmdline.split(|&b| b == 0).map(String::from_utf8_lossy);
            args.next().is_some_and(|program| program.ends_with("chrome_crashpad_handler"))
                && args.any(|arg| arg.starts_with(&mark))
        };
        if in_group || crash_handler() {
            found.push(pid);
        }
    }
    found
}

/// What the session asks of ChromeDriver: Debian's Chromium, headless, fetching nothing by
/// itself, with a new profile in `profile`, and every log entry kept.
fn capabilities(profile: &Path) -> Capabilities {
    let (width, height) = WINDOW;
    let args = [
        "--headless".to_owned(),
        // As root, the sandbox cannot start; the tests load only their own pages.
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        // The closed network: no QUIC, no first-run pages, no background fetches, component
        // updates or sync, each of which would stall on refused connections.
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        // /dev/shm may be small in a container; Chromium crashes when it runs out.
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={width},{height}"),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        // performance: the DevTools network events, from which every requested URL is read.
        "goog:loggingPrefs": { "performance": "ALL", "browser": "ALL" },
    });
    match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// ChromeDriver's own command for its logs (Selenium's, as ChromeDriver serves it in W3C
/// mode): each call returns the entries of one log not returned before.
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": self.0 }).to_string()))
    }
}

/// ChromeDriver's own command relaying a DevTools Protocol command: `{"cmd", "params"}`.
#[derive(Debug)]
struct Devtools(Value);

impl WebDriverCompatibleCommand for Devtools {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// The URL that a performance log entry says was requested, if it is a request.
fn requested_url(entry: &Value) -> Option<String> {
    // Each entry's message is itself JSON: {"message": {"method": ..., "params": ...}}.
    let message: Value = serde_json::from_str(entry["message"].as_str()?).ok()?;
    let event = &message["message"];
    let url = match event["method"].as_str()? {
        "Network.requestWillBeSent" => &event["params"]["request"]["url"],
        "Network.webSocketCreated" => &event["params"]["url"],
        _ => return None,
    };
    url.as_str().map(str::to_owned)
}

/// JavaScript's truthiness, for a value that came back as JSON.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The port ChromeDriver says it listens on: "ChromeDriver was started successfully on port
/// N." Asked for port 0, it chose N itself.
async fn announced_port(driver: &mut tokio::process::Child, log: &Path) -> Result<u16, String> {
    const SAID: &str = "started successfully on port ";
    let deadline = Instant::now() + BOUND;
    loop {
        let printed = read(log);
        if let Some(port) = printed.split_once(SAID).and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok())
        }) {
            return Ok(port);
        }
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("it exited with {status} before listening"));
        }
        if Instant::now() >= deadline {
            return Err(format!("it did not say its port within {} s", BOUND.as_secs()));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until ChromeDriver's /status says it is ready for a session.
async fn ready(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + BOUND;
    loop {
        let last = match status(port).await {
            Ok(body) if body["value"]["ready"] == Value::Bool(true) => return Ok(()),
            Ok(body) => format!("it answered {body}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!("not ready within {} s: {last}", BOUND.as_secs()));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// GET /status, by hand: one request does not need an HTTP client. ChromeDriver keeps the
/// connection open whatever the request says, so the body is read to its Content-Length.
async fn status(port: u16) -> std::io::Result<Value> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
                });
                if length.is_some_and(|length| body.len() >= length) {
                    break;
                }
            }
        }
        let reply = String::from_utf8_lossy(&reply);
        let body = reply.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        serde_json::from_str(body).map_err(std::io::Error::other)
    };
    // One attempt is short: the loop in `ready` asks again.
    tokio::time::timeout(Duration::from_secs(2), exchange).await?
}

/// What ChromeDriver printed so far.
fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// The end of what ChromeDriver printed, for an error: the file goes with the `Browser`.
fn tail(path: &Path) -> String {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!("chromedriver printed:\n{}", lines[from..].join("\n"))
}
