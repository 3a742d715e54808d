// A shell on an instance in xterm.js: one `/v1/client/<instance>` WebSocket, the protocol in
// wasm (session-wasm), the login shell's channel, re-attaching when the connection drops. The
// console's tabs (console.js) and its grid's terminals (grid.js) are each one, with their own
// header around it.
//
// Flow control ends at the screen: a channel's output is granted back to the relay only once
// xterm.js has parsed it (its write callback), so what the page holds stays under the window
// the Session announces, whatever the output rate.

import init, { Session } from "/console/wasm/session_wasm.js";

export const SUBPROTOCOL = "session-proto.v1";
export const WS_BASE = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
// Re-attach attempts after a lost connection: quick at first, then every few seconds, for as
// long as the relay keeps the session (it says RESUME_REJECTED once it has given up).
const RETRY_MS = [250, 500, 1000, 2000, 4000];
export const encoder = new TextEncoder();

// The login's user, or null when there is none.
export async function whoAmI() {
  const response = await fetch("/console/api/me", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  return (await response.json()).user;
}

// One request to a JSON endpoint (spec 11.4), over WebSocket as for the CLI: the relay answers
// with one text message and closes. A refused upgrade is only a close to a page (browsers hide
// the status), so the login is checked to say why.
export function ask(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(WS_BASE + path, SUBPROTOCOL);
    let answered = false;
    ws.onmessage = (event) => {
      answered = true;
      try {
        resolve(JSON.parse(event.data));
      } catch (e) {
        reject(e);
      }
      ws.close();
    };
    ws.onclose = async () => {
      if (answered) return;
      const who = await whoAmI().catch(() => null);
      reject(new Error(who ? `the relay refused ${path}` : "LOGGED_OUT"));
    };
  });
}

let wasmReady = null;

// The wasm module, loaded once, when the first shell is opened.
export function loadWasm() {
  wasmReady = wasmReady || init();
  return wasmReady;
}

// Every shell not yet disposed: the relay's listing of sessions tells them apart.
const shells = new Set();

// The connection and the terminal. Whoever shows it extends it: it builds its element, calls
// `mount` with where the terminal goes, then `connect`; and it may define `shown()` (whether
// the terminal is on screen, to be fitted), `onState(state)`, `onAccepted()` and `onEnded()`.
export class Shell {
  // options: `env`, variables for the shell's Open ({NAME: "value"}); `fontSize`;
  // `clickedAt`, when the person asked for it (performance.now()).
  constructor(instance, options = {}) {
    this.instance = instance;
    this.env = options.env || null;
    this.sessionId = null;
    this.state = "connecting";
    this.channel = null;
    this.ws = null;
    this.retry = 0;
    this.ended = false;
    this.pendingBytes = 0; // handed to xterm.js, not yet parsed by it
    this.maxPending = 0;
    this.rendered = 0; // output bytes xterm.js has parsed
    this.timings = { clicked: options.clickedAt === undefined ? performance.now() : options.clickedAt };
    this.timer = null;

    this.term = new Terminal({
      allowProposedApi: true, // the Unicode 11 widths
      cursorBlink: true,
      scrollback: 5000,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
      fontSize: options.fontSize || 14,
    });
    this.fit = new FitAddon.FitAddon();
    this.term.loadAddon(this.fit);
    this.term.loadAddon(new Unicode11Addon.Unicode11Addon());
    this.term.unicode.activeVersion = "11";
    this.session = new Session(performance.now());
    shells.add(this);
  }

  // Opens the terminal in `host`, whose size the layout alone sets, and follows that size.
  mount(host) {
    this.term.open(host);
    this.fit.fit();
    new ResizeObserver(() => {
      if (this.shown()) this.fit.fit();
    }).observe(host);
    this.term.onData((text) => this.input(encoder.encode(text)));
    // Mouse reports and the like: one byte per character code.
    this.term.onBinary((text) => this.input(Uint8Array.from(text, (c) => c.charCodeAt(0))));
    this.term.onResize(({ cols, rows }) => {
      if (this.channel !== null && !this.ended) {
        this.session.resize(this.channel, cols, rows);
        this.flush();
      }
    });
  }

  shown() {
    return true;
  }

  onState() {}

  onAccepted() {}

  onEnded() {}

  setState(state) {
    this.state = state;
    this.onState(state);
  }

