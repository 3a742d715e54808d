//! The file endpoints against a scripted agent: the relay's side of each exchange (what goes to
//! the agent's task, what the browser gets), its credit, and the cases a real agent does not
//! produce at will (a download whose bytes disagree with its End).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ring::digest::{SHA256, digest};
use session_codec::Frame;
use session_proto::owned::{OwnedFileEvent, OwnedFileRequest, OwnedOpenKind};
use session_proto::{Digest, Entry, EntryKind, FileError, Message, RefuseReason, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use super::super::{Console, Place, logins};
use super::serve;
use crate::access::Access;
use crate::audit::Audit;
use crate::console::channel::UPLOAD_WINDOW;
use crate::http::read_head;
use crate::registry::{Entry as Registered, Registry};
use crate::route::{ClientTx, Inflow, RouteId, ToAgent, ToClient};
use crate::sessions::{Sessions, terminated_by};
use crate::store::{ActivationTerms, Store};
use crate::usage::{Limits, Usage};

/// Only so that a broken exchange fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(20);

/// A relay's state with one instance, `web-1`, whose agent is the test, and a user logged in to
/// the console.
struct Relay {
    console: Console,
    access: Access,
    registry: Registry,
    sessions: Sessions,
    usage: Usage,
    limits: Limits,
    /// `Cookie: ...` for alice's login.
    cookie: String,
    /// What the relay sends the instance's agent.
    agent: mpsc::UnboundedReceiver<ToAgent>,
}

const ALL: &str =
    r#"{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:*", "Resource": "*"}}"#;
const READ_ONLY: &str = r#"{"Version": "1", "Statement": {"Effect": "Allow",
    "Action": ["session:ListFiles", "session:ReadFile"], "Resource": "*"}}"#;

impl Relay {
    fn new(policy: &str) -> Relay {
        let store = Store::in_memory().expect("a store");
        store.add_user("alice").expect("a user");
        store.put_policy("files", policy).expect("a policy");
        store.attach("alice", "files").expect("attached");
        let (token, _) = store.create_token("alice", Duration::from_secs(3600)).expect("a token");
        let who = store.authenticate(&token).expect("the token stands");
        let terms =
            ActivationTerms { account: "test".into(), label: None, ttl: Duration::from_secs(60), uses: 1 };
        let (code, _) = store.create_activation(&terms).expect("a code");
        let key = vec![7u8; 32];
        store.register("web-1", &key, &code).expect("registered");
        let (to_agent, agent) = mpsc::unbounded_channel();
        let registry = Registry::default();
        let entry = Registered {
            serial: 1,
            to_agent,
            token: Vec::new(),
            key,
            online: true,
            last_seen: SystemTime::now(),
        };
        registry.insert("web-1", entry);
        let console = Console::new(&[], false);
        let login = console.logins.start(who, logins::LIFETIME).expect("a login");
        Relay {
            console,
            access: Access::new(store, "test", Audit::log_only()),
            registry,
            sessions: Sessions::default(),
            usage: Usage::default(),
            limits: Limits::default(),
            cookie: format!("{}={}", logins::COOKIE, login.secret),
            agent,
        }
    }

    fn place(&self) -> Place<'_> {
        Place {
            console: &self.console,
            access: &self.access,
            registry: &self.registry,
            sessions: &self.sessions,
            usage: &self.usage,
            limits: &self.limits,
            peer: SocketAddr::from(([127, 0, 0, 1], 4000)),
        }
    }

    /// A request from the console's own page, with alice's login.
    fn request(&self, method: &str, target: &str, body_len: Option<usize>) -> String {
        let length = body_len.map_or_else(String::new, |len| format!("Content-Length: {len}\r\n"));
        format!(
            "{method} {target} HTTP/1.1\r\nHost: relay.test\r\nOrigin: http://relay.test\r\nCookie: {}\r\n{length}\r\n",
            self.cookie
        )
    }
}

/// The relay serving one connection from `server`.
async fn relay_side(relay: &Relay, mut server: DuplexStream) -> Result<(), String> {
    let mut buf = Vec::new();
    let head = read_head(&mut server, &mut buf).await.map_err(|e| e.to_string())?.ok_or("no request")?;
    serve(&mut server, &mut buf, &head, relay.place(), &mut None).await
}

