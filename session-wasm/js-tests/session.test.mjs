// The committed wasm module and its generated glue, as the console loads them, driven from Node
// with frames written out by hand: what the host's Rust tests cannot see (the JS names, the
// event objects, Uint8Arrays, thrown Errors). Run: node --test session-wasm/js-tests/

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { initSync, Session } from "../../session-relay/console/wasm/session_wasm.js";

initSync({ module: readFileSync(new URL("../../session-relay/console/wasm/session_wasm_bg.wasm", import.meta.url)) });

// ---- frames (spec sections 2.1 and 3) ----------------------------------------------------------

const HELLO = 0x01, PING = 0x02, GO_AWAY = 0x04, OPEN = 0x10, ACCEPT = 0x11, REFUSE = 0x12;
const DATA = 0x13, RESIZE = 0x15, SIGNAL = 0x16, EOF = 0x17, EXIT = 0x18, CLOSE = 0x19;
const TOKEN = new Uint8Array(16).fill(7);

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}

const str = (s) => {
  const bytes = new TextEncoder().encode(s);
  return [...varint(bytes.length), ...bytes];
};

function frame(type, channel, body = []) {
  const n = body.length;
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff, type, channel >> 8, channel & 0xff, ...body];
}

function relayHello(offset = 0) {
  const resume = [1, ...varint(TOKEN.length), ...TOKEN, ...varint(offset)];
  return frame(HELLO, 0, [...varint(1), ...varint(1), ...varint(131072), ...varint(262144), ...varint(15000), ...resume]);
}

const message = (...frames) => new Uint8Array(frames.flat());

// The frames of a message the session sent: [{type, channel, body}].
function parse(bytes) {
  assert.ok(bytes instanceof Uint8Array);
  const frames = [];
  for (let at = 0; at < bytes.length; ) {
    const len = (bytes[at] << 16) | (bytes[at + 1] << 8) | bytes[at + 2];
    frames.push({ type: bytes[at + 3], channel: (bytes[at + 4] << 8) | bytes[at + 5], body: bytes.slice(at + 6, at + 6 + len) });
    at += 6 + len;
  }
  return frames;
}

function sent(session) {
  const frames = [];
  let bytes;
  while ((bytes = session.pollTransmit()) !== undefined) frames.push(...parse(bytes));
  return frames;
}

function events(session) {
  const out = [];
  let event;
  while ((event = session.pollEvent()) !== undefined) out.push(event);
  return out;
}

// A session with both Hellos exchanged.
function connected() {
  const session = new Session(performance.now());
  const [hello] = sent(session);
  assert.equal(hello.type, HELLO);
  session.receive(message(relayHello()), performance.now());
  assert.deepEqual(events(session), [{ type: "connected" }]);
  assert.equal(session.isResumable(), true);
  return session;
}

// ---- tests ------------------------------------------------------------------------------------

test("a shell: open, accept, output, credit, input, signals, exit, close", () => {
  const session = new Session(0);
  assert.throws(() => session.openShell("xterm-256color", 80, 24), (e) => e instanceof Error && /not connected yet/.test(e.message));
  const [hello, ...rest] = sent(session);
  assert.equal(hello.type, HELLO);
  assert.equal(rest.length, 0);
  session.receive(message(relayHello()), 5);
  assert.deepEqual(events(session), [{ type: "connected" }]);

  const channel = session.openShell("xterm-256color", 120, 40);
  assert.equal(channel, 1);
  assert.deepEqual(sent(session).map((f) => [f.type, f.channel]), [[OPEN, 1]]);
  assert.equal(session.resize(channel, 100, 30), true, "kept until the Accept");

  const output = new TextEncoder().encode("hello\r\n");
  session.receive(message(frame(ACCEPT, 1), frame(DATA, 1, [1, ...output]), frame(DATA, 1, [2, 0x21])), 10);
  const [accepted, stdout, stderr, ...none] = events(session);
  assert.deepEqual(accepted, { type: "accepted", channel: 1 });
  assert.equal(stdout.type, "data");
  assert.equal(stdout.channel, 1);
  assert.equal(stdout.stream, "stdout");
  assert.ok(stdout.bytes instanceof Uint8Array);
  assert.deepEqual([...stdout.bytes], [...output]);
  assert.deepEqual([stderr.stream, [...stderr.bytes]], ["stderr", [0x21]]);
  assert.deepEqual(none, []);
  assert.equal(session.pending(channel), output.length + 1);
  assert.equal(session.consume(channel, 1000), false, "more than it holds");
  assert.equal(session.consume(channel, output.length + 1), true);
  assert.equal(session.pending(channel), 0);

  assert.equal(session.write(channel, new TextEncoder().encode("ls\r")), true);
  assert.equal(session.signal(channel, "INT"), true);
  assert.throws(() => session.signal(channel, "NOPE"), /unknown signal/);
  const frames = sent(session);
  const types = frames.map((f) => f.type);
  for (const type of [RESIZE, SIGNAL, DATA]) assert.ok(types.includes(type), `${type} in ${types}`);
  const data = frames.find((f) => f.type === DATA);
  assert.deepEqual([...data.body], [0, ...new TextEncoder().encode("ls\r")]);
  assert.ok(types.indexOf(SIGNAL) < types.indexOf(DATA), "the signal goes ahead of stdin");

  // Exit 3, Eof, Close: the Close is answered, and the channel is over.
  session.receive(message(frame(EXIT, 1, [0, 3]), frame(EOF, 1), frame(CLOSE, 1)), 20);
  assert.deepEqual(events(session), [
    { type: "exit", channel: 1, code: 3 },
    { type: "eof", channel: 1 },
    { type: "closed", channel: 1 },
  ]);
  assert.ok(sent(session).some((f) => f.type === CLOSE && f.channel === 1));
  assert.equal(session.write(channel, new Uint8Array([1])), false);
  assert.equal(session.close(channel), false);
  assert.equal(session.isEnded(), false);
});

