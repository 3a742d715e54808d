// The console's recordings (spec 12.12): the list of those the login's user may read
// (`/v1/recordings`), and a player that plays one into a read-only xterm.js while it streams in
// (`/v1/recordings/<id>`, spec 11.4), with pause, speed, seek, and a session in progress
// watched as it happens (`follow=1`).
//
// A recording is never fetched whole: the player reads its asciicast a chunk a message, keeps
// only the events not yet shown, and closes the stream once HIGH_WATER of them wait; it opens
// it again from the byte where it stopped once fewer than LOW_WATER do. asciicast keeps no
// snapshots of the screen, so a seek forward renders the output between at once, as it
// arrives, and a seek backward resets the terminal and replays from the start at once.
//
// Nothing here runs at import: console.js makes the RecordingsView, and the engine (CastParser,
// Clock, Playback) runs in Node too, with a fake terminal and socket (session-wasm/js-tests/).

export const SPEEDS = [1, 2, 4, 16];
const SUBPROTOCOL = "session-proto.v1";
// Events read ahead of the screen, at most, in characters of their text (each event counting
// EVENT_COST more): past HIGH_WATER the stream is closed, below LOW_WATER it is opened again.
// With the chunk being read (1 MiB at most, 12.12), that is what a recording of any length
// costs the page.
export const HIGH_WATER = 2 << 20;
export const LOW_WATER = 512 << 10;
const EVENT_COST = 64;
// Output handed to xterm.js at once; the next batch goes once it is parsed.
const WRITE_BATCH = 256 << 10;
// The longest sleep between looks at the clock while playing: how often the position shows.
const TICK_MS = 200;
const REFRESH_MS = 3000;

// ---- asciicast v3, as the relay writes it (12.12) --------------------------------------------

// The bytes `text` takes as UTF-8: where the next chunk starts, in the recording's file.
export function utf8Length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i += 1;
      } else {
        n += 3;
      }
    } else {
      n += 3;
    }
  }
  return n;
}

// Lines in, events out: the header line, then `[interval, code, data]`, each interval in
// seconds since the event before. Times are summed in whole microseconds, as the relay wrote
// them, so that they do not drift over a long recording.
export class CastParser {
  constructor() {
    this.header = null;
    this.micros = 0;
    this.rest = "";
    this.bad = 0; // lines that were neither
    this.error = "";
  }

  // The events of the lines `text` completes; a line cut at its end waits for the rest.
  push(text) {
    const events = [];
    const data = this.rest ? this.rest + text : text;
    let start = 0;
    for (;;) {
      const end = data.indexOf("\n", start);
      if (end < 0) break;
      this.line(data.slice(start, end), events);
      start = end + 1;
    }
    this.rest = data.slice(start);
    return events;
  }

  // The stream ended: a last line without its newline is still a line.
  finish() {
    const events = [];
    if (this.rest) this.line(this.rest, events);
    this.rest = "";
    return events;
  }

  line(line, events) {
    if (!line.trim()) return;
    let value;
    try {
      value = JSON.parse(line);
    } catch (e) {
      this.bad += 1;
      return;
    }
    if (Array.isArray(value)) {
      const [interval, code, data] = value;
      if (this.header === null || typeof interval !== "number" || typeof code !== "string") {
        this.bad += 1;
        return;
      }
      this.micros += Math.max(0, Math.round(interval * 1e6));
      events.push({ t: this.micros, code, data: typeof data === "string" ? data : String(data ?? "") });
    } else if (value !== null && typeof value === "object" && this.header === null) {
      if (value.version !== 3) this.error = `not asciicast version 3 (version ${value.version})`;
      this.header = value;
    } else {
      this.bad += 1;
    }
  }
}

