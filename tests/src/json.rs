//! The JSON form of a message in `spec/vectors/valid.json`, as the spec's section "Test
//! vectors" defines it.

use serde_json::{Value, json};
use session_proto::{Env, ExitStatus, Message, OpenKind, Pty, WindowSize};

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
        other => panic!("no JSON form in the spec for {other:?}"),
    }
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
