//! The wasm-bindgen layer: JS names, JS numbers and JS objects over [`Client`], and nothing
//! else, so that what matters is tested on the host.
//!
//! Channel ids, sizes and lengths come in as `u32`: wasm-bindgen converts a JS number with
//! `>>> 0`, so any number arrives as some `u32`, and one that is no channel is simply unknown.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use js_sys::{Object, Reflect, Uint8Array};
use session_proto::ExitStatus;
use wasm_bindgen::prelude::*;

use crate::client::{Client, CommandFailed, Output, signal_name};

/// The browser's client side of one connection to the relay (initiator, RESUME offered). See
/// the crate's documentation for how the page drives it.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Session {
    client: Client,
}

#[wasm_bindgen]
impl Session {
    /// A session whose WebSocket is opening at `now_ms` (`performance.now()`).
    #[wasm_bindgen(constructor)]
    pub fn new(now_ms: f64) -> Session {
        Session { client: Client::new(now_ms) }
    }

    /// One binary WebSocket message from the relay. Taken as a `Vec`: wasm-bindgen copies the
    /// `Uint8Array` into wasm memory once, and the payloads stay there until their events go.
    pub fn receive(&mut self, message: Vec<u8>, now_ms: f64) {
        self.client.receive(message, now_ms);
    }

    /// The next event as a plain object, or `undefined`.
    #[wasm_bindgen(js_name = pollEvent)]
    pub fn poll_event(&mut self) -> Option<Object> {
        self.client.poll_event().map(event_object)
    }

    /// The next binary message to send, or `undefined`.
    #[wasm_bindgen(js_name = pollTransmit)]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.client.poll_transmit()
    }

    /// Opens a login shell on a terminal; returns the channel, or throws an `Error` saying why
    /// it cannot. `env`, if given, is a plain object of environment variables for the shell
    /// (`{PROMPT_COMMAND: "..."}`), each value a string.
    #[wasm_bindgen(js_name = openShell)]
    pub fn open_shell(
        &mut self,
        term: &str,
        cols: u32,
        rows: u32,
        env: Option<Object>,
    ) -> Result<u16, JsError> {
        let env = match env {
            Some(env) => env_pairs(&env)?,
            None => Vec::new(),
        };
        self.client.open_shell_with_env(term, cols, rows, &env).map_err(js_error)
    }

    /// Runs `command` on a terminal of type `term` (left out: the agent's default); returns the
    /// channel, or throws.
    #[wasm_bindgen(js_name = openExec)]
    pub fn open_exec(
        &mut self,
        command: &str,
        cols: u32,
        rows: u32,
        term: Option<String>,
    ) -> Result<u16, JsError> {
        self.client.open_exec(command, term.as_deref().unwrap_or_default(), cols, rows).map_err(js_error)
    }

    /// Queues stdin; false, taking nothing, when it cannot (see [`Client::write`]).
    pub fn write(&mut self, channel: u32, bytes: &[u8]) -> bool {
        id(channel).is_some_and(|channel| self.client.write(channel, bytes))
    }

    /// The page rendered `len` bytes of the channel's output.
    pub fn consume(&mut self, channel: u32, len: u32) -> bool {
        id(channel).is_some_and(|channel| self.client.consume(channel, len as usize))
    }

    /// Output bytes of the channel handed out and not yet consumed.
    pub fn pending(&self, channel: u32) -> u32 {
        // At most the initial window, a u32.
        id(channel).map_or(0, |channel| u32::try_from(self.client.pending(channel)).unwrap_or(u32::MAX))
    }

    /// The terminal's new size.
    pub fn resize(&mut self, channel: u32, cols: u32, rows: u32) -> bool {
        id(channel).is_some_and(|channel| self.client.resize(channel, cols, rows))
    }

    /// Sends a signal by name; throws on a name the spec does not give.
    pub fn signal(&mut self, channel: u32, name: &str) -> Result<bool, JsError> {
        match id(channel) {
            Some(channel) => self.client.signal(channel, name).map_err(js_error),
            None => Ok(false),
        }
    }

    /// No more stdin on the channel.
    pub fn eof(&mut self, channel: u32) -> bool {
        id(channel).is_some_and(|channel| self.client.eof(channel))
    }

    /// Closes the channel.
    pub fn close(&mut self, channel: u32) -> bool {
        id(channel).is_some_and(|channel| self.client.close(channel))
    }

    /// The WebSocket closed.
    pub fn detach(&mut self) {
        self.client.detach();
    }

    /// A new WebSocket is open: the next message resumes the session. Throws once the session
    /// has ended.
    pub fn reattach(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.client.reattach(now_ms).map_err(js_error)
    }

    /// Whether the session can outlive its WebSocket.
    #[wasm_bindgen(js_name = isResumable)]
    pub fn is_resumable(&self) -> bool {
        self.client.is_resumable()
    }

    /// Whether the connection is over.
    #[wasm_bindgen(js_name = isEnded)]
    pub fn is_ended(&self) -> bool {
        self.client.is_ended()
    }

    /// When `handleTimeout` is next due, or `undefined`.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.client.poll_timeout()
    }

    /// Keepalive's turn.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) {
        self.client.handle_timeout(now_ms);
    }
}

