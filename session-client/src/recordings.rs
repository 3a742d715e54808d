//! `session-client recordings` and `session-client play <id>`: the session recordings the
//! user may read (spec 11.4, 12.12), listed, and one played on this terminal as it was shown,
//! at real speed or faster, from the relay's chunks as they come (a long recording is not
//! downloaded first).

use std::io::Write;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde_json::Value;
use session_client::{Error, Relay};
use session_link::dial::DialError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Message, WebSocketConfig};

use crate::output::{Format, ago, rfc3339};

/// The longest message read: a listing of many recordings; a chunk is 64 KiB, 1 MiB at most.
const MAX_MESSAGE_LEN: usize = 64 << 20;

/// How long a dial may take, handshake included.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Dials `path` at the relay with the user's token.
async fn dial(relay: &Relay, path: &str) -> Result<Socket, Error> {
    let invalid = |e: &dyn core::fmt::Display| Error::Invalid(format!("{}{path}: {e}", relay.url));
    let mut request = format!("{}{path}", relay.url).into_client_request().map_err(|e| invalid(&e))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", relay.token))
        .map_err(|_| Error::Invalid("the token is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", bearer);
    let limit = Some(MAX_MESSAGE_LEN);
    let config = WebSocketConfig::default().max_message_size(limit).max_frame_size(limit);
    match tokio::time::timeout(DIAL_TIMEOUT, relay.trust.dial_with(request, config)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(DialError::Refused { status, reason })) => {
            Err(Error::Refused { url: relay.url.clone(), status, reason })
        }
        Ok(Err(other)) => Err(Error::Unreachable { url: relay.url.clone(), cause: Some(other) }),
        Err(_) => Err(Error::Unreachable { url: relay.url.clone(), cause: None }),
    }
}