test("event objects for a signal's exit, a refusal and a reason", () => {
  const session = connected();
  const shell = session.openShell("xterm", 80, 24);
  const exec = session.openExec("uptime", 80, 24);
  const other = session.openExec("true", 80, 24, "vt100");
  assert.deepEqual([shell, exec, other], [1, 3, 5]);
  const opens = sent(session).filter((f) => f.type === OPEN);
  assert.equal(opens.length, 3);
  session.receive(
    message(
      frame(ACCEPT, 1),
      frame(EXIT, 1, [1, 15, 1]),
      frame(0x81, 1, [...varint(1), ...str("terminated by admin")]),
      frame(REFUSE, 3, [...varint(6), ...str("instance offline")]),
    ),
    1,
  );
  assert.deepEqual(events(session), [
    { type: "accepted", channel: 1 },
    { type: "exit", channel: 1, signal: "TERM", coreDumped: true },
    { type: "reason", channel: 1, code: "TERMINATED", message: "terminated by admin" },
    { type: "refused", channel: 3, reason: "UNAVAILABLE", message: "instance offline" },
  ]);
  assert.throws(() => session.openShell("x".repeat(65), 80, 24), /invalid request/);
});

test("the relay's GoAway, and a malformed message, end the session", () => {
  const ended = connected();
  ended.receive(message(frame(GO_AWAY, 0, [...varint(0), ...str("relay stopping")])), 1);
  assert.deepEqual(events(ended), [
    { type: "goaway", code: "NO_ERROR", message: "relay stopping" },
    { type: "ended", message: "the relay ended the connection (NO_ERROR): relay stopping" },
  ]);
  assert.equal(ended.isEnded(), true);
  assert.equal(ended.isResumable(), false);
  assert.throws(() => ended.reattach(2), /ended/);

  const broken = connected();
  broken.receive(new Uint8Array([0, 0, 9, DATA, 0, 1, 1]), 1);
  const [event] = events(broken);
  assert.equal(event.type, "ended");
  assert.match(event.message, /malformed/);
  assert.deepEqual(sent(broken).map((f) => f.type), [GO_AWAY]);
  broken.receive(new Uint8Array([]), 2);
  assert.deepEqual(events(broken), []);
});

test("keepalive, detach and re-attach", () => {
  const session = connected();
  const channel = session.openShell("xterm", 80, 24);
  const [open] = sent(session);
  const due = session.pollTimeout();
  assert.equal(typeof due, "number");
  session.handleTimeout(due);
  assert.deepEqual(sent(session).map((f) => f.type), [PING]);

  session.detach();
  assert.equal(session.isResumable(), true);
  assert.equal(session.isEnded(), false);
  assert.equal(session.pollTimeout(), undefined);
  assert.equal(session.write(channel, new Uint8Array([0x61])), true, "typing waits for the new connection");
  session.reattach(due + 100);
  const [hello] = sent(session);
  assert.equal(hello.type, HELLO);
  assert.deepEqual([hello.body.at(-19), hello.body.at(-18)], [1, TOKEN.length], "a resume token follows");
  assert.deepEqual([...hello.body.slice(-17, -1)], [...TOKEN]);
  assert.equal(hello.body.at(-1), 0, "nothing of the relay's stream received");
  // The relay had received the Open: its offset is the Open's end.
  session.receive(message(relayHello(6 + open.body.length), frame(ACCEPT, 1)), due + 200);
  assert.deepEqual(events(session), [{ type: "resumed" }, { type: "accepted", channel: 1 }]);
  const data = sent(session).find((f) => f.type === DATA);
  assert.deepEqual([...data.body], [0, 0x61]);
});

test("a session never started ends when its socket closes", () => {
  const session = new Session(0);
  session.detach();
  assert.deepEqual(events(session), [
    { type: "ended", message: "the connection to the relay closed before the session was set up" },
  ]);
  assert.equal(session.pollTransmit(), undefined);
  assert.equal(session.write(1, new Uint8Array([1])), false);
  assert.equal(session.consume(70000, 1), false);
  session.free();
});
