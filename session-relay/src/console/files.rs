//! The console's file endpoints (spec 11.10): list a directory, download a file, upload one,
//! make a directory, remove, rename. Each request is one File channel (spec 5.19) to the
//! instance's agent, admitted, limited, listed and audited as a session like the CLI's
//! ([`FileChannel`]).
//!
//! Files move over plain HTTP on the relay's port, not over the page's WebSocket: a download is
//! a response the browser's own download manager writes to disk as it arrives, and an upload is
//! a request body the browser reads from disk as it goes, so the page never holds a file whole.
//! The relay streams both through one window: it grants the agent credit for a download's bytes
//! only once they are written to the browser's socket, and reads an upload's body only while
//! the agent's connection has room for it.
//!
//! A download's body is never completed unless the bytes match the agent's End: the last byte
//! is held back until the SHA-256 of what went out agrees, and on a difference (or a Failed, or
//! the agent gone) the connection is cut short of its `Content-Length`, so the browser marks the
//! download failed instead of keeping a wrong file.
//!
//! Paths travel in the query as percent-encoded bytes, since a file name need not be UTF-8;
//! listings give each name both as text (invalid bytes replaced) and as hex, the exact bytes.

use std::time::Duration;

use ring::digest::{Context as Sha256, SHA256};
use serde::Serialize;
use session_proto::{Entry, EntryKind, FileError, FileRequest, MAX_PATH_LEN, Record, RefuseReason};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

use super::channel::{FileChannel, Heard};
use super::{Failure, MAX_BODY, Place, Response, body_len, read_body};
use crate::access::OpenRefused;
use crate::audit::Record as AuditRecord;
use crate::handshakes::{Slot, off_workers};
use crate::http::Head;
use crate::store::Principal;

/// How long the agent may say nothing while a request waits for it (its answer to the Open,
/// a listing, the End of an upload after the agent synced the file): only a broken agent takes
/// this long; a lost one ends the channel sooner.
const AGENT_SILENCE: Duration = Duration::from_secs(120);

/// How long the browser may send nothing of an upload's body, or take nothing of a download,
/// before the transfer is given up. Long: a person may pause a download in the browser.
const BROWSER_STALL: Duration = Duration::from_secs(300);

/// After refusing an upload whose body was not read, how long and how much of it is read and
/// dropped, so that closing the connection does not reset it under the browser before the
/// refusal is read (RFC 9112, 9.6).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 16 << 20;

/// Bytes of an upload read from the browser at once, at most: one Data frame.
const CHUNK: usize = 64 * 1024;

/// Entries a listing returns at most; a longer directory is cut short and says so.
pub(super) const MAX_ENTRIES: usize = 10_000;

/// The permission bits an upload and a new directory get unless the request names them.
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

/// What a request under `/console/api/<endpoint>/<instance>` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    List,
    Download,
    Upload,
    Mkdir,
    Remove,
    Rename,
}

impl Endpoint {
    /// The endpoint of a request path, with the instance's name as the path has it.
    fn of(path: &str) -> Option<(Endpoint, &str)> {
        let (name, instance) = path.strip_prefix("/console/api/")?.split_once('/')?;
        let endpoint = match name {
            "files" => Endpoint::List,
            "download" => Endpoint::Download,
            "upload" => Endpoint::Upload,
            "mkdir" => Endpoint::Mkdir,
            "remove" => Endpoint::Remove,
            "rename" => Endpoint::Rename,
            _ => return None,
        };
        Some((endpoint, instance))
    }

    fn method(self) -> &'static str {
        match self {
            Endpoint::List | Endpoint::Download => "GET",
            Endpoint::Upload => "PUT",
            Endpoint::Mkdir | Endpoint::Remove | Endpoint::Rename => "POST",
        }
    }

    /// Whether it changes files: then only a page of an allowed origin may ask (its Origin is
    /// required), as for logging in.
    fn changes(self) -> bool {
        !matches!(self, Endpoint::List | Endpoint::Download)
    }
}

/// Whether `head` is a request for a file endpoint.
pub(super) fn handles(head: &Head) -> bool {
    Endpoint::of(head.path()).is_some()
}

