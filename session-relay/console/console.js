// The browser console. The protocol is session-proto itself, compiled to WebAssembly
// (session-wasm): this file only moves bytes between it, the relay's WebSocket and xterm.js.
//
// Flow control ends at the screen: a channel's output is granted back to the relay only once
// xterm.js has parsed it (its write callback), so what the page holds stays under the window
// the Session announces, whatever the output rate.

import init, { Session } from "/console/wasm/session_wasm.js";

const SUBPROTOCOL = "session-proto.v1";
const WS_BASE = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
const REFRESH_MS = 3000;
// Re-attach attempts after a lost connection: quick at first, then every few seconds, for as
// long as the relay keeps the session (it says RESUME_REJECTED once it has given up).
const RETRY_MS = [250, 500, 1000, 2000, 4000];
const encoder = new TextEncoder();

const $ = (selector) => document.querySelector(selector);

// ---- Logging in ----------------------------------------------------------------------------

// The login's user, or null when there is none.
async function whoAmI() {
  const response = await fetch("/console/api/me", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  return (await response.json()).user;
}

async function logIn(token) {
  const response = await fetch("/console/api/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showLogin(message) {
  stopRefreshing();
  for (const tab of [...tabs]) tab.dispose();
  $("#bar").hidden = true;
  $("#instances-page").hidden = true;
  $("#login-page").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

function showApp(who) {
  $("#login-page").hidden = true;
  $("#bar").hidden = false;
  $("#user").textContent = who.user;
  select("instances");
  startRefreshing();
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#token");
  $("#login-error").textContent = "";
  try {
    const who = await logIn(input.value.trim());
    input.value = "";
    showApp(who);
  } catch (e) {
    $("#login-error").textContent = `Login refused: ${e.message}`;
  }
});

$("#logout").addEventListener("click", async () => {
  await fetch("/console/api/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  showLogin("Logged out.");
});

// ---- The JSON endpoints (spec 11.4), over WebSocket as for the CLI ---------------------------

// One request: the relay answers with one text message and closes. A refused upgrade is only
// a close to a page (browsers hide the status), so the login is checked to say why.
function ask(path) {
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

// ---- Instances ------------------------------------------------------------------------------

let refreshTimer = null;
let lastInstances = [];

function startRefreshing() {
  stopRefreshing();
  refresh();
  refreshTimer = setInterval(refresh, REFRESH_MS);
}

function stopRefreshing() {
  if (refreshTimer !== null) clearInterval(refreshTimer);
  refreshTimer = null;
}

async function refresh() {
  try {
    const answer = await ask("/v1/instances");
    lastInstances = answer.instances;
    renderInstances();
    $("#instances-error").textContent = "";
    $("#refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e.message === "LOGGED_OUT") return showLogin("Your login ended: log in again.");
    $("#instances-error").textContent = `Could not list instances: ${e.message}`;
  }
}

// "12 s ago", "5 min ago", "3 h ago", "2 days ago".
function ago(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const days = Math.floor(s / 86400);
  return days === 1 ? "1 day ago" : `${days} days ago`;
}

function cell(row, className, text) {
  const td = row.insertCell();
  td.className = className;
  if (text !== undefined) td.textContent = text;
  return td;
}

function renderInstances() {
  const filter = $("#filter").value.trim().toLowerCase();
  const body = $("#instances tbody");
  body.replaceChildren();
  const shown = lastInstances.filter((i) => {
    const words = [i.name, ...Object.entries(i.labels || {}).map(([k, v]) => `${k}=${v}`)];
    return !filter || words.some((w) => w.toLowerCase().includes(filter));
  });
  for (const instance of shown) {
    const row = body.insertRow();
    row.dataset.instance = instance.name;
    cell(row, "name", instance.name);
    const status = cell(row, "status");
    const badge = document.createElement("span");
    badge.className = `badge ${instance.status}`;
    badge.textContent = instance.status;
    status.append(badge);
    const labels = cell(row, "labels");
    for (const [key, value] of Object.entries(instance.labels || {})) {
      const chip = document.createElement("span");
      chip.className = "label";
      chip.textContent = `${key}=${value}`;
      labels.append(chip);
    }
    cell(row, "version", instance.agent_version || "—");
    const seen = cell(row, "last-seen", ago(instance.last_seen));
    if (instance.last_seen) seen.title = new Date(instance.last_seen * 1000).toISOString();
    const action = cell(row, "action");
    const connect = document.createElement("button");
    connect.className = "connect";
    connect.type = "button";
    connect.textContent = "Connect";
    connect.disabled = instance.status === "offline";
    connect.addEventListener("click", () => openTerminal(instance.name));
    action.append(connect);
  }
  $("#instances-empty").hidden = lastInstances.length !== 0;
}

$("#filter").addEventListener("input", renderInstances);

// ---- Tabs -----------------------------------------------------------------------------------

const tabs = [];
let wasmReady = null;

function select(name) {
  for (const button of document.querySelectorAll("#tabs .tab")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  $("#instances-page").hidden = name !== "instances";
  for (const tab of tabs) {
    const active = tab.id === name;
    tab.element.hidden = !active;
    if (active) tab.focus();
  }
}

let nextTab = 1;

async function openTerminal(instance) {
  wasmReady = wasmReady || init();
  await wasmReady;
  const tab = new TerminalTab(instance, performance.now());
  tabs.push(tab);
  select(tab.id);
  tab.connect();
}

class TerminalTab {
  constructor(instance, clickedAt) {
    this.id = `t${nextTab++}`;
    this.instance = instance;
    this.sessionId = null;
    this.state = "connecting";
    this.channel = null;
    this.ws = null;
    this.retry = 0;
    this.ended = false;
    this.pendingBytes = 0; // handed to xterm.js, not yet parsed by it
    this.maxPending = 0;
    this.rendered = 0; // output bytes xterm.js has parsed
    this.timings = { clicked: clickedAt };
    this.timer = null;

    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.className = "tab";
    this.button.dataset.tab = this.id;
    this.button.textContent = instance;
    this.button.addEventListener("click", () => select(this.id));
    $("#tabs").append(this.button);

    this.element = document.createElement("section");
    this.element.className = "terminal-tab";
    this.element.dataset.instance = instance;
    this.element.innerHTML = `
      <div class="terminal-bar">
        <span class="instance"></span>
        <span class="session-id" title="session id"></span>
        <span class="conn-status"></span>
        <input class="search" type="search" placeholder="Search (Ctrl+Shift+F)" spellcheck="false">
        <button class="terminate" type="button" disabled>Terminate</button>
        <button class="close-tab" type="button">Close</button>
      </div>
      <div class="terminal-host"></div>`;
    this.element.querySelector(".instance").textContent = instance;
    $("#terminals").append(this.element);

    this.term = new Terminal({
      allowProposedApi: true, // the Unicode 11 widths
      cursorBlink: true,
      scrollback: 5000,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
      fontSize: 14,
    });
    this.fit = new FitAddon.FitAddon();
    this.search = new SearchAddon.SearchAddon();
    this.term.loadAddon(this.fit);
    this.term.loadAddon(this.search);
    this.term.loadAddon(new Unicode11Addon.Unicode11Addon());
    this.term.unicode.activeVersion = "11";
    const host = this.element.querySelector(".terminal-host");
    this.term.open(host);
    this.fit.fit();
    new ResizeObserver(() => {
      if (!this.element.hidden) this.fit.fit();
    }).observe(host);

    this.term.attachCustomKeyEventHandler((event) => this.key(event));
    this.term.onData((text) => this.input(encoder.encode(text)));
    // Mouse reports and the like: one byte per character code.
    this.term.onBinary((text) => this.input(Uint8Array.from(text, (c) => c.charCodeAt(0))));
    this.term.onResize(({ cols, rows }) => {
      if (this.channel !== null && !this.ended) {
        this.session.resize(this.channel, cols, rows);
        this.flush();
      }
    });

    const search = this.element.querySelector(".search");
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") this.search.findNext(search.value);
      if (event.key === "Escape") this.term.focus();
    });
    this.element.querySelector(".terminate").addEventListener("click", () => this.terminate());
    this.element.querySelector(".close-tab").addEventListener("click", () => this.dispose());

    this.session = new Session(performance.now());
  }

  focus() {
    this.fit.fit();
    this.term.focus();
  }

  // Copy and paste with the platform's keys: Cmd+C / Cmd+V work natively on macOS; elsewhere
  // Ctrl+C is the interrupt, so copying is Ctrl+Shift+C (and Ctrl+Shift+V pastes natively).
  key(event) {
    if (event.type !== "keydown") return true;
    const shifted = event.ctrlKey && event.shiftKey;
    if (shifted && event.code === "KeyC") {
      const text = this.term.getSelection();
      if (text) navigator.clipboard.writeText(text).catch(() => {});
      return false;
    }
    if (shifted && event.code === "KeyF") {
      this.element.querySelector(".search").focus();
      return false;
    }
    return true;
  }

  setState(state) {
    this.state = state;
    const status = this.element.querySelector(".conn-status");
    status.textContent = state;
    status.dataset.state = state;
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
          this.channel = this.session.openShell("xterm-256color", cols, rows);
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
        this.element.querySelector(".terminate").disabled = false;
        this.findSessionId();
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

  input(bytes) {
    if (this.channel === null || this.ended) return;
    this.timings.lastInput = performance.now();
    if (!this.session.write(this.channel, bytes)) this.notice("[input dropped: too much typed ahead]");
    this.flush();
  }

  notice(text) {
    this.term.write(`\r\n\x1b[2m${text}\x1b[0m\r\n`);
  }

  end(message) {
    if (this.ended) return;
    this.ended = true;
    this.setState("ended");
    this.element.querySelector(".terminate").disabled = true;
    if (message) this.notice(`[${message}]`);
    // A GoAway the Session queued goes before the socket closes.
    this.flush();
    if (this.ws) this.ws.close();
    if (this.timer !== null) clearTimeout(this.timer);
  }

  // The relay names sessions in its listing (11.4); this tab's is the newest shell on its
  // instance that no other tab shows.
  async findSessionId() {
    try {
      const { sessions } = await ask("/v1/sessions");
      const taken = new Set(tabs.map((t) => t.sessionId));
      const mine = sessions
        .filter((s) => s.instance === this.instance && s.kind === "shell" && !taken.has(s.id))
        .sort((a, b) => b.started - a.started)[0];
      if (mine) {
        this.sessionId = mine.id;
        this.element.querySelector(".session-id").textContent = mine.id;
      }
    } catch (e) {
      // Shown without its id; the listing is retried on the next terminate.
    }
  }

  async terminate() {
    if (!this.sessionId) await this.findSessionId();
    if (!this.sessionId) return this.notice("[the session's id is not known: close the tab instead]");
    try {
      await ask(`/v1/sessions/${encodeURIComponent(this.sessionId)}/terminate`);
    } catch (e) {
      this.notice(`[terminate refused: ${e.message}]`);
    }
  }

  dispose() {
    if (!this.ended && this.channel !== null) {
      this.session.close(this.channel);
      this.flush();
    }
    this.end();
    this.term.dispose();
    this.element.remove();
    this.button.remove();
    tabs.splice(tabs.indexOf(this), 1);
    select("instances");
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

document.querySelector('#tabs .tab[data-tab="instances"]').addEventListener("click", () => select("instances"));

// What end-to-end tests and curious operators can read from the devtools console.
window.sessionConsole = {
  tabs: () =>
    tabs.map((t) => ({
      id: t.id,
      instance: t.instance,
      sessionId: t.sessionId,
      state: t.state,
      cols: t.term.cols,
      rows: t.term.rows,
      pending: t.pendingBytes,
      maxPending: t.maxPending,
      rendered: t.rendered,
      timings: t.timings,
    })),
  text: (index) => tabs[index].text(),
  // Cuts a tab's connection as a network change would: the tab re-attaches to its session.
  dropConnection: (index) => tabs[index].ws && tabs[index].ws.close(),
  // Keystroke round trips, in milliseconds: one character typed, until its echo is parsed.
  measureEcho: async (index, count) => {
    const term = tabs[index].term;
    const samples = [];
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await new Promise((resolve) => {
        const parsed = term.onWriteParsed(() => {
          parsed.dispose();
          resolve();
        });
        term.input("x", true);
      });
      samples.push(performance.now() - start);
    }
    return samples;
  },
};

whoAmI()
  .then((user) => (user ? showApp({ user }) : showLogin()))
  .catch(() => showLogin("The relay did not answer."));
