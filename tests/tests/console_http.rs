//! The browser console's plain HTTP side and its logins (spec 11.10), over real sockets and
//! without a browser: what the page is served with, who may log in, and which WebSockets a
//! login opens. The browser itself is driven in `console_browser.rs`.

use core::net::SocketAddr;
use core::time::Duration;

use futures_util::StreamExt;
use session_codec::websocket::SUBPROTOCOL;
use session_test_kit::System;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;

/// One HTTP response, read to the connection's end.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Names in lowercase.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` with `headers` and `body` on a connection of its own.
async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Reply { status, headers, body: body.to_owned() }
}

fn origin(system: &System) -> String {
    format!("http://{}", system.relay.addr)
}

/// Logs in with `token` from the relay's own origin.
async fn login(system: &System, token: &str) -> Reply {
    let origin = origin(system);
    let body = serde_json::json!({ "token": token }).to_string();
    let headers = [("Origin", origin.as_str()), ("Content-Type", "application/json")];
    http(system.relay.addr, "POST", "/console/api/login", &headers, &body).await
}

/// The `name=value` a Set-Cookie sets.
fn cookie_of(reply: &Reply) -> String {
    reply.header("set-cookie").unwrap().split(';').next().unwrap().to_owned()
}

/// A WebSocket handshake to `path` as a browser makes it: a cookie, an Origin, no token.
async fn browser_ws(system: &System, path: &str, cookie: Option<&str>, origin: &str) -> Result<String, u16> {
    let mut request = format!("{}{path}", system.url).into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    if let Some(cookie) = cookie {
        headers.insert("cookie", HeaderValue::from_str(cookie).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, _)) => match ws.next().await {
            Some(Ok(WsMessage::Text(text))) => Ok(text.as_str().to_owned()),
            other => panic!("{other:?}"),
        },
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_from_the_relay_with_a_content_security_policy() {
    let system = System::start(None).await;
    let addr = system.relay.addr;
    let page = http(addr, "GET", "/", &[], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'") && csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(page.body.contains("/console/console.js"));

    for (path, content_type) in [
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/wasm/session_wasm_bg.wasm", "application/wasm"),
        ("/console/vendor/xterm/xterm.js", "text/javascript; charset=utf-8"),
    ] {
        let file = http(addr, "GET", path, &[], "").await;
        assert_eq!((file.status, file.header("content-type")), (200, Some(content_type)), "{path}");
        // Revalidated by its tag: unchanged, it is not sent again.
        let tag = file.header("etag").unwrap().to_owned();
        let again = http(addr, "GET", path, &[("If-None-Match", &tag)], "").await;
        assert_eq!((again.status, again.body.as_str()), (304, ""), "{path}");
    }
    assert_eq!(http(addr, "GET", "/console/../Cargo.toml", &[], "").await.status, 404);
    assert_eq!(http(addr, "DELETE", "/console/api/login", &[], "").await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_and_a_good_one_gets_an_http_only_login_that_logout_ends() {
    let system = System::start(None).await;
    // The real token's id with another key.
    let mut wrong = system.token().to_owned();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    for (token, reason) in [("srt_nonsense", "malformed token"), (wrong.as_str(), "unknown token")] {
        let refused = login(&system, token).await;
        assert_eq!(refused.status, 401, "{token}");
        assert!(refused.body.contains(reason), "{}", refused.body);
        assert!(refused.header("set-cookie").is_none());
    }

    let accepted = login(&system, system.token()).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert!(accepted.body.contains("\"user\":\"tester\""), "{}", accepted.body);
    let set = accepted.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    assert!(!set.contains(system.token()), "the cookie is not the token");
    let cookie = cookie_of(&accepted);
    let me = http(system.relay.addr, "GET", "/console/api/me", &[("Cookie", &cookie)], "").await;
    assert!(me.body.contains("\"user\":\"tester\""), "{}", me.body);

    let origin = origin(&system);
    let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    let out = http(system.relay.addr, "POST", "/console/api/logout", &headers, "").await;
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let me = http(system.relay.addr, "GET", "/console/api/me", &[("Cookie", &cookie)], "").await;
    assert!(me.body.contains("\"user\":null"), "{}", me.body);
    assert_eq!(browser_ws(&system, "/v1/instances", Some(&cookie), &origin).await, Err(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_needs_the_relays_own_origin() {
    let system = System::start(None).await;
    let body = serde_json::json!({ "token": system.token() }).to_string();
    for headers in [vec![], vec![("Origin", "http://evil.example")]] {
        let refused = http(system.relay.addr, "POST", "/console/api/login", &headers, &body).await;
        assert_eq!(refused.status, 403, "{headers:?}");
        assert!(refused.header("set-cookie").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_opens_websockets_from_the_relays_origin_and_no_other() {
    let system = System::start(None).await;
    let cookie = cookie_of(&login(&system, system.token()).await);
    let origin = origin(&system);
    let listing = browser_ws(&system, "/v1/instances", Some(&cookie), &origin).await.unwrap();
    assert!(listing.starts_with("{\"instances\""), "{listing}");
    // A page elsewhere, in the same browser, sends the cookie too: its Origin gives it away.
    assert_eq!(browser_ws(&system, "/v1/instances", Some(&cookie), "http://evil.example").await, Err(403));
    assert_eq!(browser_ws(&system, "/v1/sessions", None, "http://evil.example").await, Err(403));
    assert_eq!(browser_ws(&system, "/v1/instances", None, &origin).await, Err(401));
    assert_eq!(browser_ws(&system, "/v1/instances", Some("session-console=00"), &origin).await, Err(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_token_ends_the_logins_made_with_it() {
    let system = System::start(None).await;
    let (token, id) = system.store.create_token("tester", Duration::from_secs(3600)).unwrap();
    let cookie = cookie_of(&login(&system, &token).await);
    let origin = origin(&system);
    assert!(browser_ws(&system, "/v1/instances", Some(&cookie), &origin).await.is_ok());
    system.store.revoke_token(&id).unwrap();
    assert_eq!(browser_ws(&system, "/v1/instances", Some(&cookie), &origin).await, Err(401));
    let me = http(system.relay.addr, "GET", "/console/api/me", &[("Cookie", &cookie)], "").await;
    assert!(me.body.contains("\"user\":null") && me.body.contains("revoked"), "{}", me.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_consoles_bounds_are_refused() {
    let system = System::start(None).await;
    let long = "x".repeat(20 * 1024);
    let head = http(system.relay.addr, "GET", "/", &[("X-Long", &long)], "").await;
    assert_eq!(head.status, 431);
    let body = "y".repeat(5000);
    let origin = origin(&system);
    let big = http(system.relay.addr, "POST", "/console/api/login", &[("Origin", &origin)], &body).await;
    assert_eq!(big.status, 413);
}