/// A request checked and authenticated, with its parameters.
#[derive(Debug)]
struct Asked {
    endpoint: Endpoint,
    who: Principal,
    instance: String,
    /// `path`, or `from` for a rename; `None` only for a listing of the home directory.
    path: Option<Vec<u8>>,
    /// A rename's `to`.
    to: Option<Vec<u8>>,
    mode: u32,
    overwrite: bool,
    /// An upload's `Content-Length`.
    size: u64,
}

/// Serves one file request, whose head is at the start of `buf`, and ends the connection. The
/// handshake `slot` goes once the request has proved who sent it: a transfer may last long,
/// and it is a user's, like a client connection, no longer a stranger's.
pub(super) async fn serve<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    head: &Head,
    place: Place<'_>,
    slot: &mut Option<Slot>,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let asked = match off_workers(|| check(head, place)) {
        Ok(asked) => asked,
        Err(refusal) => {
            if head.method == "PUT" {
                let unread = upload_len(head).unwrap_or(0);
                return refuse_upload(stream, head, refusal, unread, buf.len().saturating_sub(head.len))
                    .await;
            }
            return finish(stream, head, &refusal).await;
        }
    };
    slot.take();
    if asked.endpoint != Endpoint::Upload {
        // The page sends none; anything else is read, within the console's bound, so that
        // closing the connection does not reset it under the answer.
        match body_len(head) {
            Ok(len) if len <= MAX_BODY => read_body(stream, buf, head.len + len).await?,
            Ok(_) | Err(_) => {}
        }
    }
    debug!(peer = %place.peer, user = %asked.who.user, instance = %asked.instance, endpoint = ?asked.endpoint, "console file request");
    match asked.endpoint {
        Endpoint::List => {
            let response = list(place, &asked).await.unwrap_or_else(|refusal| refusal);
            finish(stream, head, &response).await
        }
        Endpoint::Mkdir | Endpoint::Remove | Endpoint::Rename => {
            let response = change(place, &asked).await.unwrap_or_else(|refusal| refusal);
            finish(stream, head, &response).await
        }
        Endpoint::Download => download(stream, head, place, &asked).await,
        Endpoint::Upload => {
            let already = buf.get(head.len..).unwrap_or_default().to_vec();
            upload(stream, head, place, &asked, already).await
        }
    }
}

/// Writes `response` and closes the connection.
async fn finish<S: AsyncWrite + Unpin>(
    stream: &mut S,
    head: &Head,
    response: &Response,
) -> Result<(), String> {
    response.send(stream, &head.method, true).await.map_err(|e| e.to_string())?;
    let _ = stream.shutdown().await;
    Ok(())
}

/// Everything decided before the agent is asked: the method, the origin, the login, the
/// parameters and the instance.
fn check(head: &Head, place: Place<'_>) -> Result<Asked, Response> {
    let Some((endpoint, instance)) = Endpoint::of(head.path()) else {
        return Err(error(404, None, "not found"));
    };
    if head.method != endpoint.method() {
        let mut refusal = error(405, None, &format!("use {} for this path", endpoint.method()));
        refusal.headers.push(("Allow", endpoint.method().to_owned()));
        return Err(refusal);
    }
    same_origin(head, place, endpoint.changes())?;
    let size = if endpoint == Endpoint::Upload { upload_len(head)? } else { 0 };
    let who = logged_in(head, place)?;
    let instance = decode(instance)
        .ok()
        .and_then(|name| String::from_utf8(name).ok())
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| error(400, None, "the path names no instance: /console/api/<endpoint>/<instance>"))?;
    let query = Query::parse(head.target.split_once('?').map_or("", |(_, query)| query))?;
    let (path, to) = match endpoint {
        Endpoint::List => (query.path("path")?, None),
        Endpoint::Rename => (Some(query.required_path("from")?), Some(query.required_path("to")?)),
        _ => (Some(query.required_path("path")?), None),
    };
    let default_mode = if endpoint == Endpoint::Mkdir { DEFAULT_DIR_MODE } else { DEFAULT_FILE_MODE };
    let asked = Asked {
        endpoint,
        who,
        path,
        to,
        mode: query.mode(default_mode)?,
        overwrite: query.flag("overwrite")?,
        size,
        instance,
    };
    match place.access.store.instance(&asked.instance) {
        Ok(Some(_)) => Ok(asked),
        Ok(None) => Err(error(404, None, &format!("unknown instance {}", asked.instance))),
        Err(e) => Err(error(503, None, &e.to_string())),
    }
}