/// A response as the browser reads it, to the connection's end.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
        Reply { status, head, body: raw[end..].to_vec() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Sends `request` and `body`, and reads the answer to the end of the connection.
async fn browser_side(mut client: DuplexStream, request: String, body: Vec<u8>) -> Reply {
    client.write_all(request.as_bytes()).await.expect("request sent");
    client.write_all(&body).await.expect("body sent");
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).await.expect("answer read");
    Reply::parse(&raw)
}

/// One exchange: the browser's request and body against the relay, while `agent` plays the
/// instance's agent with what the relay sends it.
async fn exchange<A, F>(
    relay: &mut Relay,
    request: String,
    body: Vec<u8>,
    agent: A,
) -> (Reply, Result<(), String>)
where
    A: FnOnce(mpsc::UnboundedReceiver<ToAgent>) -> F,
    F: Future<Output = mpsc::UnboundedReceiver<ToAgent>>,
{
    let (client, server) = tokio::io::duplex(64 * 1024);
    let inbox = core::mem::replace(&mut relay.agent, mpsc::unbounded_channel().1);
    let shared = &*relay;
    let run =
        async { tokio::join!(browser_side(client, request, body), relay_side(shared, server), agent(inbox)) };
    let (reply, served, inbox) = tokio::time::timeout(BOUND, run).await.expect("the exchange ended");
    relay.agent = inbox;
    (reply, served)
}

/// The next Open the relay sends the agent.
async fn opened(inbox: &mut mpsc::UnboundedReceiver<ToAgent>) -> (RouteId, OwnedFileRequest, ClientTx) {
    loop {
        match inbox.recv().await.expect("an Open") {
            ToAgent::Open { route, kind, reply } => match *kind {
                OwnedOpenKind::File { request } => return (route, request, reply),
                other => panic!("not a File Open: {other:?}"),
            },
            // The ends of earlier channels.
            ToAgent::Close { .. } | ToAgent::Consumed { .. } => {}
            other => panic!("before an Open: {other:?}"),
        }
    }
}

fn file(route: RouteId, event: OwnedFileEvent) -> ToClient {
    ToClient::File { route, event: Box::new(event) }
}

/// Sends `payload` as the agent's Data on `route`.
fn data(reply: &ClientTx, route: RouteId, inflow: &Arc<Inflow>, payload: &[u8]) {
    let frame = Frame::new(&Message::Data { channel: 2, stream: Stream::Stdout, payload }).expect("a frame");
    if inflow.push(frame) {
        reply.send(ToClient::Data { route, inflow: Arc::clone(inflow) }).expect("the relay listens");
    }
}

fn record(name: &[u8], kind: EntryKind, size: u64) -> Vec<u8> {
    let entry = Entry { name, kind, size, mode: 0o644, mtime: 1_700_000_000, target: b"" };
    let mut out = vec![0u8; entry.record_len()];
    entry.encode_record(&mut out).expect("an entry");
    out
}

/// The agent answers a Home, Stat or List with `records`, split in two Data, then Done.
async fn answer_listing(inbox: &mut mpsc::UnboundedReceiver<ToAgent>, records: &[u8]) -> OwnedFileRequest {
    let (route, request, reply) = opened(inbox).await;
    reply.send(ToClient::Accepted { route }).unwrap();
    let inflow = Arc::default();
    let (a, b) = records.split_at(records.len() / 2 + 1);
    data(&reply, route, &inflow, a);
    data(&reply, route, &inflow, b);
    reply.send(file(route, OwnedFileEvent::Done)).unwrap();
    reply.send(ToClient::Eof { route }).unwrap();
    reply.send(ToClient::Close { route, why: None }).unwrap();
    request
}

