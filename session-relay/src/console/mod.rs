//! The browser console, served on the relay's port over plain HTTP/1.1 (spec 11.10): the page
//! and its assets, logging in and out, and files moved to and from instances (`files.rs`).
//! Everything else the page does goes over the same WebSocket endpoints as the CLI (11.4),
//! authenticated by the login's cookie instead of a bearer token, and only from an allowed
//! Origin.

mod assets;
mod channel;
mod files;
mod logins;

use logins::Logins;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

use crate::access::Access;
use crate::audit::{Kind, Outcome, Record};
use crate::handshakes::{Slot, off_workers};
use crate::http::{Head, HeadError, read_head};
use crate::registry::Registry;
use crate::sessions::Sessions;
use crate::store::{Principal, Refusal};
use crate::usage::{Limits, Usage};

/// How long a kept-alive connection may wait for its next request.
const IDLE: Duration = Duration::from_secs(10);

/// Bytes of a request body, at most: a login is a token in a little JSON.
const MAX_BODY: usize = 4096;

/// What the page may load and where it may connect: only the relay itself. `wasm-unsafe-eval`
/// lets the page compile its own WebAssembly (and nothing else); xterm.js sets its colours in
/// a style element of its own.
const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// What the console needs beyond the store: its logins, and where pages may come from.
#[derive(Debug, Clone)]
pub(crate) struct Console {
    logins: Logins,
    /// Origins allowed besides the relay's own (`--console-origin`).
    origins: Arc<[String]>,
    /// Served under TLS: cookies are `Secure`, and the relay's own origin is `https://`.
    secure: bool,
}

impl Console {
    pub(crate) fn new(origins: &[String], secure: bool) -> Console {
        Console { logins: Logins::default(), origins: origins.into(), secure }
    }

    /// Whether a page from `origin` may use the relay: the relay's own origin (`host` as the
    /// request named it), or one the operator allowed.
    pub(crate) fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let scheme = if self.secure { "https" } else { "http" };
        let own = host.is_some_and(|host| {
            origin
                .strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix("://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        });
        own || self.origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }

    /// Who the login in a `Cookie` header is for, while it lasts.
    pub(crate) fn who(&self, cookies: Option<&str>) -> Option<Principal> {
        self.logins.find(logins::cookie(cookies, logins::COOKIE)?).map(|(who, _)| who)
    }
}

/// What the console's requests read: for the file endpoints, what a client's connection
/// reaches too (the instances' agents, the sessions in progress, the users' limits).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub(crate) console: &'a Console,
    pub(crate) access: &'a Access,
    pub(crate) registry: &'a Registry,
    pub(crate) sessions: &'a Sessions,
    pub(crate) usage: &'a Usage,
    pub(crate) limits: &'a Limits,
    pub(crate) peer: SocketAddr,
}

/// Serves HTTP requests on a connection whose first request, `head`, is already in `buf`,
/// until the peer closes it, idles, or a response closes it. The connection holds its
/// handshake `slot` until a file request proves who sent it, and no longer than it lasts.
pub(crate) async fn serve<S>(
    mut stream: S,
    mut buf: Vec<u8>,
    mut head: Head,
    place: Place<'_>,
    slot: Slot,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut slot = Some(slot);
    loop {
        if files::handles(&head) {
            // A file request streams its own body and response, and ends the connection.
            return Box::pin(files::serve(&mut stream, &mut buf, &head, place, &mut slot)).await;
        }
        let (response, body_len) = match body_len(&head) {
            Ok(len) => {
                read_body(&mut stream, &mut buf, head.len + len).await?;
                let body = buf.get(head.len..head.len + len).unwrap_or_default();
                (off_workers(|| respond(&head, body, place)), len)
            }
            Err(refusal) => (refusal, 0),
        };
        let close =
            response.close || head.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        response.send(&mut stream, &head.method, close).await.map_err(|e| e.to_string())?;
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
        buf.drain(..(head.len + body_len).min(buf.len()));
        head = match tokio::time::timeout(IDLE, read_head(&mut stream, &mut buf)).await {
            Ok(Ok(Some(next))) if !next.is_upgrade() => next,
            // Browsers open each WebSocket on a connection of its own.
            Ok(Ok(Some(_))) => {
                let refusal =
                    Response::text(400, "a WebSocket upgrade must be its connection's first request");
                let _ = refusal.send(&mut stream, &head.method, true).await;
                return Ok(());
            }
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => {
                debug!(peer = %place.peer, error = %e, "console request refused");
                refuse_head(&mut stream, &e).await;
                return Ok(());
            }
        };
    }
}

/// Answers a request whose head could not be read, and closes.
pub(crate) async fn refuse_head<S: AsyncWrite + Unpin>(stream: &mut S, e: &HeadError) {
    let status = match e {
        HeadError::TooLarge => 431,
        HeadError::Malformed(_) => 400,
        // Nobody to answer.
        HeadError::Truncated | HeadError::Io(_) => return,
    };
    let _ = Response::text(status, &e.to_string()).send(stream, "GET", true).await;
    let _ = stream.shutdown().await;
}

/// The length of `head`'s body, or the refusal of a body the console does not take.
fn body_len(head: &Head) -> Result<usize, Response> {
    if head.header("transfer-encoding").is_some() {
        return Err(Response::text(411, "send a Content-Length").closing());
    }
    let len = match head.header("content-length") {
        None => 0,
        Some(len) => len.parse::<usize>().map_err(|_| Response::text(400, "bad Content-Length").closing())?,
    };
    if len > MAX_BODY {
        return Err(Response::text(413, "request body too long").closing());
    }
    Ok(len)
}

async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    upto: usize,
) -> Result<(), String> {
    while buf.len() < upto {
        let room = (upto - buf.len()) as u64;
        let read = tokio::time::timeout(IDLE, (&mut *stream).take(room).read_buf(buf))
            .await
            .map_err(|_| "request body timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the connection ended within a request body".to_owned());
        }
    }
    Ok(())
}