/// A request that changes files must carry an allowed `Origin`, as logging in must. One that
/// reads may come without (a browser sends none on a navigation, nor on a same-origin GET), but
/// not from another site's page: its `Origin`, when sent, must be allowed, and without one its
/// `Sec-Fetch-Site` must not say another site led to it. The login's cookie is SameSite=Strict
/// already; this also stops pages of another port of the same host, which count as the same site.
fn same_origin(head: &Head, place: Place<'_>, changes: bool) -> Result<(), Response> {
    match (head.header("origin"), head.header("sec-fetch-site")) {
        (Some(origin), _) if place.console.origin_allowed(origin, head.header("host")) => Ok(()),
        (Some(origin), _) => Err(error(403, None, &format!("origin {origin} is not allowed"))),
        (None, _) if changes => Err(error(403, None, "the request has no Origin")),
        (None, Some(site)) if !matches!(site, "same-origin" | "none") => {
            Err(error(403, None, &format!("a page of another origin asked (Sec-Fetch-Site: {site})")))
        }
        (None, _) => Ok(()),
    }
}

/// Who the request's login is for, while it lasts and its token stands.
fn logged_in(head: &Head, place: Place<'_>) -> Result<Principal, Response> {
    let Some(who) = place.console.who(head.header("cookie")) else {
        let record = AuditRecord {
            peer: Some(place.peer.to_string()),
            path: Some(crate::clip(head.path(), 128).to_owned()),
            status: Some(401),
            ..AuditRecord::refused("console file request without a login")
        };
        // Anyone can send these at will: sampled, as handshakes that prove nothing are.
        place.access.audit.write_unproven(place.peer.ip(), &record);
        return Err(error(401, None, "not logged in: log in to the console first"));
    };
    place.access.store.token_valid(&who.token).map_err(|refusal| error(401, None, &refusal.to_string()))?;
    Ok(who)
}

/// An upload's length: its `Content-Length`, which it must have (no chunked body).
fn upload_len(head: &Head) -> Result<u64, Response> {
    if head.header("transfer-encoding").is_some() {
        return Err(error(411, None, "an upload needs a Content-Length, not a chunked body"));
    }
    let len =
        head.header("content-length").ok_or_else(|| error(411, None, "an upload needs a Content-Length"))?;
    len.trim().parse().map_err(|_| error(400, None, "bad Content-Length"))
}

/// The query's parameters, values as bytes.
struct Query(Vec<(String, Vec<u8>)>);

impl Query {
    fn parse(query: &str) -> Result<Query, Response> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || error(400, None, "the query has a bad percent-encoding");
            let name = String::from_utf8(decode(name).map_err(|()| bad())?).map_err(|_| bad())?;
            pairs.push((name, decode(value).map_err(|()| bad())?));
        }
        Ok(Query(pairs))
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_slice())
    }

    /// Parameter `name`, a path on the host (absolute and normal, spec 5.19), if present.
    fn path(&self, name: &str) -> Result<Option<Vec<u8>>, Response> {
        let Some(path) = self.get(name) else { return Ok(None) };
        if path.len() > MAX_PATH_LEN {
            return Err(error(400, None, &format!("{name} is longer than {MAX_PATH_LEN} bytes")));
        }
        session_proto::file::check_path(path).map_err(|_| {
            let shown = String::from_utf8_lossy(path);
            error(
                400,
                None,
                &format!(
                    "{name} {shown:?} is not an absolute, normal path (/srv/app, not srv, /srv/ or /srv/../x)"
                ),
            )
        })?;
        Ok(Some(path.to_vec()))
    }

    fn required_path(&self, name: &str) -> Result<Vec<u8>, Response> {
        self.path(name)?.ok_or_else(|| error(400, None, &format!("the query needs {name}=<path>")))
    }

    /// `mode`, permission bits in octal (`644`), at most `777`.
    fn mode(&self, default: u32) -> Result<u32, Response> {
        let Some(mode) = self.get("mode") else { return Ok(default) };
        core::str::from_utf8(mode)
            .ok()
            .and_then(|mode| u32::from_str_radix(mode, 8).ok())
            .filter(|&mode| mode <= session_proto::file::MAX_REQUEST_MODE)
            .ok_or_else(|| error(400, None, "mode is permission bits in octal, at most 777"))
    }

    /// A `0` or `1` flag, `0` when absent.
    fn flag(&self, name: &str) -> Result<bool, Response> {
        match self.get(name) {
            None | Some(b"0" | b"false") => Ok(false),
            Some(b"1" | b"true") => Ok(true),
            Some(_) => Err(error(400, None, &format!("{name} is 0 or 1"))),
        }
    }
}