#[tokio::test]
async fn a_listing_of_the_home_directory_asks_home_then_lists_it() {
    let mut relay = Relay::new(ALL);
    let request = relay.request("GET", "/console/api/files/web-1", None);
    let (reply, served) = exchange(&mut relay, request, Vec::new(), |mut inbox| async move {
        let home = answer_listing(&mut inbox, &record(b"/home/alice", EntryKind::DIRECTORY, 4096)).await;
        assert_eq!(home, OwnedFileRequest::Home);
        let mut records = record(b"notes \xff.txt", EntryKind::FILE, 12);
        records.extend(record(b"src", EntryKind::DIRECTORY, 4096));
        let listed = answer_listing(&mut inbox, &records).await;
        assert!(matches!(listed, OwnedFileRequest::List { path } if path.as_slice() == b"/home/alice"));
        inbox
    })
    .await;
    served.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let listing = reply.json();
    assert_eq!(listing["path"], "/home/alice");
    assert_eq!(listing["path_hex"], hex::encode("/home/alice"));
    assert_eq!(listing["entries"][0]["name"], "notes \u{fffd}.txt");
    assert_eq!(listing["entries"][0]["name_hex"], hex::encode(b"notes \xff.txt"));
    assert_eq!(listing["entries"][0]["kind"], "file");
    assert_eq!(listing["entries"][1]["kind"], "dir");
    assert_eq!(listing["truncated"], false);
    // Each channel was a session while it lasted, and is one no longer.
    assert!(relay.sessions.snapshot().is_empty());
}

#[tokio::test]
async fn a_failed_listing_says_what_failed_as_a_status() {
    let mut relay = Relay::new(ALL);
    let request = relay.request("GET", "/console/api/files/web-1?path=%2Fnowhere", None);
    let (reply, _) = exchange(&mut relay, request, Vec::new(), |mut inbox| async move {
        let (route, request, reply) = opened(&mut inbox).await;
        assert!(matches!(request, OwnedFileRequest::List { path } if path.as_slice() == b"/nowhere"));
        reply.send(ToClient::Accepted { route }).unwrap();
        let message = "not found: /nowhere".try_into().unwrap();
        reply.send(file(route, OwnedFileEvent::Failed { error: FileError::NOT_FOUND, message })).unwrap();
        inbox
    })
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["code"], "NOT_FOUND");
    assert_eq!(reply.json()["error"], "not found: /nowhere");
}

