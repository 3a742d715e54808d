// The console's recording player (session-relay/console/player.js) without a browser: the
// asciicast parser, and the playback engine driven with a fake clock, fake timers, a fake
// WebSocket standing for the relay's /v1/recordings/<id> and a fake terminal. What the real
// Chromium shows is tests/tests/console_player.rs. Run: node --test session-wasm/js-tests/

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  CastParser,
  Clock,
  HIGH_WATER,
  LOW_WATER,
  Playback,
  clockTime,
  parseSize,
  utf8Length,
} from "../../session-relay/console/player.js";

const HEADER = JSON.stringify({ version: 3, term: { cols: 80, rows: 24, type: "xterm" }, timestamp: 1767225600, title: "t" });
const line = (interval, code, data) => `[${interval.toFixed(6)}, ${JSON.stringify(code)}, ${JSON.stringify(data)}]\n`;

test("utf8Length counts what TextEncoder writes", () => {
  for (const text of ["", "abc", "café", "€ and 😀", "lone \ud800 surrogate", "x\udc00y", "😀😀\n"]) {
    assert.equal(utf8Length(text), new TextEncoder().encode(text).length, text);
  }
});

test("the parser reads a header and events, summing intervals in whole microseconds", () => {
  const parser = new CastParser();
  let events = parser.push(`${HEADER}\n${line(0.1, "o", "a")}`);
  assert.equal(parser.header.term.cols, 80);
  assert.deepEqual(events, [{ t: 100000, code: "o", data: "a" }]);
  // A line cut between two pieces waits for its end.
  const cut = line(0.1, "r", "100x30");
  assert.deepEqual(parser.push(cut.slice(0, 7)), []);
  events = parser.push(cut.slice(7));
  assert.deepEqual(events, [{ t: 200000, code: "r", data: "100x30" }]);
  for (let i = 0; i < 8; i++) parser.push(line(0.1, "o", "b"));
  // Ten intervals of 0.1 s are exactly one second, as the relay measured it.
  assert.equal(parser.micros, 1000000);
  parser.push("not json\n");
  assert.equal(parser.bad, 1);
  assert.deepEqual(parser.push('[0.5, "x", "0"]'), []);
  assert.deepEqual(parser.finish(), [{ t: 1500000, code: "x", data: "0" }]);

  const v2 = new CastParser();
  v2.push('{"version": 2, "width": 80, "height": 24}\n');
  assert.match(v2.error, /not asciicast version 3/);
});

test("sizes and times in words", () => {
  assert.deepEqual(parseSize("100x30"), [100, 30]);
  assert.equal(parseSize("100 x 30"), null);
  assert.equal(clockTime(75.9), "1:15");
  assert.equal(clockTime(3725), "1:02:05");
});

test("the clock moves at its speed and stops when paused", () => {
  const clock = new Clock(0);
  clock.play(1000);
  assert.equal(clock.at(2000), 1e6);
  clock.setSpeed(4, 2000);
  assert.equal(clock.at(2500), 3e6);
  clock.pause(2500);
  assert.equal(clock.at(9000), 3e6);
});

// ---- the engine, against fakes ------------------------------------------------------------

// A world: time that moves only when told, timers on it, the sockets the player opened, and a
// terminal whose writes are parsed only when told.
function world() {
  const w = {
    now: 0,
    timers: [],
    sockets: [],
    term: {
      text: "",
      sizes: [],
      resets: 0,
      pending: [],
      // Writes are parsed later, as xterm.js does.
      write(data, done) {
        this.pending.push([data, done]);
      },
      resize(cols, rows) {
        // A resize must come after the output before it was parsed.
        assert.equal(this.pending.length, 0, "a resize while output waits to be parsed");
        this.sizes.push(`${cols}x${rows}`);
        this.text += `<${cols}x${rows}>`;
      },
      reset() {
        assert.equal(this.pending.length, 0, "a reset while output waits to be parsed");
        this.resets += 1;
        this.text = "";
      },
    },
  };
  w.env = {
    now: () => w.now,
    setTimeout: (fn, ms) => {
      const timer = { fn, at: w.now + ms };
      w.timers.push(timer);
      return timer;
    },
    clearTimeout: (timer) => {
      w.timers = w.timers.filter((t) => t !== timer);
    },
    WebSocket: class {
      constructor(url, protocol) {
        this.url = url;
        this.protocol = protocol;
        this.closed = false;
        w.sockets.push(this);
      }
      close() {
        this.closed = true;
      }
      // The relay's side.
      send(text) {
        assert.ok(!this.closed, "a message to a closed socket");
        this.onmessage({ data: text });
      }
      end(code = 1005, reason = "") {
        this.closed = true;
        this.onclose({ code, reason });
      }
    },
  };
  // Everything the terminal was given is parsed, and each parse pumps the player again.
  w.parse = () => {
    while (w.term.pending.length) {
      const [data, done] = w.term.pending.shift();
      w.term.text += data;
      done();
    }
  };
  // Time passes by `ms`: due timers fire, and output is parsed as it goes.
  w.advance = (ms) => {
    const until = w.now + ms;
    for (;;) {
      w.parse();
      w.timers.sort((a, b) => a.at - b.at);
      const timer = w.timers[0];
      if (!timer || timer.at > until) break;
      w.timers.shift();
      w.now = Math.max(w.now, timer.at);
      timer.fn();
    }
    w.now = until;
    w.parse();
  };
  w.socket = () => w.sockets[w.sockets.length - 1];
  w.query = (socket = w.socket()) => new URL(socket.url).searchParams;
  return w;
}