// "100x30" → [100, 30].
export function parseSize(data) {
  const m = /^(\d+)x(\d+)$/.exec(data);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

// ---- The clock: a position in the recording, in microseconds, moving at its speed -----------

export class Clock {
  constructor(now) {
    this.base = 0;
    this.wall = now;
    this.speed = 1;
    this.running = false;
  }

  at(now) {
    return this.running ? this.base + Math.max(0, now - this.wall) * 1000 * this.speed : this.base;
  }

  set(position, now) {
    this.base = position;
    this.wall = now;
  }

  play(now) {
    if (this.running) return;
    this.wall = now;
    this.running = true;
  }

  pause(now) {
    if (!this.running) return;
    this.base = this.at(now);
    this.running = false;
  }

  setSpeed(speed, now) {
    this.base = this.at(now);
    this.wall = now;
    this.speed = speed;
  }
}

// ---- Playback: the stream, the events waiting, and what the terminal has been given ---------

// `term` is anything with write(text, done), resize(cols, rows) and reset(): xterm.js, or a
// test's fake. `env` replaces the clock, the timers and WebSocket, for tests.
export class Playback {
  constructor({ id, entry = null, follow = false, live = false, term, base, env = {}, onChange = () => {} }) {
    this.id = id;
    this.follow = follow;
    this.live = live && follow;
    this.term = term;
    this.base = base;
    this.env = {
      now: () => performance.now(),
      setTimeout: (f, ms) => setTimeout(f, ms),
      clearTimeout: (t) => clearTimeout(t),
      WebSocket: globalThis.WebSocket,
      ...env,
    };
    this.onChange = onChange;
    this.clock = new Clock(this.env.now());
    this.entry = entry; // as the relay last described it
    this.header = null;
    this.error = "";
    this.disposed = false;
    this.timer = null;
    // The stream: idle, open, suspended (closed here, to be opened again), done, failed.
    this.ws = null;
    this.stream = "idle";
    this.offset = 0; // bytes of the .cast read: where the next message starts
    this.skip = 0; // bytes the relay sends again (it starts at a chunk) before new ones
    this.headSeen = false;
    // Events read and not yet shown.
    this.queue = [];
    this.next = 0;
    this.queued = 0;
    this.lastT = 0; // time of the last event read
    this.shownT = 0; // ... and shown
    this.end = null; // of the recording, once read to its end
    this.atEnd = false;
    this.buffering = false;
    this.writing = false; // a batch is with xterm.js
    this.resetting = false;
    this.parser = new CastParser();
    this.size = null;
    this.exit = null;
    this.notes = [];
    this.inputs = 0;
    // What tests and the curious read.
    this.opens = 0;
    this.suspends = 0;
    this.bytesRead = 0;
    this.maxQueued = 0;
    this.written = 0;
  }

  start({ paused = false } = {}) {
    if (!paused) this.clock.play(this.env.now());
    this.open();
  }

  dispose() {
    this.disposed = true;
    this.closeStream();
    if (this.timer !== null) this.env.clearTimeout(this.timer);
    this.timer = null;
  }

  // ---- the stream ----

  open() {
    const query = `from=${this.offset}${this.follow ? "&follow=1" : ""}`;
    const ws = new this.env.WebSocket(`${this.base}/v1/recordings/${encodeURIComponent(this.id)}?${query}`, SUBPROTOCOL);
    this.ws = ws;
    this.stream = "open";
    this.headSeen = false;
    this.opens += 1;
    ws.onmessage = (event) => {
      if (ws === this.ws && !this.disposed) this.received(event.data);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws || this.disposed) return;
      this.ws = null;
      this.closed(event);
    };
  }

  closeStream() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }

  received(text) {
    if (typeof text !== "string") return;
    if (!this.headSeen) {
      this.headSeen = true;
      let head;
      try {
        head = JSON.parse(text);
      } catch (e) {
        return this.fail("the relay's answer is not JSON");
      }
      this.entry = head.recording || this.entry;
      // The relay starts at the chunk that holds the byte asked for: always one this page
      // stopped at, but what it sends again is skipped all the same.
      const from = Number(head.from) || 0;
      this.skip = Math.max(0, this.offset - from);
      this.offset = Math.min(this.offset, from);
      if (this.entry && this.entry.mode !== "full") {
        this.stream = "done";
        this.closeStream();
      }
      return this.pump();
    }
    const bytes = utf8Length(text);
    this.offset += bytes;
    this.bytesRead += bytes;
    if (this.skip >= bytes) {
      this.skip -= bytes;
      return;
    }
    this.skip = 0;
    const hadHeader = this.parser.header !== null;
    this.take(this.parser.push(text), hadHeader);
    if (this.queued > HIGH_WATER && this.stream === "open") {
      this.suspends += 1;
      this.stream = "suspended";
      this.closeStream();
    }
    this.pump();
  }

  take(events, hadHeader) {
    if (!hadHeader && this.parser.header !== null) {
      this.header = this.parser.header;
      if (this.parser.error) return this.fail(this.parser.error);
      const term = this.header.term || {};
      // The terminal's first size, in order with the output, as a resize at time 0.
      if (term.cols && term.rows) events.unshift({ t: 0, code: "r", data: `${term.cols}x${term.rows}` });
    }
    for (const event of events) {
      this.queue.push(event);
      this.queued += event.data.length + EVENT_COST;
      this.lastT = Math.max(this.lastT, event.t);
    }
    this.maxQueued = Math.max(this.maxQueued, this.queued);
  }

  closed(event) {
    if (!this.headSeen) {
      return this.fail(`the relay refused recording ${this.id} (close ${event.code}): may you still read it, and is your login still valid?`);
    }
    if (this.stream === "done") return this.pump();
    if (event.code === 1000 || event.code === 1005) {
      this.take(this.parser.finish(), true);
      this.stream = "done";
      this.end = this.lastT;
      // A session watched live ended: the clock is where the screen is, at its end.
      if (this.live) this.clock.set(this.lastT, this.env.now());
      this.live = false;
      return this.pump();
    }
    const why = event.reason ? `: ${event.reason}` : "";
    this.fail(`the recording's stream broke (close ${event.code}${why})`);
  }

  fail(message) {
    this.error = message;
    this.stream = "failed";
    this.closeStream();
    this.pump();
  }

  finished() {
    return this.stream === "done" || this.stream === "failed";
  }

  // ---- the clock ----

  // Where the screen should be, in microseconds. It never runs past the events read while more
  // are to come: it waits for them (buffering) rather than skip what it has not seen.
  position(now) {
    if (this.live) return this.clock.running ? Infinity : -1;
    let pos = this.clock.at(now);
    this.buffering = false;
    if (!this.finished()) {
      const most = Math.max(this.clock.base, this.lastT);
      if (pos > most) {
        this.clock.set(most, now);
        pos = most;
        this.buffering = this.clock.running;
      }
    } else if (this.end !== null && pos > this.end) {
      this.clock.set(this.end, now);
      pos = this.end;
    }
    return pos;
  }

  duration() {
    if (this.end !== null) return this.end;
    const e = this.entry;
    const told = e && e.ended !== null && e.ended !== undefined ? Math.max(0, (e.ended - e.started) * 1e6) : 0;
    return Math.max(this.lastT, told);
  }

  // ---- showing ----

  pump() {
    if (this.disposed || this.writing) return;
    if (this.resetting) this.restart();
    const now = this.env.now();
    const pos = this.position(now);
    let out = "";
    while (this.next < this.queue.length) {
      const event = this.queue[this.next];
      if (event.t > pos) break;
      // A resize takes effect at once in xterm.js: the output before it is parsed first.
      if (event.code === "r" && out) break;
      this.next += 1;
      this.queued -= event.data.length + EVENT_COST;
      this.shownT = event.t;
      if (event.code === "o") {
        out += event.data;
        if (out.length >= WRITE_BATCH) break;
      } else if (event.code === "r") {
        const size = parseSize(event.data);
        if (size) {
          this.size = size;
          this.term.resize(size[0], size[1]);
        }
      } else if (event.code === "x") {
        this.exit = event.data;
      } else if (event.code === "m") {
        this.notes.push({ t: event.t, text: event.data });
      } else if (event.code === "i") {
        this.inputs += 1; // what was typed: its echo, if any, is output
      }
    }
    if (this.next > 4096 && this.next * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.next);
      this.next = 0;
    }
    if (out) {
      this.writing = true;
      this.term.write(out, () => {
        this.writing = false;
        this.written += out.length;
        this.pump();
      });
    }
    if (this.stream === "suspended" && this.queued < LOW_WATER) this.open();
    const drained = this.next === this.queue.length && !this.writing;
    if (this.finished() && drained && this.stream === "done" && pos >= (this.end ?? 0) && !this.live) {
      this.atEnd = true;
      this.clock.pause(now);
    }
    this.schedule(pos);
    this.onChange(this);
  }

  schedule(pos) {
    if (this.timer !== null) this.env.clearTimeout(this.timer);
    this.timer = null;
    // A batch with xterm.js pumps again when parsed; a paused or live player when data comes.
    if (this.disposed || this.writing || !this.clock.running || this.live || this.atEnd) return;
    let wait = TICK_MS;
    if (this.next < this.queue.length) {
      const ahead = (this.queue[this.next].t - pos) / 1000 / this.clock.speed;
      wait = Math.min(TICK_MS, Math.max(0, ahead));
    }
    this.timer = this.env.setTimeout(() => {
      this.timer = null;
      this.pump();
    }, wait);
  }

  // The terminal back to its start, and the recording read again from its first byte.
  restart() {
    this.resetting = false;
    this.term.reset();
    this.parser = new CastParser();
    this.offset = 0;
    this.lastT = 0;
    this.shownT = 0;
    this.end = null;
    this.exit = null;
    this.notes = [];
    this.inputs = 0;
    this.size = null;
    this.error = "";
    this.open();
  }

  // ---- controls ----

  play() {
    const now = this.env.now();
    if (this.atEnd) this.seek(0);
    this.clock.play(now);
    this.pump();
  }

  pause() {
    this.clock.pause(this.env.now());
    this.pump();
  }

  setSpeed(speed) {
    this.clock.setSpeed(speed, this.env.now());
    this.pump();
  }

  // To `seconds` into the recording: forward, what lies between is shown at once as it
  // arrives; backward, the terminal is reset and the recording replayed from its start.
  seek(seconds) {
    if (this.entry && this.entry.mode !== "full") return;
    const now = this.env.now();
    const target = Math.max(0, Math.round(seconds * 1e6));
    const wasLive = this.live;
    this.live = false;
    this.atEnd = false;
    this.clock.set(target, now);
    if (target < this.shownT || (wasLive && this.stream === "failed")) {
      this.closeStream();
      this.stream = "idle";
      this.queue = [];
      this.next = 0;
      this.queued = 0;
      this.resetting = true;
    } else if (this.stream === "failed") {
      // Forward from where a broken stream stopped: read on from there.
      this.error = "";
      this.open();
    }
    this.pump();
  }

  // Back to the session as it happens: everything read is shown at once, and what comes next
  // as it comes.
  goLive() {
    if (!this.follow || this.stream === "done") return;
    this.live = true;
    this.atEnd = false;
    this.clock.play(this.env.now());
    this.pump();
  }

  status() {
    if (this.error) return "failed";
    if (this.entry && this.entry.mode !== "full") return "metadata";
    if (!this.header) return "loading";
    if (this.atEnd) return "ended";
    if (!this.clock.running) return "paused";
    if (this.live) return "live";
    if (this.buffering) return "buffering";
    return "playing";
  }

  state() {
    const now = this.env.now();
    const position = this.live ? this.shownT : Math.min(this.position(now), this.duration());
    return {
      id: this.id,
      status: this.status(),
      error: this.error,
      live: this.live,
      follow: this.follow,
      paused: !this.clock.running,
      speed: this.clock.speed,
      position: position / 1e6,
      duration: this.duration() / 1e6,
      shown: this.shownT / 1e6,
      loaded: this.lastT / 1e6,
      stream: this.stream,
      finished: this.finished(),
      exit: this.exit,
      notes: this.notes.map((n) => n.text),
      size: this.size,
      offset: this.offset,
      bytesRead: this.bytesRead,
      opens: this.opens,
      suspends: this.suspends,
      queued: this.queued,
      maxQueued: this.maxQueued,
      written: this.written,
      inputs: this.inputs,
    };
  }
}