/// The next text message; `None` at the end. A Close with a status other than a normal one is
/// the relay saying why it stopped (a chunk that does not verify, say).
async fn next_text(ws: &mut Socket, path: &str) -> Result<Option<String>, Error> {
    while let Some(message) = ws.next().await {
        match message.map_err(|e| Error::BadAnswer(format!("{path}: {e}")))? {
            Message::Text(text) => return Ok(Some(text.as_str().to_owned())),
            Message::Close(Some(frame)) if frame.code != CloseCode::Normal => {
                return Err(Error::BadAnswer(format!("the relay stopped: {}", frame.reason)));
            }
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

/// `recordings`: the recordings the user may read, newest first.
pub(crate) async fn list(relay: &Relay, format: Format, limit: Option<u32>) -> Result<i32, Error> {
    let path = match limit {
        Some(limit) => format!("/v1/recordings?limit={limit}"),
        None => "/v1/recordings".to_owned(),
    };
    let mut ws = dial(relay, &path).await?;
    let answer = next_text(&mut ws, &path)
        .await?
        .ok_or_else(|| Error::BadAnswer("the relay sent no answer".into()))?;
    let listing: Value =
        serde_json::from_str(&answer).map_err(|e| Error::BadAnswer(format!("{path}: {e}")))?;
    print!("{}", show(&listing, format, SystemTime::now()));
    Ok(0)
}

/// A `/v1/recordings` answer for people (times in words) or programs (RFC 3339).
fn show(listing: &Value, format: Format, now: SystemTime) -> String {
    let items = listing.get("recordings").and_then(Value::as_array).cloned().unwrap_or_default();
    if format == Format::Json {
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut item| {
                for key in ["started", "ended"] {
                    let time = item.get(key).and_then(Value::as_f64);
                    item[key] = time.map_or(Value::Null, |t| Value::String(rfc3339(t as i64)));
                }
                item
            })
            .collect();
        return format!("{}\n", serde_json::json!({ "recordings": items }));
    }
    let text = |item: &Value, key: &str| item.get(key).and_then(Value::as_str).unwrap_or("-").to_owned();
    let mut out = format!(
        "{:<28} {:<12} {:<16} {:<12} {:<10} {:<9} {:>10} KIND\n",
        "ID", "USER", "INSTANCE", "STARTED", "DURATION", "MODE", "SIZE"
    );
    for item in &items {
        let started = item.get("started").and_then(Value::as_f64);
        let duration = match (started, item.get("ended").and_then(Value::as_f64)) {
            (Some(start), Some(end)) => format!("{:.1} s", (end - start).max(0.0)),
            _ => "running".to_owned(),
        };
        let kind: String = text(item, "kind").chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        out.push_str(&format!(
            "{:<28} {:<12} {:<16} {:<12} {:<10} {:<9} {:>10} {kind}\n",
            text(item, "id"),
            text(item, "user"),
            text(item, "instance"),
            ago(started.map(|t| t as i64), now),
            duration,
            text(item, "mode"),
            item.get("size").and_then(Value::as_u64).unwrap_or(0),
        ));
    }
    out
}

/// How `play` paces a recording.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Times faster than real time.
    pub(crate) speed: f64,
    /// The longest pause, whatever the session's.
    pub(crate) max_wait: Option<Duration>,
}

/// `play <id>`: the recording's output on stdout, paced as it was shown; from byte `from` of
/// it (the start of the chunk that holds it); following a session in progress with `follow`.
pub(crate) async fn play(relay: &Relay, id: &str, pace: Pace, from: u64, follow: bool) -> Result<i32, Error> {
    if !(pace.speed.is_finite() && pace.speed > 0.0) {
        return Err(Error::Invalid(format!("--speed {}: a speed is a number above 0", pace.speed)));
    }
    let path = format!("/v1/recordings/{id}?from={from}{}", if follow { "&follow=1" } else { "" });
    let mut ws = dial(relay, &path).await?;
    let head = next_text(&mut ws, &path)
        .await?
        .ok_or_else(|| Error::BadAnswer("the relay sent no answer".into()))?;
    let head: Value = serde_json::from_str(&head).map_err(|e| Error::BadAnswer(format!("{path}: {e}")))?;
    let recording = &head["recording"];
    if recording["mode"] != "full" {
        let moved = &recording["session"];
        eprintln!(
            "session-client: recording {id} has metadata only ({}): {} bytes to the instance, {} from it",
            recording["kind"].as_str().unwrap_or("-"),
            moved["bytes_to_instance"],
            moved["bytes_from_instance"],
        );
        return Ok(1);
    }
    let mut stdout = std::io::stdout().lock();
    let write = |stdout: &mut std::io::StdoutLock<'_>, data: &str| {
        stdout
            .write_all(data.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|error| Error::Io { what: "writing the output".into(), error })
    };
    while let Some(chunk) = next_text(&mut ws, &path).await? {
        for line in chunk.lines() {
            let Ok(Value::Array(event)) = serde_json::from_str::<Value>(line) else { continue };
            let (Some(interval), Some(code), Some(data)) = (
                event.first().and_then(Value::as_f64),
                event.get(1).and_then(Value::as_str),
                event.get(2).and_then(Value::as_str),
            ) else {
                continue;
            };
            let wait = Duration::from_secs_f64((interval / pace.speed).clamp(0.0, 1e9));
            let wait = pace.max_wait.map_or(wait, |most| wait.min(most));
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if code == "o" {
                write(&mut stdout, data)?;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_as_a_table_or_as_json_with_rfc3339_times() {
        let listing = serde_json::json!({"recordings": [{"id": "alice-0123456789abcdef", "user": "alice",
            "instance": "web-1", "kind": "exec: a\tb", "mode": "full", "started": 1_767_225_600.5,
            "ended": 1_767_225_610.75, "size": 1234}]});
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_700);
        let table = show(&listing, Format::Table, now);
        let row = table.lines().nth(1).unwrap();
        assert!(row.starts_with("alice-0123456789abcdef"), "{row}");
        assert!(row.contains("10.2 s") && row.contains("1 min ago") && row.ends_with("exec: a b"), "{row}");
        let json: Value = serde_json::from_str(&show(&listing, Format::Json, now)).unwrap();
        assert_eq!(json["recordings"][0]["started"], "2026-01-01T00:00:00Z");
    }
}