/// The agent sends `content` as a download on the next Open, within a window of its own
/// credit, and ends it with `end` (the right one when `None`). Returns the credit that came
/// back.
async fn send_file(
    inbox: &mut mpsc::UnboundedReceiver<ToAgent>,
    content: &[u8],
    end: Option<Digest>,
) -> usize {
    let (route, request, reply) = opened(inbox).await;
    assert!(matches!(request, OwnedFileRequest::Read { offset: 0, prefix: None, .. }), "{request:?}");
    reply.send(ToClient::Accepted { route }).unwrap();
    let size = content.len() as u64;
    reply.send(file(route, OwnedFileEvent::Start { offset: 0, size, mode: 0o644, mtime: 0 })).unwrap();
    let inflow = Arc::default();
    let window = 256 * 1024;
    let (mut sent, mut granted) = (0, 0);
    for piece in content.chunks(20_000) {
        while sent + piece.len() > granted + window {
            match inbox.recv().await.expect("credit") {
                ToAgent::Consumed { len, .. } => granted += len,
                other => panic!("while waiting for credit: {other:?}"),
            }
        }
        data(&reply, route, &inflow, piece);
        sent += piece.len();
    }
    let sha256 = end.unwrap_or_else(|| digest(&SHA256, content).as_ref().try_into().unwrap());
    reply.send(file(route, OwnedFileEvent::End { size, sha256 })).unwrap();
    reply.send(ToClient::Eof { route }).unwrap();
    loop {
        match inbox.recv().await.expect("the channel's end") {
            ToAgent::Consumed { len, .. } => granted += len,
            ToAgent::Close { .. } => return granted,
            other => panic!("after the End: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_download_streams_within_a_window_and_names_the_file() {
    let mut relay = Relay::new(ALL);
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = content.clone();
    let request = relay.request("GET", "/console/api/download/web-1?path=%2Fsrv%2Fcaf%C3%A9%20a.bin", None);
    let (reply, served) = exchange(&mut relay, request, Vec::new(), |mut inbox| async move {
        let granted = send_file(&mut inbox, &content, None).await;
        // Every byte was granted back once it reached the browser.
        assert_eq!(granted, content.len());
        inbox
    })
    .await;
    served.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("1000000"));
    assert_eq!(reply.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=\"caf_ a.bin\"; filename*=UTF-8''caf%C3%A9%20a.bin")
    );
    assert!(reply.body == expected, "the body is the file");
}

#[tokio::test]
async fn a_download_whose_bytes_disagree_with_the_end_is_cut_short() {
    let mut relay = Relay::new(ALL);
    let content = vec![5u8; 70_000];
    let request = relay.request("GET", "/console/api/download/web-1?path=/srv/a", None);
    let (reply, served) = exchange(&mut relay, request, Vec::new(), |mut inbox| async move {
        send_file(&mut inbox, &content, Some([0; 32])).await;
        inbox
    })
    .await;
    assert!(served.unwrap_err().contains("disagree"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("70000"));
    // The browser gets all but the last byte: short of its length, the download fails there.
    assert_eq!(reply.body.len(), 69_999);
}

#[tokio::test]
async fn a_download_refused_by_the_agent_or_failing_before_its_start_is_answered() {
    let mut relay = Relay::new(ALL);
    let request = relay.request("GET", "/console/api/download/web-1?path=/etc/shadow", None);
    let (reply, _) = exchange(&mut relay, request, Vec::new(), |mut inbox| async move {
        let (route, _, reply) = opened(&mut inbox).await;
        reply.send(ToClient::Accepted { route }).unwrap();
        let message = "permission denied: /etc/shadow".try_into().unwrap();
        reply
            .send(file(route, OwnedFileEvent::Failed { error: FileError::PERMISSION_DENIED, message }))
            .unwrap();
        inbox
    })
    .await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (403, Some("PERMISSION_DENIED")));

    let request = relay.request("GET", "/console/api/download/web-1?path=/srv/a", None);
    let (reply, _) = exchange(&mut relay, request, Vec::new(), |mut inbox| async move {
        let (route, _, reply) = opened(&mut inbox).await;
        let message = "the agent of web-1 does not handle files: upgrade it".to_owned();
        reply.send(ToClient::Refused { route, reason: RefuseReason::UNKNOWN_KIND, message }).unwrap();
        inbox
    })
    .await;
    assert_eq!(reply.status, 502);
    assert!(reply.json()["error"].as_str().unwrap().contains("does not handle files"));
}

#[tokio::test]
async fn a_terminated_download_is_cut_short() {
    let mut relay = Relay::new(ALL);
    let sessions = relay.sessions.clone();
    let request = relay.request("GET", "/console/api/download/web-1?path=/srv/a", None);
    let (reply, served) = exchange(&mut relay, request, Vec::new(), |mut inbox| async move {
        let (route, _, reply) = opened(&mut inbox).await;
        reply.send(ToClient::Accepted { route }).unwrap();
        reply
            .send(file(route, OwnedFileEvent::Start { offset: 0, size: 10, mode: 0o644, mtime: 0 }))
            .unwrap();
        data(&reply, route, &Arc::default(), b"01234");
        // The user ends the session from another tab, as `/v1/sessions/<id>/terminate` does.
        let (id, active) = sessions.snapshot().pop().expect("listed while it runs");
        assert!(id.starts_with("alice-") && active.kind == "file read: /srv/a", "{id} {}", active.kind);
        assert!(active.end(terminated_by("alice")));
        loop {
            if let ToAgent::Close { .. } = inbox.recv().await.expect("the Close") {
                return inbox;
            }
        }
    })
    .await;
    assert!(served.unwrap_err().contains("terminated by alice"));
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"01234"[..]));
    assert!(relay.sessions.snapshot().is_empty());
}