  connect() {
    this.setState(this.channel === null ? "connecting" : "reconnecting");
    const ws = new WebSocket(`${WS_BASE}/v1/client/${encodeURIComponent(this.instance)}`, SUBPROTOCOL);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.timings.opened = this.timings.opened || performance.now();
      if (this.channel !== null) this.session.reattach(performance.now());
      this.flush();
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.session.receive(new Uint8Array(event.data), performance.now());
      this.pump();
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.lost(event);
    };
  }

  // The connection dropped: the session is kept at the relay, and this side re-attaches.
  lost(event) {
    if (this.ended) return;
    this.session.detach();
    this.pump();
    if (this.ended) return;
    if (!this.session.isResumable() || this.session.isEnded()) {
      // A refused upgrade reaches a page as a bare close: the status is hidden from scripts.
      const why = this.timings.accepted === undefined
        ? `the relay refused the connection (close ${event.code}): is the instance online, and may you start sessions on it?`
        : "the connection to the relay was lost, and the session cannot be resumed";
      this.end(why);
      return;
    }
    const wait = RETRY_MS[Math.min(this.retry, RETRY_MS.length - 1)];
    this.retry += 1;
    this.setState(`reconnecting (attempt ${this.retry})`);
    setTimeout(() => this.connect(), wait);
  }

  // Everything the Session has to say, then everything it has to send.
  pump() {
    let event;
    while ((event = this.session.pollEvent()) !== undefined) this.on(event);
    this.flush();
  }

  flush() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      let message;
      while ((message = this.session.pollTransmit()) !== undefined) this.ws.send(message);
    }
    this.arm();
  }

  // Keepalive: the Session says when it next needs the time.
  arm() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const due = this.session.pollTimeout();
    if (due === undefined || this.ended) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.session.handleTimeout(performance.now());
      this.pump();
    }, Math.max(0, due - performance.now()));
  }

  on(event) {
    switch (event.type) {
      case "connected": {
        const { cols, rows } = this.term;
        try {
          this.channel = this.session.openShell("xterm-256color", cols, rows, this.env);
        } catch (e) {
          this.end(`could not open a shell: ${e.message}`);
        }
        break;
      }
      case "resumed":
        this.retry = 0;
        this.setState("connected");
        break;
      case "accepted":
        this.timings.accepted = performance.now();
        this.retry = 0;
        this.setState("connected");
        this.onAccepted();
        break;
      case "refused":
        this.end(`refused: ${event.message || event.reason}`);
        break;
      case "data": {
        if (this.timings.firstOutput === undefined) this.timings.firstOutput = performance.now();
        const bytes = event.bytes;
        const channel = event.channel;
        this.pendingBytes += bytes.length;
        this.maxPending = Math.max(this.maxPending, this.pendingBytes);
        // Raw bytes: xterm.js decodes UTF-8 itself, across message boundaries.
        this.term.write(bytes, () => {
          this.pendingBytes -= bytes.length;
          this.rendered += bytes.length;
          if (this.ended) return;
          this.session.consume(channel, bytes.length);
          this.flush();
        });
        break;
      }
      case "exit": {
        const how = event.signal ? `killed by signal ${event.signal}` : `exited with code ${event.code}`;
        this.notice(`[process ${how}]`);
        break;
      }
      case "reason":
        this.notice(`[${event.message}]`);
        break;
      case "closed":
        this.end("session ended");
        break;
      case "goaway":
        if (event.message) this.notice(`[relay: ${event.message}]`);
        break;
      case "ended":
        this.end(event.message);
        break;
      case "detached":
        // The relay fell silent past the keepalive: this socket is dead, the session is not.
        if (this.ws) {
          const ws = this.ws;
          this.ws = null;
          ws.close();
          this.lost({ code: 1006 });
        }
        break;
      default:
        break;
    }
  }

  // Bytes for the shell's stdin; false when they were not taken.
  input(bytes) {
    if (this.channel === null || this.ended) return false;
    this.timings.lastInput = performance.now();
    const taken = this.session.write(this.channel, bytes);
    if (!taken) this.notice("[input dropped: too much typed ahead]");
    this.flush();
    return taken;
  }

  notice(text) {
    this.term.write(`\r\n\x1b[2m${text}\x1b[0m\r\n`);
  }

  end(message) {
    if (this.ended) return;
    this.ended = true;
    this.setState("ended");
    this.onEnded();
    if (message) this.notice(`[${message}]`);
    // A GoAway the Session queued goes before the socket closes.
    this.flush();
    if (this.ws) this.ws.close();
    if (this.timer !== null) clearTimeout(this.timer);
  }

  // The relay names sessions in its listing (11.4); this shell's is the newest shell on its
  // instance that no other shell of the page shows.
  async findSessionId() {
    try {
      const { sessions } = await ask("/v1/sessions");
      const taken = new Set([...shells].map((s) => s.sessionId));
      const mine = sessions
        .filter((s) => s.instance === this.instance && s.kind === "shell" && !taken.has(s.id))
        .sort((a, b) => b.started - a.started)[0];
      if (mine) this.sessionId = mine.id;
    } catch (e) {
      // Left unknown; asked again when it is needed.
    }
    return this.sessionId;
  }

  // Closes the channel, ends the connection and frees the terminal.
  dispose() {
    if (!this.ended && this.channel !== null) {
      this.session.close(this.channel);
      this.flush();
    }
    this.end();
    this.term.dispose();
    shells.delete(this);
  }

  // The text of the terminal's active buffer, lines trimmed of trailing blanks.
  text() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  }
}