fn respond(head: &Head, body: &[u8], place: Place<'_>) -> Response {
    let method = head.method.as_str();
    match (method, head.path()) {
        ("GET" | "HEAD", "/") => asset(head, assets::INDEX),
        ("GET" | "HEAD", path) if path.starts_with("/console/") && !path.starts_with("/console/api/") => {
            asset(head, path.trim_start_matches("/console/"))
        }
        ("POST", "/console/api/login") => login(head, body, place),
        ("POST", "/console/api/logout") => logout(head, place),
        ("GET", "/console/api/me") => me(head, place),
        (_, "/console/api/login" | "/console/api/logout" | "/console/api/me") => {
            Response::text(405, "method not allowed")
        }
        _ => Response::text(404, "not found: the console is at /"),
    }
}

fn asset(head: &Head, path: &str) -> Response {
    let Some((asset, tag)) = assets::get(path) else { return Response::text(404, "not found") };
    if head.header("if-none-match").is_some_and(|tags| tags.split(',').any(|t| t.trim() == tag)) {
        let mut response = Response::new(304, "", Vec::new());
        response.headers.push(("ETag", tag.to_owned()));
        return response;
    }
    let mut response = Response::new(200, asset.content_type, asset.body);
    response.headers.push(("ETag", tag.to_owned()));
    response
}

#[derive(Deserialize)]
struct LoginRequest {
    token: String,
}

#[derive(Serialize)]
struct Who<'a> {
    user: &'a str,
    /// Unix seconds.
    expires: u64,
}

#[derive(Serialize)]
struct Failure<'a> {
    error: &'a str,
}

/// A state-changing request must come from a page of an allowed origin: a page elsewhere could
/// otherwise log a browser in or out behind its user's back.
fn from_allowed_origin(head: &Head, console: &Console) -> Result<(), Response> {
    match head.header("origin") {
        Some(origin) if console.origin_allowed(origin, head.header("host")) => Ok(()),
        Some(origin) => {
            Err(Response::json(403, &Failure { error: &format!("origin {origin} is not allowed") }))
        }
        None => Err(Response::json(403, &Failure { error: "the request has no Origin" })),
    }
}

fn login(head: &Head, body: &[u8], place: Place<'_>) -> Response {
    if let Err(refusal) = from_allowed_origin(head, place.console) {
        return refusal;
    }
    let Ok(request) = serde_json::from_slice::<LoginRequest>(body) else {
        return Response::json(400, &Failure { error: "send {\"token\": \"srt_...\"}" });
    };
    let who = match place.access.store.authenticate(request.token.trim()) {
        Ok(who) => who,
        Err(refusal) => {
            let status = if matches!(refusal, Refusal::Store(_)) { 503 } else { 401 };
            let reason = refusal.to_string();
            let record = Record {
                peer: Some(place.peer.to_string()),
                path: Some(head.path().to_owned()),
                status: Some(status),
                ..Record::refused(format!("console login: {reason}"))
            };
            if place.access.audit.write_unproven(place.peer.ip(), &record) {
                info!(peer = %place.peer, %reason, "console login refused");
            }
            return Response::json(status, &Failure { error: &reason });
        }
    };
    let started = match place.console.logins.start(who.clone(), logins::LIFETIME) {
        Ok(started) => started,
        Err(e) => return Response::json(503, &Failure { error: &e }),
    };
    place.access.audit.write(&Record {
        actor: Some(who.user.clone()),
        peer: Some(place.peer.to_string()),
        reason: Some("console login".to_owned()),
        ..Record::new(Kind::Login, Outcome::Allowed)
    });
    info!(peer = %place.peer, user = %who.user, "console login");
    let expires = unix(started.expires);
    let mut response = Response::json(200, &Who { user: &who.user, expires });
    let secure = if place.console.secure { "; Secure" } else { "" };
    let max_age = logins::LIFETIME.as_secs();
    let cookie = format!(
        "{}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
        logins::COOKIE,
        started.secret
    );
    response.headers.push(("Set-Cookie", cookie));
    response
}