/// The agent's side of an upload on the next Open: it takes the bytes (granting them back
/// `lag` messages late, so the relay must wait for room), checks the window was kept, and answers
/// `answer` to the End, or its own End when `None`. Returns the bytes it got, or `None` if the
/// channel was closed before the End.
async fn take_upload(
    inbox: &mut mpsc::UnboundedReceiver<ToAgent>,
    answer: Option<OwnedFileEvent>,
) -> Option<Vec<u8>> {
    let (route, request, reply) = opened(inbox).await;
    let OwnedFileRequest::Write { size, offset: 0, prefix: None, .. } = request else {
        panic!("not an upload from 0: {request:?}")
    };
    reply.send(ToClient::Accepted { route }).unwrap();
    reply.send(file(route, OwnedFileEvent::Start { offset: 0, size, mode: 0o600, mtime: 0 })).unwrap();
    let mut got = Vec::new();
    let mut outstanding = 0;
    loop {
        match inbox.recv().await.expect("the upload") {
            ToAgent::Data { inflow, .. } => {
                for data in inflow.take() {
                    let bytes = data.into_payload();
                    outstanding += bytes.len();
                    got.extend_from_slice(&bytes);
                }
                assert!(outstanding <= UPLOAD_WINDOW, "{outstanding} bytes in flight");
                // Taken only once a window is waiting: the relay must hold back meanwhile.
                if outstanding >= UPLOAD_WINDOW / 2 || got.len() as u64 == size {
                    reply.send(ToClient::Consumed { route, len: outstanding }).unwrap();
                    outstanding = 0;
                }
            }
            ToAgent::File { event, .. } => {
                let OwnedFileEvent::End { size: ended, sha256 } = *event else { panic!("{event:?}") };
                assert_eq!(ended, got.len() as u64);
                assert_eq!(sha256.as_slice(), digest(&SHA256, &got).as_ref());
                let answer = answer.unwrap_or(OwnedFileEvent::End { size: ended, sha256 });
                reply.send(file(route, answer)).unwrap();
                return Some(got);
            }
            ToAgent::Eof { .. } | ToAgent::Consumed { .. } => {}
            ToAgent::Close { .. } => return None,
            other => panic!("during the upload: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_upload_streams_within_the_window_and_is_confirmed_by_the_agents_end() {
    let mut relay = Relay::new(ALL);
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let expected = content.clone();
    let target = "/console/api/upload/web-1?path=%2Fsrv%2Fapp.bin&overwrite=1&mode=640";
    let request = relay.request("PUT", target, Some(content.len()));
    let (reply, served) = exchange(&mut relay, request, content, |mut inbox| async move {
        assert_eq!(take_upload(&mut inbox, None).await.as_deref(), Some(expected.as_slice()));
        inbox
    })
    .await;
    served.unwrap();
    assert_eq!(reply.status, 201, "{reply:?}");
    let stored = reply.json();
    assert_eq!(stored["size"], 3_000_000);
    assert_eq!(stored["path"], "/srv/app.bin");
    assert_eq!(stored["sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn a_client_that_expects_to_be_asked_for_the_body_is_asked_once_the_agent_is_ready() {
    let mut relay = Relay::new(ALL);
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let request = relay.request("PUT", "/console/api/upload/web-1?path=/srv/c", Some(5));
    let request = request.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    let mut inbox = core::mem::replace(&mut relay.agent, mpsc::unbounded_channel().1);
    let browser = async move {
        client.write_all(request.as_bytes()).await.unwrap();
        let mut interim = [0u8; 25];
        client.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        client.write_all(b"hello").await.unwrap();
        let mut raw = Vec::new();
        client.read_to_end(&mut raw).await.unwrap();
        Reply::parse(&raw)
    };
    let agent = async { take_upload(&mut inbox, None).await };
    let (reply, served, got) =
        tokio::time::timeout(BOUND, async { tokio::join!(browser, relay_side(&relay, server), agent) })
            .await
            .expect("the exchange ended");
    served.unwrap();
    assert_eq!((reply.status, got.as_deref()), (201, Some(&b"hello"[..])));
}

#[tokio::test]
async fn an_upload_asks_for_the_mode_and_overwrite_given() {
    let mut relay = Relay::new(ALL);
    let request = relay.request("PUT", "/console/api/upload/web-1?path=/srv/x&mode=600", Some(3));
    let (reply, _) = exchange(&mut relay, request, b"abc".to_vec(), |mut inbox| async move {
        let (route, request, reply) = opened(&mut inbox).await;
        assert!(
            matches!(request, OwnedFileRequest::Write { size: 3, mode: 0o600, overwrite: false, .. }),
            "{request:?}"
        );
        reply.send(ToClient::Accepted { route }).unwrap();
        let message = "exists: /srv/x".try_into().unwrap();
        reply.send(file(route, OwnedFileEvent::Failed { error: FileError::EXISTS, message })).unwrap();
        inbox
    })
    .await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (409, Some("EXISTS")));
}

#[tokio::test]
async fn an_upload_cut_short_by_the_browser_closes_the_channel_without_an_end() {
    let mut relay = Relay::new(ALL);
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let request = relay.request("PUT", "/console/api/upload/web-1?path=/srv/big", Some(1_000_000));
    let mut inbox = core::mem::replace(&mut relay.agent, mpsc::unbounded_channel().1);
    let browser = async move {
        client.write_all(request.as_bytes()).await.unwrap();
        client.write_all(&[1u8; 300_000]).await.unwrap();
        // The person pressed Cancel: the browser drops the connection mid-body.
        drop(client);
    };
    let agent = async { take_upload(&mut inbox, None).await };
    let (_, served, got) =
        tokio::time::timeout(BOUND, async { tokio::join!(browser, relay_side(&relay, server), agent) })
            .await
            .expect("the exchange ended");
    assert!(served.unwrap_err().contains("cancelled"));
    assert_eq!(got, None, "the agent saw a Close, never an End");
    assert!(relay.sessions.snapshot().is_empty());
}

#[tokio::test]
async fn requests_are_refused_before_any_agent_is_asked() {
    let mut relay = Relay::new(READ_ONLY);
    let nothing = |inbox| async move { inbox };
    // No login.
    let request = "GET /console/api/files/web-1 HTTP/1.1\r\nHost: relay.test\r\n\r\n".to_owned();
    let (reply, _) = exchange(&mut relay, request, Vec::new(), nothing).await;
    assert_eq!(reply.status, 401);
    // A foreign origin, with the login's cookie.
    let request = relay
        .request("GET", "/console/api/files/web-1", None)
        .replace("http://relay.test", "http://evil.test");
    let (reply, _) = exchange(&mut relay, request, Vec::new(), nothing).await;
    assert_eq!(reply.status, 403);
    // A change with no Origin at all.
    let request = relay
        .request("POST", "/console/api/mkdir/web-1?path=/srv/d", None)
        .replace("Origin: http://relay.test\r\n", "");
    let (reply, _) = exchange(&mut relay, request, Vec::new(), nothing).await;
    assert_eq!(reply.status, 403);
    // Another site's page led the browser here.
    let request = relay
        .request("GET", "/console/api/download/web-1?path=/etc/hosts", None)
        .replace("Origin: http://relay.test\r\n", "Sec-Fetch-Site: same-site\r\n");
    let (reply, _) = exchange(&mut relay, request, Vec::new(), nothing).await;
    assert_eq!(reply.status, 403);
    // An unknown instance, a bad path, a wrong method, an upload without a length.
    for (request, status) in [
        (relay.request("GET", "/console/api/files/db-9", None), 404),
        (relay.request("GET", "/console/api/files/web-1?path=srv", None), 400),
        (relay.request("GET", "/console/api/files/web-1?path=/srv/../etc", None), 400),
        (relay.request("GET", "/console/api/upload/web-1?path=/srv/a", None), 405),
        (relay.request("PUT", "/console/api/upload/web-1?path=/srv/a", None), 411),
        (relay.request("PUT", "/console/api/upload/web-1?path=/srv/a&mode=1777", Some(0)), 400),
    ] {
        let (reply, _) = exchange(&mut relay, request.clone(), Vec::new(), nothing).await;
        assert_eq!(reply.status, status, "{request}: {reply:?}");
    }
    // The policy allows reading only: an upload is refused at the gate, saying why.
    let request = relay.request("PUT", "/console/api/upload/web-1?path=/srv/a", Some(3));
    let (reply, _) = exchange(&mut relay, request, b"abc".to_vec(), nothing).await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (403, Some("PROHIBITED")));
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("alice may not session:WriteFile on ") && error.contains(" for /srv/a"),
        "{error}"
    );
}

#[test]
fn query_values_are_percent_decoded_to_bytes() {
    assert_eq!(super::decode("%2Fsrv%2Fa+b%2Bc%FF").unwrap(), b"/srv/a b+c\xff");
    assert!(super::decode("%2").is_err() && super::decode("%zz").is_err());
}
