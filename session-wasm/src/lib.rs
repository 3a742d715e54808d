//! The browser console's side of the session protocol: `session-proto` itself, compiled to
//! wasm32, so that the page speaks exactly the protocol the Rust peers speak, with its checks,
//! flow control and resume, rather than a second implementation in JavaScript.
//!
//! Two layers:
//!
//! - [`client`]: the [`Client`], plain Rust over the no_std core's
//!   [`Connection`](session_proto::connection::Connection). It owns everything that needs no
//!   browser (framing of WebSocket messages, events that outlive their message, the stdin
//!   queues, the words for every end), so the host tests it.
//! - `Session` (this crate's one JS class, in [`js`]): a thin wasm-bindgen layer that turns
//!   numbers and bytes into JS values and back, and nothing else.
//!
//! `scripts/console-assets.sh` builds the module into `session-relay/console/wasm/`, where the
//! relay serves it. The JS API (`import init, { Session } from "./session_wasm.js"`):
//!
//! ```text
//! new Session(nowMs)                        nowMs: performance.now()
//! receive(message: Uint8Array, nowMs)       one binary WebSocket message
//! pollEvent(): object | undefined           call until undefined after every call
//! pollTransmit(): Uint8Array | undefined    send each as one binary message, until undefined
//! pollTimeout(): number | undefined         when to call handleTimeout, in nowMs's clock
//! handleTimeout(nowMs)
//! openShell(term, cols, rows, env?): number  the channel; throws an Error saying why not;
//!                                           env: {NAME: "value", ...} for the shell
//! openExec(command, cols, rows, term?): number
//! write(channel, bytes: Uint8Array): boolean   false: refused whole (queue full, not open)
//! consume(channel, len): boolean            the page rendered len bytes: credit goes back
//! pending(channel): number                  output bytes handed out, not yet consumed
//! resize(channel, cols, rows): boolean
//! signal(channel, name): boolean            "INT", "TERM", "KILL", "HUP", ...; throws on a bad name
//! eof(channel): boolean
//! close(channel): boolean
//! detach()                                  the WebSocket closed
//! reattach(nowMs)                           a new WebSocket is open; throws if ended
//! isResumable(): boolean
//! isEnded(): boolean
//! ```
//!
//! Events are plain objects: `{type: "connected"}`, `{type: "resumed"}`,
//! `{type: "accepted", channel}`, `{type: "refused", channel, reason, message}`,
//! `{type: "data", channel, stream: "stdout" | "stderr", bytes: Uint8Array}`,
//! `{type: "eof", channel}`, `{type: "exit", channel, code?, signal?, coreDumped?}`,
//! `{type: "reason", channel, code, message}`, `{type: "closed", channel}`,
//! `{type: "goaway", code, message}`, `{type: "detached", message}` and
//! `{type: "ended", message}`. Codes and reasons are the spec's names (`"RESUME_REJECTED"`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

extern crate alloc;

pub mod client;
pub mod js;

pub use client::Client;
pub use js::Session;