// ---- Words ----------------------------------------------------------------------------------

// 75 → "1:15", 3725 → "1:02:05".
export function clockTime(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

// "12 B", "3.0 MiB", "640 KiB": the recordings' sizes, and the file panel's.
export function bytesInWords(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

// Unix seconds as the local date and time: "2026-01-01 12:00:05".
function dateTime(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "—";
  const d = new Date(unixSeconds * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function lasted(entry) {
  if (entry.ended === null || entry.ended === undefined) return null;
  return Math.max(0, entry.ended - entry.started);
}

// An `x` event's data, or an audit record's exit, in words.
export function exitWords(exit) {
  if (exit === null || exit === undefined) return null;
  if (typeof exit === "object") {
    if (exit.signal !== undefined) return `killed by signal ${exit.signal}${exit.core_dumped ? " (core dumped)" : ""}`;
    return `exited with code ${exit.code}`;
  }
  return `exited with code ${exit}`;
}

// What an entry says, as [term, value] pairs: all there is of a metadata entry.
function facts(entry) {
  const rows = [
    ["Session", entry.id],
    ["User", entry.user],
    ["Instance", entry.instance],
    ["Account", entry.account],
    ["Kind", entry.kind],
    ["Recorded", entry.mode === "full" ? (entry.input ? "output and input" : "output") : "metadata only"],
    ["Started", dateTime(entry.started)],
    ["Ended", entry.ended === null || entry.ended === undefined ? "running" : dateTime(entry.ended)],
  ];
  const took = lasted(entry);
  if (took !== null) rows.push(["Duration", `${clockTime(took)} (${took.toFixed(1)} s)`]);
  if (entry.mode === "full") {
    rows.push(["Size", entry.ended === null ? "still growing" : bytesInWords(entry.size)]);
    if (entry.chunks !== null && entry.chunks !== undefined) rows.push(["Chunks", String(entry.chunks)]);
  }
  if (entry.unrecorded) rows.push(["Not recorded", bytesInWords(entry.unrecorded)]);
  const s = entry.session;
  if (s) {
    rows.push(["To the instance", bytesInWords(s.bytes_to_instance)]);
    rows.push(["From the instance", bytesInWords(s.bytes_from_instance)]);
    if (s.exit) rows.push(["Exit", exitWords(s.exit)]);
    if (s.file_outcome) rows.push(["File", s.file_outcome]);
    if (s.file_size !== null && s.file_size !== undefined) rows.push(["File size", bytesInWords(s.file_size)]);
    if (s.file_sha256) rows.push(["File SHA-256", s.file_sha256]);
    if (s.reason) rows.push(["Reason", s.reason]);
  }
  return rows;
}

// ---- The page ---------------------------------------------------------------------------------

const PLAYER = `
  <div class="player-bar">
    <button class="player-back" type="button">← Recordings</button>
    <span class="player-title"></span>
    <span class="player-status"></span>
  </div>
  <div class="player-body">
    <div class="player-screen"><div class="player-host"></div></div>
    <aside class="player-facts"><dl></dl></aside>
  </div>
  <div class="player-controls">
    <button class="player-toggle" type="button">Pause</button>
    <span class="player-time">0:00 / 0:00</span>
    <input class="player-seek" type="range" min="0" max="0" step="any" value="0" aria-label="position">
    <span class="player-speeds" role="group" aria-label="speed"></span>
    <button class="player-live" type="button" hidden>Live</button>
  </div>
  <ul class="player-notes"></ul>`;

// The Recordings tab: its list, and the player of one recording at a time.
export class RecordingsView {
  // `ask(path)`: one JSON answer of the relay (console.js); `select(name)`: shows a tab;
  // `loggedOut()`: the login ended.
  constructor({ ask, select, loggedOut }) {
    this.ask = ask;
    this.loggedOut = loggedOut;
    this.page = document.querySelector("#recordings-page");
    this.list = document.querySelector("#recordings-list");
    this.entries = [];
    this.loaded = false;
    this.timer = null;
    this.shown = false;
    this.player = null;
    this.asked = 0;
    this.base = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

    const tab = document.querySelector('#tabs .tab[data-tab="recordings"]');
    if (tab) tab.addEventListener("click", () => select("recordings"));
    document.querySelector("#recordings-filter").addEventListener("input", () => this.render());
    document.querySelector("#recordings-refresh").addEventListener("click", () => this.refresh());

    const view = this;
    // What end-to-end tests and curious operators can read from the devtools console.
    window.sessionPlayer = {
      list: () => view.entries.map((e) => ({ id: e.id, user: e.user, instance: e.instance, kind: e.kind, mode: e.mode, ended: e.ended, size: e.size })),
      rows: () => [...document.querySelectorAll("#recordings tbody tr")].map((r) => r.dataset.recording),
      loaded: () => view.loaded,
      open: (id, options) => view.openId(id, options),
      state: () => (view.player ? view.player.playback.state() : null),
      text: () => (view.player ? view.player.text() : ""),
      facts: () => (view.player ? view.player.factsShown() : []),
      readOnly: () => Boolean(view.player && view.player.term && view.player.term.options.disableStdin),
      play: () => view.player.playback.play(),
      pause: () => view.player.playback.pause(),
      seek: (seconds) => view.player.playback.seek(seconds),
    };
  }

  // console.js's tabs: shown when `name` is "recordings", hidden for any other.
  select(name) {
    const show = name === "recordings";
    this.page.hidden = !show;
    if (show && !this.shown) {
      this.refresh();
      this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    } else if (!show && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
    this.shown = show;
  }

  // Logged out: nothing of the last user's stays.
  reset() {
    this.select(null);
    this.close();
    this.entries = [];
    this.loaded = false;
    this.render();
  }

  async refresh() {
    const asked = ++this.asked;
    const error = document.querySelector("#recordings-error");
    try {
      const answer = await this.ask("/v1/recordings");
      if (asked !== this.asked) return;
      this.entries = answer.recordings || [];
      this.loaded = true;
      error.textContent = "";
      document.querySelector("#recordings-refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (asked !== this.asked) return;
      if (e.message === "LOGGED_OUT") return this.loggedOut();
      error.textContent = `Could not list recordings: ${e.message}`;
    }
    this.render();
    if (this.player) {
      const entry = this.entries.find((e) => e.id === this.player.entry.id);
      if (entry) this.player.describe(entry);
    }
  }

  render() {
    const filter = document.querySelector("#recordings-filter").value.trim().toLowerCase();
    const body = document.querySelector("#recordings tbody");
    body.replaceChildren();
    const shown = this.entries.filter((e) => {
      const words = [e.id, e.user, e.instance, e.account, e.kind];
      return !filter || words.some((w) => String(w).toLowerCase().includes(filter));
    });
    for (const entry of shown) {
      const row = body.insertRow();
      row.dataset.recording = entry.id;
      const running = entry.ended === null || entry.ended === undefined;
      const cell = (className, text) => {
        const td = row.insertCell();
        td.className = className;
        if (text !== undefined) td.textContent = text;
        return td;
      };
      const started = cell("started", dateTime(entry.started));
      started.title = entry.id;
      cell("user", entry.user);
      cell("instance", entry.instance);
      cell("kind", entry.kind);
      const mode = cell("mode");
      const badge = document.createElement("span");
      badge.className = `badge ${running ? "running" : entry.mode}`;
      badge.textContent = running ? (entry.mode === "full" ? "live" : "running") : entry.mode === "full" ? "full" : "metadata";
      mode.append(badge);
      const took = lasted(entry);
      cell("duration", took === null ? "running" : clockTime(took));
      cell("size", entry.mode === "full" && !running ? bytesInWords(entry.size) : "—");
      const action = cell("action");
      const button = (className, text, options) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = className;
        b.textContent = text;
        b.addEventListener("click", () => this.open(entry, options));
        action.append(b);
      };
      if (entry.mode !== "full") {
        button("details", "Details", {});
      } else {
        if (running) button("watch", "Watch", { live: true });
        button("play", "Play", {});
      }
    }
    document.querySelector("#recordings-empty").hidden = !this.loaded || this.entries.length !== 0;
  }

  openId(id, options = {}) {
    const entry = this.entries.find((e) => e.id === id);
    if (!entry) return false;
    this.open(entry, options);
    return true;
  }

  open(entry, options) {
    this.close();
    this.list.hidden = true;
    this.player = new PlayerView(this, entry, options, this.base);
  }

  // Back to the list.
  close() {
    if (this.player) this.player.dispose();
    this.player = null;
    this.list.hidden = false;
  }
}

// One recording on screen: its terminal, its controls and its facts.
class PlayerView {
  constructor(view, entry, { live = false, paused = false, speed = 1 } = {}, base) {
    this.view = view;
    this.entry = entry;
    this.element = document.querySelector("#player");
    this.element.innerHTML = PLAYER;
    this.element.hidden = false;
    this.element.dataset.recording = entry.id;
    this.dragging = false;
    const $$ = (selector) => this.element.querySelector(selector);
    this.$$ = $$;
    $$(".player-title").textContent = `${entry.user} on ${entry.instance}: ${entry.kind}`;
    $$(".player-title").title = entry.id;
    $$(".player-back").addEventListener("click", () => view.close());
    this.describe(entry);

    this.term = null;
    const full = entry.mode === "full";
    this.element.classList.toggle("metadata", !full);
    if (full) {
      this.term = new Terminal({
        allowProposedApi: true, // the Unicode 11 widths
        disableStdin: true, // read-only: nothing typed here goes anywhere
        cursorBlink: false,
        scrollback: 5000,
        fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
        fontSize: 14,
      });
      this.term.loadAddon(new Unicode11Addon.Unicode11Addon());
      this.term.unicode.activeVersion = "11";
      this.term.open($$(".player-host"));
    }
    const running = entry.ended === null || entry.ended === undefined;
    this.playback = new Playback({
      id: entry.id,
      entry,
      follow: full && running,
      live: live && running,
      term: this.term || { write: (text, done) => done(), resize() {}, reset() {} },
      base,
      onChange: () => this.render(),
    });
    if (full) this.playback.clock.speed = SPEEDS.includes(speed) ? speed : 1;

    for (const speedOption of SPEEDS) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "player-speed";
      b.dataset.speed = String(speedOption);
      b.textContent = `${speedOption}×`;
      b.addEventListener("click", () => this.playback.setSpeed(speedOption));
      $$(".player-speeds").append(b);
    }
    $$(".player-toggle").addEventListener("click", () => this.toggle());
    $$(".player-live").addEventListener("click", () => this.playback.goLive());
    const seek = $$(".player-seek");
    seek.addEventListener("input", () => {
      this.dragging = true;
      $$(".player-time").textContent = `${clockTime(Number(seek.value))} / ${clockTime(Number(seek.max))}`;
    });
    seek.addEventListener("change", () => {
      this.dragging = false;
      this.playback.seek(Number(seek.value));
    });
    this.element.addEventListener("keydown", (event) => {
      if (event.key === " " && event.target.tagName !== "INPUT" && event.target.tagName !== "BUTTON") {
        event.preventDefault();
        this.toggle();
      }
    });
    this.playback.start({ paused });
    this.render();
  }

  toggle() {
    const p = this.playback;
    if (p.clock.running && !p.atEnd) p.pause();
    else p.play();
  }

  // The facts beside the screen, from the entry as last listed or described.
  describe(entry) {
    this.entry = entry;
    const list = this.$$(".player-facts dl");
    list.replaceChildren();
    for (const [term, value] of facts(entry)) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
  }

  factsShown() {
    return [...this.element.querySelectorAll(".player-facts dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent]);
  }

  render() {
    const p = this.playback;
    if (!p) return;
    const $$ = this.$$;
    if (p.entry && p.entry !== this.described) {
      this.described = p.entry;
      this.describe(p.entry);
    }
    const state = p.state();
    const status = $$(".player-status");
    let words = state.status;
    if (state.status === "failed") words = `failed: ${state.error}`;
    else if (state.status === "ended" && state.exit !== null) {
      // The audit record's exit tells a signal from a code; the recording's `x` does not.
      const told = this.entry.session && this.entry.session.exit;
      words = `ended: ${exitWords(told || state.exit)}`;
    }
    else if (state.status === "metadata") words = "metadata only: what moved, not the bytes";
    status.textContent = words;
    status.dataset.status = state.status;
    this.element.dataset.status = state.status;
    const toggle = $$(".player-toggle");
    toggle.textContent = state.status === "ended" ? "Replay" : state.paused ? "Play" : "Pause";
    toggle.disabled = state.status === "metadata";
    const seek = $$(".player-seek");
    seek.max = String(state.duration);
    seek.disabled = state.status === "metadata";
    if (!this.dragging) {
      seek.value = String(state.position);
      $$(".player-time").textContent = `${clockTime(state.position)} / ${state.finished || !state.follow ? "" : "≥ "}${clockTime(state.duration)}`;
    }
    for (const b of this.element.querySelectorAll(".player-speed")) {
      const active = Number(b.dataset.speed) === state.speed;
      b.classList.toggle("active", active);
      b.setAttribute("aria-pressed", String(active));
      b.disabled = state.status === "metadata";
    }
    const live = $$(".player-live");
    live.hidden = !state.follow || state.finished;
    live.classList.toggle("active", state.live);
    const notes = $$(".player-notes");
    if (notes.childElementCount !== p.notes.length) {
      notes.replaceChildren();
      for (const note of p.notes) {
        const li = document.createElement("li");
        li.textContent = `${clockTime(note.t / 1e6)} ${note.text}`;
        notes.append(li);
      }
    }
  }

  // The text of the terminal's active buffer, lines trimmed of trailing blanks, a line the
  // terminal wrapped joined to the one it continues.
  text() {
    if (!this.term) return "";
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i);
      if (line.isWrapped && lines.length) lines[lines.length - 1] += line.translateToString(true);
      else lines.push(line.translateToString(true));
    }
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  }

  dispose() {
    this.playback.dispose();
    if (this.term) this.term.dispose();
    this.element.replaceChildren();
    this.element.hidden = true;
    delete this.element.dataset.recording;
  }
}