const ENTRY = { id: "alice-0000000000000001", user: "alice", instance: "web-1", mode: "full", started: 1000, ended: 1010 };
const head = (from = 0, entry = ENTRY) => JSON.stringify({ recording: entry, from });

function player(w, options = {}) {
  const p = new Playback({ id: ENTRY.id, entry: ENTRY, term: w.term, base: "ws://relay", env: w.env, ...options });
  p.start(options);
  return p;
}

test("a recording plays at its pace and speed, resizes in order, and pause holds", () => {
  const w = world();
  const p = player(w);
  const ws = w.socket();
  assert.equal(ws.url, "ws://relay/v1/recordings/alice-0000000000000001?from=0");
  assert.equal(ws.protocol, "session-proto.v1");
  assert.equal(p.status(), "loading");
  ws.send(head());
  ws.send(`${HEADER}\n`);
  ws.send(line(0.5, "o", "one ") + line(0.5, "r", "100x30") + line(1, "o", "two ") + line(2, "o", "three ") + line(0, "x", "0"));
  ws.end();
  w.advance(0);
  assert.equal(w.term.text, "<80x24>");
  w.advance(600);
  assert.equal(w.term.text, "<80x24>one ");
  w.advance(500);
  assert.equal(w.term.text, "<80x24>one <100x30>");
  assert.equal(p.status(), "playing");
  p.pause();
  w.advance(60000);
  assert.equal(w.term.text, "<80x24>one <100x30>", "nothing moves while paused");
  assert.equal(p.state().position, 1.1);
  assert.equal(p.status(), "paused");
  p.setSpeed(4);
  p.play();
  // 0.9 s of the recording at 4x: 225 ms.
  w.advance(224);
  assert.equal(w.term.text, "<80x24>one <100x30>");
  w.advance(2);
  assert.equal(w.term.text, "<80x24>one <100x30>two ");
  w.advance(500);
  assert.equal(w.term.text, "<80x24>one <100x30>two three ");
  assert.equal(p.status(), "ended");
  assert.equal(p.exit, "0");
  assert.equal(p.state().position, 4);
  assert.equal(p.state().duration, 4);
  // Play at the end replays from the start: the terminal reset, the recording read again.
  p.play();
  assert.equal(w.term.resets, 1);
  assert.equal(w.query().get("from"), "0");
});

test("the clock waits for events not read yet, rather than skip them", () => {
  const w = world();
  const p = player(w);
  const ws = w.socket();
  ws.send(head());
  ws.send(`${HEADER}\n${line(1, "o", "a")}`);
  w.advance(5000);
  assert.equal(p.status(), "buffering");
  assert.equal(p.state().position, 1);
  ws.send(line(1, "o", "b"));
  // From where it waited: one second later, not at once.
  w.advance(900);
  assert.equal(w.term.text, "<80x24>a");
  w.advance(200);
  assert.equal(w.term.text, "<80x24>ab");
});