/// A channel id from a JS number: ids are 16 bits, so anything larger names no channel.
fn id(channel: u32) -> Option<u16> {
    u16::try_from(channel).ok()
}

/// The `(name, value)` pairs of a plain object, in its own enumerable properties' order; a
/// value that is not a string is refused rather than turned into some text.
fn env_pairs(env: &Object) -> Result<Vec<(String, String)>, JsError> {
    Object::entries(env)
        .iter()
        .map(|entry| {
            let entry = js_sys::Array::from(&entry);
            let name = entry.get(0).as_string().unwrap_or_default();
            match entry.get(1).as_string() {
                Some(value) => Ok((name, value)),
                None => {
                    Err(JsError::new(&format!("invalid request: the value of env {name} is not a string")))
                }
            }
        })
        .collect()
}

fn js_error(failed: CommandFailed) -> JsError {
    JsError::new(&failed.0)
}

/// An event as the plain object the page reads.
fn event_object(output: Output) -> Object {
    let object = Object::new();
    let set = |key: &str, value: JsValue| {
        // Setting a property of a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &JsValue::from_str(key), &value);
    };
    // First, so that it comes first when the page logs the object.
    set("type", event_type(&output).into());
    match output {
        Output::Connected | Output::Resumed => {}
        Output::Accepted { channel } => set("channel", channel.into()),
        Output::Refused { channel, reason, message } => {
            set("channel", channel.into());
            set("reason", JsValue::from_str(&reason.to_string()));
            set("message", message.into());
        }
        Output::Data { channel, stream, bytes } => {
            set("channel", channel.into());
            set("stream", stream.name().into());
            // The one copy out of wasm memory, into an array the page owns.
            set("bytes", Uint8Array::from(bytes.as_bytes()).into());
        }
        Output::Eof { channel } => {
            set("channel", channel.into());
        }
        Output::Exit { channel, status } => {
            set("channel", channel.into());
            match status {
                ExitStatus::Code(code) => set("code", code.into()),
                ExitStatus::Signal { signal, core_dumped } => {
                    set("signal", signal_name(signal).into());
                    set("coreDumped", core_dumped.into());
                }
            }
        }
        Output::Reason { channel, code, message } => {
            set("channel", channel.into());
            set("code", JsValue::from_str(&code.to_string()));
            set("message", message.into());
        }
        Output::Closed { channel } => {
            set("channel", channel.into());
        }
        Output::GoAway { code, message } => {
            set("code", JsValue::from_str(&code.to_string()));
            set("message", message.into());
        }
        Output::Detached { message } => {
            set("message", message.into());
        }
        Output::Ended { message } => {
            set("message", message.into());
        }
    }
    object
}

/// The `type` of an event's object.
fn event_type(output: &Output) -> &'static str {
    match output {
        Output::Connected => "connected",
        Output::Resumed => "resumed",
        Output::Accepted { .. } => "accepted",
        Output::Refused { .. } => "refused",
        Output::Data { .. } => "data",
        Output::Eof { .. } => "eof",
        Output::Exit { .. } => "exit",
        Output::Reason { .. } => "reason",
        Output::Closed { .. } => "closed",
        Output::GoAway { .. } => "goaway",
        Output::Detached { .. } => "detached",
        Output::Ended { .. } => "ended",
    }
}