/// Percent-decodes `text` to bytes, `+` as a space (as a form encodes it; a `+` itself comes
/// as `%2B`).
fn decode(text: &str) -> Result<Vec<u8>, ()> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        out.push(match byte {
            b'+' => b' ',
            b'%' => {
                let hex = [bytes.next().ok_or(())?, bytes.next().ok_or(())?];
                let hex = core::str::from_utf8(&hex).map_err(|_| ())?;
                u8::from_str_radix(hex, 16).map_err(|_| ())?
            }
            other => other,
        });
    }
    Ok(out)
}

/// An error answer: `{"error": message}`, and the protocol's name for it (`EXISTS`,
/// `PROHIBITED`) when there is one, for the page to act on.
fn error(status: u16, code: Option<&str>, message: &str) -> Response {
    match code {
        Some(code) => Response::json(status, &serde_json::json!({ "error": message, "code": code })),
        None => Response::json(status, &Failure { error: message }),
    }
}

/// The answer to a refused Open: 403 for the policy, 429 for the user's limit, 502 for the
/// instance (not connected, or its agent does not handle files).
fn refused(refusal: &OpenRefused) -> Response {
    let status = match refusal.reason {
        RefuseReason::PROHIBITED => 403,
        RefuseReason::RESOURCE_SHORTAGE => 429,
        _ => 502,
    };
    let message = match (refusal.reason, refusal.message.as_str()) {
        (RefuseReason::UNKNOWN_KIND, "") => "the instance's agent does not handle files: upgrade it",
        (_, "") => "the instance refused the request",
        (_, message) => message,
    };
    error(status, refusal.reason.name(), message)
}

/// The answer to a File Failed: what failed on the host, as a status.
fn failed(error_code: FileError, message: &str) -> Response {
    let status = match error_code {
        FileError::NOT_FOUND => 404,
        FileError::PERMISSION_DENIED => 403,
        FileError::EXISTS
        | FileError::NOT_A_DIRECTORY
        | FileError::IS_A_DIRECTORY
        | FileError::NOT_EMPTY
        | FileError::CHANGED => 409,
        FileError::NO_SPACE => 507,
        _ => 502,
    };
    let message = if message.is_empty() { "the instance's agent failed the request" } else { message };
    error(status, Some(error_code.name().unwrap_or("UNSPECIFIED")), message)
}

fn agent_error(message: &str) -> Response {
    error(502, None, message)
}

/// What the agent does next, or the answer to give if it stays silent too long.
async fn heard(channel: &mut FileChannel) -> Result<Heard, Response> {
    tokio::time::timeout(AGENT_SILENCE, channel.next()).await.map_err(|_| {
        error(504, None, &format!("the instance's agent said nothing for {} s", AGENT_SILENCE.as_secs()))
    })
}

/// Opens a File channel of `request` and waits for the agent to accept it.
async fn open(place: Place<'_>, asked: &Asked, request: FileRequest<'_>) -> Result<FileChannel, Response> {
    let mut channel = off_workers(|| FileChannel::open(&place, &asked.who, &asked.instance, request))
        .map_err(|refusal| refused(&refusal))?;
    loop {
        match heard(&mut channel).await? {
            Heard::Accepted => return Ok(channel),
            Heard::Refused { reason, message } => return Err(refused(&OpenRefused { reason, message })),
            Heard::Closed { why } => {
                return Err(agent_error(
                    why.as_deref().unwrap_or("the channel ended before the agent answered"),
                ));
            }
            Heard::Consumed => {}
            Heard::Data(_)
            | Heard::Start { .. }
            | Heard::End { .. }
            | Heard::Done
            | Heard::Failed { .. }
            | Heard::Eof => {
                return Err(agent_error("the instance's agent sent on a channel before accepting it"));
            }
        }
    }
}

