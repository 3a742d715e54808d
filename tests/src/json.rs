//! The JSON form of a message in `spec/vectors/valid.json`, as the spec's section "Test
//! vectors" defines it.

use serde_json::{Value, json};
use session_proto::{Entry, Env, ExitStatus, FileEvent, FileRequest, Message, OpenKind, Pty, WindowSize};

/// The JSON form of `message`.
pub fn to_json(message: &Message<'_>) -> Value {
    match message {
        Message::Hello(hello) => json!({
            "type": "Hello",
            "capabilities": hello.capabilities.0.to_string(),
            "max_frame": hello.max_frame,
            "initial_window": hello.initial_window,
            "keepalive_ms": hello.keepalive_ms,
            "resume": hello.resume.map(|r| json!({
                "token_hex": hex::encode(r.token),
                "offset": r.offset.to_string(),
            })),
        }),
        Message::Ping { nonce } => json!({ "type": "Ping", "nonce": nonce.to_string() }),
        Message::Pong { nonce } => json!({ "type": "Pong", "nonce": nonce.to_string() }),
        Message::Ack { offset } => json!({ "type": "Ack", "offset": offset.to_string() }),
        Message::GoAway { code, message } => {
            json!({ "type": "GoAway", "code": code.0, "message": message })
        }
        Message::Open { channel, kind } => {
            json!({ "type": "Open", "channel": channel, "kind": open_kind(kind) })
        }
        Message::Accept { channel } => json!({ "type": "Accept", "channel": channel }),
        Message::Refuse { channel, reason, message } => json!({
            "type": "Refuse", "channel": channel, "reason": reason.0, "message": message,
        }),
        Message::Data { channel, stream, payload } => json!({
            "type": "Data", "channel": channel, "stream": stream.name(),
            "payload_hex": hex::encode(payload),
        }),
        Message::Credit { channel, increment } => {
            json!({ "type": "Credit", "channel": channel, "increment": increment })
        }
        Message::Resize { channel, size } => {
            let mut value = json!({ "type": "Resize", "channel": channel });
            extend(&mut value, window_size(size));
            value
        }
        Message::Signal { channel, signal } => {
            json!({ "type": "Signal", "channel": channel, "signal": signal.0 })
        }
        Message::Eof { channel } => json!({ "type": "Eof", "channel": channel }),
        Message::Exit { channel, status } => {
            let status = match status {
                ExitStatus::Code(code) => json!({ "code": code }),
                ExitStatus::Signal { signal, core_dumped } => {
                    json!({ "signal": signal.0, "core_dumped": core_dumped })
                }
            };
            json!({ "type": "Exit", "channel": channel, "status": status })
        }
        Message::Close { channel } => json!({ "type": "Close", "channel": channel }),
        Message::Reason { channel, code, message } => json!({
            "type": "Reason", "channel": channel, "code": code.0, "message": message,
        }),
        Message::File { channel, event } => {
            json!({ "type": "File", "channel": channel, "event": file_event(event) })
        }
        Message::Session { channel, id } => json!({ "type": "Session", "channel": channel, "id": id }),
        Message::OpenOn { channel, instance, kind } => json!({
            "type": "OpenOn", "channel": channel, "instance": instance, "kind": open_kind(kind),
        }),
        Message::Extension { kind, channel, body } => json!({
            "type": "Extension", "kind": kind, "channel": channel, "body_hex": hex::encode(body),
        }),
        other => panic!("no JSON form in the spec for {other:?}"),
    }
}

fn open_kind(kind: &OpenKind<'_>) -> Value {
    match kind {
        OpenKind::Shell { pty: p, env: e } => json!({ "kind": "shell", "pty": pty(p), "env": env(e) }),
        OpenKind::Exec { command, pty: p, env: e } => json!({
            "kind": "exec", "command": command, "pty": p.as_ref().map(pty), "env": env(e),
        }),
        OpenKind::Forward { host, port } => json!({ "kind": "forward", "host": host, "port": port }),
        OpenKind::Unknown { index, params } => {
            json!({ "kind": "unknown", "index": index, "params_hex": hex::encode(params) })
        }
        OpenKind::File { request } => json!({ "kind": "file", "request": file_request(request) }),
        other => panic!("no JSON form in the spec for {other:?}"),
    }
}

fn file_request(request: &FileRequest<'_>) -> Value {
    let prefix = |prefix: &Option<session_proto::Digest>| prefix.map(hex::encode);
    let mut value = match request {
        FileRequest::Home => json!({}),
        FileRequest::Stat { path } | FileRequest::List { path } | FileRequest::Remove { path } => {
            json!({ "path_hex": hex::encode(path) })
        }
        FileRequest::Read { path, offset, prefix: p } => json!({
            "path_hex": hex::encode(path), "offset": offset.to_string(), "prefix_hex": prefix(p),
        }),
        FileRequest::Write { path, size, mode, overwrite, offset, prefix: p } => json!({
            "path_hex": hex::encode(path), "size": size.to_string(), "mode": mode,
            "overwrite": overwrite, "offset": offset.to_string(), "prefix_hex": prefix(p),
        }),
        FileRequest::Mkdir { path, mode } | FileRequest::Chmod { path, mode } => {
            json!({ "path_hex": hex::encode(path), "mode": mode })
        }
        FileRequest::Rename { from, to, overwrite } => json!({
            "from_hex": hex::encode(from), "to_hex": hex::encode(to), "overwrite": overwrite,
        }),
        FileRequest::Unknown { index, params } => {
            json!({ "index": index, "params_hex": hex::encode(params) })
        }
        other => panic!("no JSON form in the spec for {other:?}"),
    };
    extend(&mut value, json!({ "op": request.op() }));
    value
}

fn file_event(event: &FileEvent<'_>) -> Value {
    match event {
        FileEvent::Start { offset, size, mode, mtime } => json!({
            "event": "start", "offset": offset.to_string(), "size": size.to_string(), "mode": mode,
            "mtime": mtime.to_string(),
        }),
        FileEvent::End { size, sha256 } => {
            json!({ "event": "end", "size": size.to_string(), "sha256_hex": hex::encode(sha256) })
        }
        FileEvent::Done => json!({ "event": "done" }),
        FileEvent::Failed { error, message } => {
            json!({ "event": "failed", "error": error.0, "message": message })
        }
    }
}

/// The JSON form of an Entry record in `spec/vectors/entries.json`.
pub fn entry_to_json(entry: &Entry<'_>) -> Value {
    json!({
        "name_hex": hex::encode(entry.name), "kind": entry.kind.0, "size": entry.size.to_string(),
        "mode": entry.mode, "mtime": entry.mtime.to_string(), "target_hex": hex::encode(entry.target),
    })
}

fn pty(pty: &Pty<'_>) -> Value {
    let mut value = json!({ "term": pty.term });
    extend(&mut value, window_size(&pty.size));
    value
}

fn window_size(size: &WindowSize) -> Value {
    json!({
        "cols": size.cols, "rows": size.rows,
        "width_px": size.width_px, "height_px": size.height_px,
    })
}

fn env(env: &Env<'_>) -> Value {
    env.iter().map(|var| json!({ "name": var.name, "value": var.value })).collect()
}

fn extend(value: &mut Value, more: Value) {
    if let (Value::Object(into), Value::Object(from)) = (value, more) {
        into.extend(from);
    }
}