test("a long recording is read a window at a time, from the byte where it stopped", () => {
  const w = world();
  const p = player(w, { paused: true });
  const ws = w.socket();
  ws.send(head());
  // Chunks of 64 Ki characters of output each (128 KiB: the text is not ASCII, so bytes and
  // characters differ), one event a second, 40 of them: more than the window.
  const piece = "é".repeat(64 * 1024);
  const chunks = [`${HEADER}\n`];
  for (let i = 0; i < 40; i++) chunks.push(line(1, "o", `${i}:${piece}`));
  let sent = 0;
  let offset = 0;
  while (!ws.closed && sent < chunks.length) {
    ws.send(chunks[sent]);
    offset += new TextEncoder().encode(chunks[sent]).length;
    sent += 1;
  }
  assert.ok(sent < chunks.length, "the whole recording was read while paused");
  assert.equal(p.stream, "suspended");
  assert.ok(p.maxQueued <= HIGH_WATER + 70 * 1024, `${p.maxQueued}`);
  assert.equal(p.offset, offset);

  // Seeking to the end shows everything at once: the stream opens again from that byte as the
  // window drains.
  p.seek(40);
  for (;;) {
    w.advance(0);
    const socket = w.socket();
    if (socket.closed || socket.served) {
      if (sent === chunks.length) break;
      continue;
    }
    socket.served = true;
    assert.equal(w.query(socket).get("from"), String(offset));
    socket.send(head(offset));
    while (!socket.closed && sent < chunks.length) {
      socket.send(chunks[sent]);
      offset += new TextEncoder().encode(chunks[sent]).length;
      sent += 1;
    }
    if (!socket.closed) socket.end();
  }
  w.advance(0);
  assert.ok(w.sockets.length > 1);
  assert.ok(p.maxQueued <= HIGH_WATER + 70 * 1024, `${p.maxQueued}`);
  let expected = "<80x24>";
  for (let i = 0; i < 40; i++) expected += `${i}:${piece}`;
  assert.ok(w.term.text === expected, "every event shown once, in order");
  assert.equal(p.status(), "ended");
  assert.ok(p.queued < LOW_WATER);
});

test("a seek forward shows what lies between at once; backward replays from the start", () => {
  const w = world();
  const p = player(w);
  let ws = w.socket();
  ws.send(head());
  ws.send(`${HEADER}\n${line(1, "o", "a")}${line(1, "o", "b")}${line(1, "o", "c")}${line(1, "o", "d")}`);
  w.advance(1500);
  assert.equal(w.term.text, "<80x24>a");
  p.seek(3.5);
  w.advance(0);
  assert.equal(w.term.text, "<80x24>abc");
  assert.equal(p.state().position, 3.5);
  p.pause();
  p.seek(2);
  w.advance(0);
  assert.equal(w.term.resets, 1);
  assert.equal(w.term.text, "");
  ws = w.socket();
  assert.equal(w.sockets.length, 2);
  assert.equal(w.query(ws).get("from"), "0");
  ws.send(head());
  ws.send(`${HEADER}\n${line(1, "o", "a")}${line(1, "o", "b")}${line(1, "o", "c")}`);
  w.advance(0);
  assert.equal(w.term.text, "<80x24>ab", "replayed up to the position at once, paused");
  w.advance(10000);
  assert.equal(w.term.text, "<80x24>ab");
});

test("a session in progress is followed live, and its end is the recording's", () => {
  const w = world();
  const running = { ...ENTRY, ended: null };
  const p = player(w, { entry: running, follow: true, live: true });
  const ws = w.socket();
  assert.equal(w.query(ws).get("follow"), "1");
  ws.send(head(0, running));
  ws.send(`${HEADER}\n${line(5, "o", "$ ")}`);
  w.advance(0);
  assert.equal(w.term.text, "<80x24>$ ", "shown at once, whatever its time");
  assert.equal(p.status(), "live");
  p.pause();
  ws.send(line(3, "o", "held"));
  w.advance(10000);
  assert.equal(w.term.text, "<80x24>$ ");
  p.play();
  w.advance(0);
  assert.equal(w.term.text, "<80x24>$ held");
  ws.send(line(1, "o", " more") + line(0, "x", "0"));
  w.advance(0);
  assert.equal(w.term.text, "<80x24>$ held more");
  ws.end();
  w.advance(0);
  assert.equal(p.status(), "ended");
  assert.equal(p.live, false);
});

test("a metadata entry is its description alone; a refusal and a broken chain are said", () => {
  let w = world();
  const metadata = { ...ENTRY, mode: "metadata" };
  let p = player(w, { entry: metadata });
  w.socket().send(head(0, metadata));
  assert.equal(p.status(), "metadata");
  assert.ok(w.socket().closed);

  w = world();
  p = player(w);
  w.socket().end(1006);
  assert.equal(p.status(), "failed");
  assert.match(p.error, /refused/);

  w = world();
  p = player(w);
  w.socket().send(head());
  w.socket().send(`${HEADER}\n`);
  w.socket().end(1011, "chunk 3 does not verify");
  assert.equal(p.status(), "failed");
  assert.match(p.error, /chunk 3 does not verify/);
});