/// Reads a channel's entries (those of a Home, Stat or List; none for a change) until its Done,
/// each to `each`, which says whether to go on.
async fn entries(
    channel: &mut FileChannel,
    mut each: impl FnMut(&Entry<'_>) -> bool,
) -> Result<(), Response> {
    let mut stream: Vec<u8> = Vec::new();
    loop {
        match heard(channel).await? {
            Heard::Data(bytes) => {
                stream.extend_from_slice(&bytes);
                let mut at = 0;
                loop {
                    match Entry::decode_record(stream.get(at..).unwrap_or_default()) {
                        Ok(Record::Entry(entry, len)) => {
                            at += len;
                            if !each(&entry) {
                                // Enough: dropping the channel ends it at the agent.
                                return Ok(());
                            }
                        }
                        Ok(Record::Incomplete) => break,
                        Err(e) => return Err(agent_error(&format!("the agent sent a malformed entry: {e}"))),
                    }
                }
                stream.drain(..at);
                channel.consumed(bytes.len());
            }
            Heard::Done if stream.is_empty() => return Ok(()),
            Heard::Done => return Err(agent_error("the agent's listing ends within an entry")),
            Heard::Failed { error, message } => return Err(failed(error, &message)),
            Heard::Start { .. } | Heard::End { .. } => {
                return Err(agent_error("the agent answered a listing with a transfer"));
            }
            Heard::Consumed | Heard::Eof | Heard::Accepted => {}
            Heard::Refused { message, .. } => return Err(agent_error(&message)),
            Heard::Closed { why } => {
                return Err(agent_error(
                    why.as_deref().unwrap_or("the agent ended the listing before its end"),
                ));
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Listing {
    instance: String,
    /// The directory, as text (bytes that are not UTF-8 replaced), and exactly, in hex.
    path: String,
    path_hex: String,
    entries: Vec<Listed>,
    /// More entries than [`MAX_ENTRIES`]: the rest are not listed.
    truncated: bool,
}

#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    name_hex: String,
    /// `file`, `dir`, `symlink` or `other`.
    kind: &'static str,
    size: u64,
    mode: u32,
    /// Unix seconds.
    mtime: u64,
    /// A symbolic link's target, as text.
    target: Option<String>,
}

impl Listed {
    fn new(entry: &Entry<'_>) -> Listed {
        let kind = match entry.kind {
            EntryKind::FILE => "file",
            EntryKind::DIRECTORY => "dir",
            EntryKind::SYMLINK => "symlink",
            _ => "other",
        };
        Listed {
            name: String::from_utf8_lossy(entry.name).into_owned(),
            name_hex: hex::encode(entry.name),
            kind,
            size: entry.size,
            mode: entry.mode,
            mtime: entry.mtime,
            target: (entry.kind == EntryKind::SYMLINK)
                .then(|| String::from_utf8_lossy(entry.target).into_owned()),
        }
    }
}

/// The login user's home directory: a Home channel's one entry.
async fn home(place: Place<'_>, asked: &Asked) -> Result<Vec<u8>, Response> {
    let mut channel = open(place, asked, FileRequest::Home).await?;
    let mut home = None;
    entries(&mut channel, |entry| {
        home = Some(entry.name.to_vec());
        true
    })
    .await?;
    home.filter(|path| session_proto::file::check_path(path).is_ok())
        .ok_or_else(|| agent_error("the agent named no home directory"))
}

/// `GET /console/api/files/<instance>?path=<dir>`: the directory's entries; without `path`,
/// the login user's home directory's.
async fn list(place: Place<'_>, asked: &Asked) -> Result<Response, Response> {
    let path = match &asked.path {
        Some(path) => path.clone(),
        None => home(place, asked).await?,
    };
    let mut channel = open(place, asked, FileRequest::List { path: &path }).await?;
    let mut listed = Vec::new();
    let mut truncated = false;
    let mut malformed = false;
    entries(&mut channel, |entry| {
        if listed.len() == MAX_ENTRIES {
            truncated = true;
            return false;
        }
        // A listing names files in the directory, never paths (spec 5.19).
        if entry.name.contains(&b'/') || matches!(entry.name, b"." | b"..") {
            malformed = true;
            return false;
        }
        listed.push(Listed::new(entry));
        true
    })
    .await?;
    if malformed {
        return Err(agent_error("the agent listed a name that is not a file name"));
    }
    let listing = Listing {
        instance: asked.instance.clone(),
        path: String::from_utf8_lossy(&path).into_owned(),
        path_hex: hex::encode(&path),
        entries: listed,
        truncated,
    };
    Ok(Response::json(200, &listing))
}

/// `POST .../mkdir`, `.../remove`, `.../rename`: the change, once the agent says Done.
async fn change(place: Place<'_>, asked: &Asked) -> Result<Response, Response> {
    let path = asked.path.as_deref().unwrap_or_default();
    let request = match asked.endpoint {
        Endpoint::Mkdir => FileRequest::Mkdir { path, mode: asked.mode },
        Endpoint::Remove => FileRequest::Remove { path },
        _ => FileRequest::Rename {
            from: path,
            to: asked.to.as_deref().unwrap_or_default(),
            overwrite: asked.overwrite,
        },
    };
    let mut channel = open(place, asked, request).await?;
    entries(&mut channel, |_| true).await?;
    let shown = String::from_utf8_lossy(asked.to.as_deref().unwrap_or(path)).into_owned();
    let status = if asked.endpoint == Endpoint::Mkdir { 201 } else { 200 };
    Ok(Response::json(status, &serde_json::json!({ "path": shown, "session": channel.id() })))
}

/// `Content-Disposition` naming the download after the path's last component: exactly, in
/// UTF-8 (RFC 6266, 8187), and for older readers as ASCII with anything else as `_`.
fn disposition(path: &[u8]) -> String {
    let name = path.rsplit(|&b| b == b'/').next().filter(|name| !name.is_empty()).unwrap_or(b"download");
    let name = String::from_utf8_lossy(name);
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let mut exact = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        // RFC 8187's attr-char: anything else is percent-encoded.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            exact.push(char::from(byte));
        } else {
            exact.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

/// `GET /console/api/download/<instance>?path=<file>`: the file, streamed as the agent reads
/// it. Errors before the first byte are answered; after it, the connection is cut short.
async fn download<S>(stream: &mut S, head: &Head, place: Place<'_>, asked: &Asked) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let path = asked.path.as_deref().unwrap_or_default();
    let mut channel = match open(place, asked, FileRequest::Read { path, offset: 0, prefix: None }).await {
        Ok(channel) => channel,
        Err(refusal) => return finish(stream, head, &refusal).await,
    };
    let size = loop {
        let answer = match heard(&mut channel).await {
            Ok(Heard::Start { offset: 0, size }) => break size,
            Ok(Heard::Failed { error, message }) => failed(error, &message),
            Ok(Heard::Consumed) => continue,
            Ok(Heard::Closed { why: Some(why) }) => agent_error(&why),
            Ok(_) => agent_error("the instance's agent did not start the download as asked"),
            Err(refusal) => refusal,
        };
        return finish(stream, head, &answer).await;
    };
    let mut response = Response::new(200, "application/octet-stream", Vec::new());
    response.no_store = true;
    response.headers.push(("Content-Disposition", disposition(path)));
    response.headers.push(("X-Session-Id", channel.id().to_owned()));
    let shown = String::from_utf8_lossy(path).into_owned();
    info!(user = %asked.who.user, instance = %asked.instance, path = %shown, size, "console download");
    write(stream, response.head_of(size, true).as_bytes()).await?;
    let mut hash = Sha256::new(&SHA256);
    let mut received: u64 = 0;
    // The file's last byte, held back until the agent's End agrees with what went out.
    let mut last: Option<u8> = None;
    loop {
        let heard =
            heard(&mut channel).await.map_err(|_| "the agent fell silent within the download".to_owned())?;
        match heard {
            Heard::Data(bytes) => {
                received += bytes.len() as u64;
                if received > size {
                    channel
                        .failed(format!("MISMATCH: the agent sent more than the {size} bytes it announced"));
                    return Err("the agent sent more than the file's size: download cut short".to_owned());
                }
                hash.update(&bytes);
                let (out, held) = match bytes.split_last() {
                    Some((&byte, rest)) if received == size => (rest, Some(byte)),
                    _ => (&bytes[..], None),
                };
                write(stream, out).await?;
                last = last.or(held);
                channel.consumed(bytes.len());
            }
            Heard::End { size: ended, sha256 } => {
                let ours = hash.finish();
                if ended != size || received != size || ours.as_ref() != sha256 {
                    channel.failed(format!(
                        "MISMATCH: the relay streamed {received} bytes of SHA-256 {}, the agent's End says {ended} of {}",
                        hex::encode(ours.as_ref()),
                        hex::encode(sha256)
                    ));
                    return Err("the download's bytes disagree with the agent's End: cut short".to_owned());
                }
                if let Some(byte) = last {
                    write(stream, &[byte]).await?;
                }
                let _ = stream.flush().await;
                let _ = stream.shutdown().await;
                return Ok(());
            }
            Heard::Failed { error, message } => {
                return Err(format!("the download failed at the agent: {error}: {message}"));
            }
            Heard::Consumed | Heard::Accepted => {}
            Heard::Start { .. } | Heard::Done | Heard::Eof | Heard::Refused { .. } => {
                channel.failed("the agent ended the download without its End".to_owned());
                return Err("the agent ended the download without its End".to_owned());
            }
            Heard::Closed { why } => {
                return Err(why.unwrap_or_else(|| "the agent ended the download early".to_owned()));
            }
        }
    }
}

/// Writes `bytes` to the browser, giving up if it takes none for [`BROWSER_STALL`].
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), String> {
    tokio::time::timeout(BROWSER_STALL, stream.write_all(bytes))
        .await
        .map_err(|_| "the browser took nothing for too long".to_owned())?
        .map_err(|e| e.to_string())
}

/// `PUT /console/api/upload/<instance>?path=<file>&overwrite=0|1&mode=644`, the file as the
/// body with its `Content-Length`: streamed to the agent (`already` is what came with the
/// head), answered 201 `{"size", "sha256"}` once the agent's End confirms the file in place.
async fn upload<S>(
    stream: &mut S,
    head: &Head,
    place: Place<'_>,
    asked: &Asked,
    mut already: Vec<u8>,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let size = asked.size;
    already.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    let unread = size - already.len() as u64;
    let path = asked.path.as_deref().unwrap_or_default();
    let request = FileRequest::Write {
        path,
        size,
        mode: asked.mode,
        overwrite: asked.overwrite,
        offset: 0,
        prefix: None,
    };
    let mut channel = match open(place, asked, request).await {
        Ok(channel) => channel,
        Err(refusal) => return refuse_upload(stream, head, refusal, unread, 0).await,
    };
    loop {
        let answer = match heard(&mut channel).await {
            Ok(Heard::Start { offset: 0, .. }) => break,
            Ok(Heard::Failed { error, message }) => failed(error, &message),
            Ok(Heard::Consumed) => continue,
            Ok(Heard::Closed { why: Some(why) }) => agent_error(&why),
            Ok(_) => agent_error("the instance's agent did not start the upload as asked"),
            Err(refusal) => refusal,
        };
        return refuse_upload(stream, head, answer, unread, 0).await;
    }
    let shown = String::from_utf8_lossy(path).into_owned();
    info!(user = %asked.who.user, instance = %asked.instance, path = %shown, size, "console upload");
    if unread > 0 && expects_continue(head) {
        // A client that waits to be asked for the body (curl does, for large ones) is asked
        // now that the agent is ready for it, not before it could be refused.
        write(stream, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let mut hash = Sha256::new(&SHA256);
    hash.update(&already);
    channel.send(&already)?;
    let mut left = unread;
    let mut chunk = vec![0u8; CHUNK];
    while left > 0 {
        if !channel.has_room(CHUNK) {
            // The agent's connection has a window of it still to take: read no more meanwhile.
            match heard(&mut channel).await {
                Ok(Heard::Consumed) => continue,
                Ok(other) => return refuse_mid_upload(stream, head, other, left).await,
                Err(refusal) => return refuse_upload(stream, head, refusal, left, 0).await,
            }
        }
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        // The agent may fail the upload (no space) while the browser is still sending.
        tokio::select! {
            heard = channel.next() => match heard {
                Heard::Consumed => continue,
                other => return refuse_mid_upload(stream, head, other, left).await,
            },
            read = tokio::time::timeout(BROWSER_STALL, stream.read(&mut chunk[..want])) => {
                match read {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        // The browser cancelled (or lost) the upload: the channel's Close, as it
                        // drops, leaves no file under the path.
                        info!(user = %asked.who.user, instance = %asked.instance, path = %shown, "console upload cancelled");
                        return Err("the upload's body ended early: cancelled".to_owned());
                    }
                    Ok(Ok(n)) => {
                        let read = chunk.get(..n).unwrap_or_default();
                        hash.update(read);
                        channel.send(read)?;
                        left -= n as u64;
                    }
                    Err(_) => return Err("the browser sent nothing of the upload for too long".to_owned()),
                }
            }
        }
    }
    let ours = hash.finish();
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(ours.as_ref());
    channel.finish_upload(size, sha256);
    let answer = loop {
        match heard(&mut channel).await {
            Ok(Heard::End { size: ended, sha256: theirs }) => {
                if ended == size && theirs == sha256 {
                    let stored = serde_json::json!({
                        "path": shown,
                        "size": size,
                        "sha256": hex::encode(sha256),
                        "session": channel.id(),
                    });
                    break Response::json(201, &stored);
                }
                break agent_error("the agent's End disagrees with the bytes sent");
            }
            Ok(Heard::Failed { error, message }) => break failed(error, &message),
            Ok(Heard::Data(bytes)) => channel.consumed(bytes.len()),
            Ok(Heard::Consumed | Heard::Eof | Heard::Accepted) => {}
            Ok(Heard::Start { .. } | Heard::Done | Heard::Refused { .. }) => {
                break agent_error("the agent answered the upload out of order");
            }
            Ok(Heard::Closed { why }) => {
                break agent_error(
                    why.as_deref().unwrap_or("the agent ended the upload without confirming it"),
                );
            }
            Err(refusal) => break refusal,
        }
    };
    finish(stream, head, &answer).await
}

/// Whether the client waits to be asked for the body (`Expect: 100-continue`, RFC 9110 10.1.1).
fn expects_continue(head: &Head) -> bool {
    head.header("expect").is_some_and(|expect| expect.eq_ignore_ascii_case("100-continue"))
}

/// Answers an upload that the agent ended while its body was coming: with what the agent said.
async fn refuse_mid_upload<S>(stream: &mut S, head: &Head, heard: Heard, unread: u64) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let answer = match heard {
        Heard::Failed { error, message } => failed(error, &message),
        Heard::Closed { why: Some(why) } => agent_error(&why),
        _ => agent_error("the instance's agent ended the upload"),
    };
    refuse_upload(stream, head, answer, unread, 0).await
}

/// Answers an upload whose body was not all read with `refusal`, then reads and drops what
/// follows for a moment before closing (the rest of `unread` bytes, of which `buffered` are
/// read already), so that the browser reads the answer rather than a reset connection.
async fn refuse_upload<S>(
    stream: &mut S,
    head: &Head,
    refusal: Response,
    unread: u64,
    buffered: usize,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    refusal.send(stream, &head.method, true).await.map_err(|e| e.to_string())?;
    let _ = stream.flush().await;
    // A client that waits for a 100 Continue sends no body after a refusal.
    let left = if expects_continue(head) { 0 } else { unread.saturating_sub(buffered as u64) };
    let mut left = left.min(LINGER_BYTES);
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut sink = vec![0u8; 16 * 1024];
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n as u64),
            _ => break,
        }
    }
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests;