fn logout(head: &Head, place: Place<'_>) -> Response {
    if let Err(refusal) = from_allowed_origin(head, place.console) {
        return refusal;
    }
    if let Some(who) =
        logins::cookie(head.header("cookie"), logins::COOKIE).and_then(|s| place.console.logins.end(s))
    {
        place.access.audit.write(&Record {
            actor: Some(who.user.clone()),
            peer: Some(place.peer.to_string()),
            reason: Some("console logout".to_owned()),
            ..Record::new(Kind::Login, Outcome::Ended)
        });
        info!(peer = %place.peer, user = %who.user, "console logout");
    }
    let mut response = Response::json(200, &serde_json::json!({}));
    let secure = if place.console.secure { "; Secure" } else { "" };
    let cookie = format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}", logins::COOKIE);
    response.headers.push(("Set-Cookie", cookie));
    response
}

fn me(head: &Head, place: Place<'_>) -> Response {
    let found =
        logins::cookie(head.header("cookie"), logins::COOKIE).and_then(|s| place.console.logins.find(s));
    // Not logged in is an answer, not an error: the page asks before it knows.
    let nobody = |why: &str| Response::json(200, &serde_json::json!({ "user": null, "reason": why }));
    let Some((who, expires)) = found else { return nobody("not logged in") };
    // The token behind the login may have been revoked or have expired since.
    if let Err(refusal) = place.access.store.token_valid(&who.token) {
        return nobody(&refusal.to_string());
    }
    Response::json(200, &Who { user: &who.user, expires: unix(expires) })
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One response, with the headers every console response carries.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    /// An asset's bytes are served from the binary as they are, never copied.
    body: Cow<'static, [u8]>,
    headers: Vec<(&'static str, String)>,
    /// The connection closes after it.
    close: bool,
    /// Not to be kept in any cache (a file's contents), rather than revalidated.
    no_store: bool,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<Cow<'static, [u8]>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
            close: false,
            no_store: false,
        }
    }

    fn text(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{text}\n").into_bytes())
    }

    fn json(status: u16, value: &impl Serialize) -> Response {
        Response::new(status, "application/json", serde_json::to_vec(value).unwrap_or_default())
    }

    fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// Writes the response to a `method` request; `close` says the connection closes after it.
    async fn send<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        method: &str,
        close: bool,
    ) -> std::io::Result<()> {
        stream.write_all(self.head(close).as_bytes()).await?;
        if method != "HEAD" {
            stream.write_all(&self.body).await?;
        }
        Ok(())
    }

    /// The status line and headers, through the blank line.
    fn head(&self, close: bool) -> String {
        self.head_of(self.body.len() as u64, close)
    }

    /// As [`Response::head`] for a body of `len` bytes sent apart from it (a download).
    fn head_of(&self, len: u64, close: bool) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(512);
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        if !self.content_type.is_empty() {
            let _ = write!(out, "Content-Type: {}\r\n", self.content_type);
        }
        let _ = write!(out, "Content-Length: {len}\r\n");
        // Revalidated at each load (assets carry an ETag); answers about logins never cached.
        out.push_str(if self.no_store {
            "Cache-Control: no-store\r\n"
        } else {
            "Cache-Control: no-cache\r\n"
        });
        let _ = write!(out, "Content-Security-Policy: {CSP}\r\n");
        out.push_str(
            "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n",
        );
        out.push_str("Cross-Origin-Opener-Policy: same-origin\r\n");
        if self.content_type == "application/json" {
            out.push_str("Pragma: no-cache\r\n");
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relays_own_origin_is_allowed_and_others_only_when_listed() {
        let console = Console::new(&["https://ops.example".to_owned()], false);
        assert!(console.origin_allowed("http://127.0.0.1:7070", Some("127.0.0.1:7070")));
        assert!(!console.origin_allowed("http://127.0.0.1:7071", Some("127.0.0.1:7070")));
        assert!(!console.origin_allowed("https://127.0.0.1:7070", Some("127.0.0.1:7070")));
        assert!(!console.origin_allowed("http://evil.example", Some("127.0.0.1:7070")));
        assert!(!console.origin_allowed("null", None));
        assert!(console.origin_allowed("https://ops.example", Some("127.0.0.1:7070")));
        let tls = Console::new(&[], true);
        assert!(tls.origin_allowed("https://relay.example", Some("relay.example")));
        assert!(!tls.origin_allowed("http://relay.example", Some("relay.example")));
    }
}
