// The browser console. The protocol is session-proto itself, compiled to WebAssembly
// (session-wasm): the page only moves bytes between it, the relay's WebSocket and xterm.js.
// Each shell, in a tab or in the grid, is a Shell (shell.js); the grid is in grid.js.

import { Shell, ask, encoder, loadWasm, whoAmI } from "/console/shell.js";
import { Grid, MAX_GRID } from "/console/grid.js";
import { RecordingsView, bytesInWords } from "/console/player.js";

const REFRESH_MS = 3000;

const $ = (selector) => document.querySelector(selector);

// The Recordings tab and its player (player.js).
const recordings = new RecordingsView({ ask, select, loggedOut: () => showLogin("Your login ended: log in again.") });

// ---- Logging in ----------------------------------------------------------------------------

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
  for (const view of [...tabs, ...grids]) view.dispose();
  $("#bar").hidden = true;
  $("#instances-page").hidden = true;
  recordings.reset();
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

// ---- Instances ------------------------------------------------------------------------------

let refreshTimer = null;
let lastInstances = [];
// The instances ticked for a grid, by name, through the list's refreshes.
const picked = new Set();

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

// Keys the relay gives every instance (11.4): told in a few words beside the agent's own.
const RELAY_LABELS = ["account", "region", "name"];

// The list is drawn again at each refresh: a row whose instance did not change is kept as it
// is, so that its checkbox or button keeps the keyboard's focus and a click in progress.
function renderInstances() {
  const filter = $("#filter").value.trim().toLowerCase();
  const body = $("#instances tbody");
  for (const name of [...picked]) {
    if (!lastInstances.some((i) => i.name === name && reachable(i))) picked.delete(name);
  }
  const shown = lastInstances.filter((i) => {
    const words = [i.name, ...Object.entries(i.labels || {}).map(([k, v]) => `${k}=${v}`)];
    return !filter || words.some((w) => w.toLowerCase().includes(filter));
  });
  const kept = new Map([...body.rows].map((row) => [row.dataset.instance, row]));
  const rows = shown.map((instance) => {
    const signature = JSON.stringify([instance.status, instance.labels, instance.agent_version, instance.last_seen]);
    let row = kept.get(instance.name);
    if (!row || row.dataset.signature !== signature) row = instanceRow(instance);
    row.dataset.signature = signature;
    row.querySelector(".last-seen").textContent = ago(instance.last_seen);
    row.querySelector("input.pick").checked = picked.has(instance.name);
    return row;
  });
  // Only rows out of place move: a moved element loses the focus.
  rows.forEach((row, at) => {
    if (body.rows[at] !== row) body.insertBefore(row, body.rows[at] || null);
  });
  while (body.rows.length > rows.length) body.rows[rows.length].remove();
  $("#instances-empty").hidden = lastInstances.length !== 0;
  renderPicked();
}

// Whether a terminal can be opened here: not for an agent no relay holds, nor for one another
// relay on the store holds (spec C.2), which a browser's WebSocket cannot be redirected to.
function reachable(instance) {
  return instance.status !== "offline" && instance.status !== "elsewhere";
}

// The console of the relay at `url` (ws:// or wss://), where an instance held there is reached.
function consoleOf(url) {
  return url.replace(/^ws(s?):\/\//, "http$1://") + "/";
}

function instanceRow(instance) {
  const row = document.createElement("tr");
  row.dataset.instance = instance.name;
  const pick = cell(row, "pick");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "pick";
  box.disabled = !reachable(instance);
  box.setAttribute("aria-label", `Select ${instance.name} for a grid`);
  box.addEventListener("change", () => {
    if (box.checked) picked.add(instance.name);
    else picked.delete(instance.name);
    renderPicked();
  });
  pick.append(box);
  cell(row, "name", instance.name);
  const status = cell(row, "status");
  const badge = document.createElement("span");
  badge.className = `badge ${instance.status}`;
  badge.textContent = instance.status;
  if (instance.relay) badge.title = `connected to the relay at ${instance.relay}`;
  status.append(badge);
  const labels = cell(row, "labels");
  const all = instance.labels || {};
  for (const [key, value] of Object.entries(all)) {
    if (RELAY_LABELS.includes(key)) continue;
    const chip = document.createElement("span");
    chip.className = "label";
    chip.textContent = `${key}=${value}`;
    labels.append(chip);
  }
  // The account and the region, and the activation's label when it is not the name: values
  // only, their keys in the title.
  const own = RELAY_LABELS.filter((key) => key in all && !(key === "name" && all.name === instance.name));
  if (own.length) {
    const relay = document.createElement("span");
    relay.className = "relay-labels";
    relay.textContent = own.map((key) => all[key]).join(" · ");
    relay.title = own.map((key) => `${key}=${all[key]}`).join(", ");
    labels.append(relay);
  }
  cell(row, "version", instance.agent_version || "—");
  const seen = cell(row, "last-seen");
  if (instance.last_seen) seen.title = new Date(instance.last_seen * 1000).toISOString();
  const action = cell(row, "action");
  const connect = document.createElement("button");
  connect.className = "connect";
  connect.type = "button";
  connect.textContent = "Connect";
  connect.disabled = !reachable(instance);
  connect.addEventListener("click", () => openTerminal(instance.name));
  action.append(connect);
  if (instance.status === "elsewhere" && instance.relay) {
    const there = document.createElement("a");
    there.className = "elsewhere";
    there.href = consoleOf(instance.relay);
    there.textContent = "its relay";
    there.title = `${instance.name} is connected to the relay at ${instance.relay}: open its console`;
    action.append(" ", there);
  }
  return row;
}

// The "Open grid" button and the checkbox that ticks every row shown, after the selection.
function renderPicked() {
  const count = picked.size;
  const open = $("#open-grid");
  open.disabled = count === 0 || count > MAX_GRID;
  open.textContent = count ? `Open grid (${count})` : "Open grid";
  open.title = count > MAX_GRID
    ? `A grid holds at most ${MAX_GRID} terminals`
    : count ? `A terminal on each of ${[...picked].sort().join(", ")}` : "Tick instances to open a terminal on each";
  const boxes = [...document.querySelectorAll("#instances tbody input.pick:not(:disabled)")];
  const all = $("#pick-all");
  all.disabled = boxes.length === 0;
  all.checked = boxes.length !== 0 && boxes.every((box) => box.checked);
  all.indeterminate = !all.checked && boxes.some((box) => box.checked);
}

$("#filter").addEventListener("input", renderInstances);

$("#pick-all").addEventListener("change", (event) => {
  for (const box of document.querySelectorAll("#instances tbody input.pick:not(:disabled)")) {
    const name = box.closest("tr").dataset.instance;
    if (event.target.checked) picked.add(name);
    else picked.delete(name);
  }
  renderInstances();
});

$("#open-grid").addEventListener("click", () => {
  const names = lastInstances.map((i) => i.name).filter((name) => picked.has(name));
  picked.clear();
  renderInstances();
  openGrid(names);
});

// ---- Tabs -----------------------------------------------------------------------------------

const tabs = [];
const grids = [];

function select(name) {
  for (const button of document.querySelectorAll("#tabs .tab")) {
    const active = button.dataset.tab === name;
    button.classList.toggle("active", active);
    button.setAttribute("aria-current", String(active));
  }
  $("#instances-page").hidden = name !== "instances";
  recordings.select(name);
  for (const view of [...tabs, ...grids]) {
    const active = view.id === name;
    view.element.hidden = !active;
    if (active) view.focus();
  }
}

let nextTab = 1;

async function openTerminal(instance) {
  const clickedAt = performance.now();
  await loadWasm();
  const tab = new TerminalTab(instance, clickedAt);
  tabs.push(tab);
  select(tab.id);
  tab.connect();
}

async function openGrid(instances) {
  if (!instances.length) return;
  await loadWasm();
  const grid = new Grid(instances, {
    select,
    closed: () => {
      grids.splice(grids.indexOf(grid), 1);
      select("instances");
    },
  });
  grids.push(grid);
  select(grid.id);
  grid.connect();
}

// A shell in a tab of its own: search, files beside it, terminate.
class TerminalTab extends Shell {
  constructor(instance, clickedAt) {
    super(instance, { clickedAt });
    this.id = `t${nextTab++}`;

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
        <button class="files-toggle" type="button" aria-pressed="false">Files</button>
        <button class="terminate" type="button" disabled>Terminate</button>
        <button class="close-tab" type="button">Close</button>
      </div>
      <div class="terminal-body">
        <div class="terminal-host"></div>
        ${FILES_PANEL}
      </div>`;
    this.element.querySelector(".instance").textContent = instance;
    $("#terminals").append(this.element);
    this.files = new FilesPanel(this);

    this.search = new SearchAddon.SearchAddon();
    this.term.loadAddon(this.search);
    this.mount(this.element.querySelector(".terminal-host"));
    this.term.attachCustomKeyEventHandler((event) => this.key(event));

    const search = this.element.querySelector(".search");
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") this.search.findNext(search.value);
      if (event.key === "Escape") this.term.focus();
    });
    this.element.querySelector(".files-toggle").addEventListener("click", () => this.files.toggle());
    this.element.querySelector(".terminate").addEventListener("click", () => this.terminate());
    this.element.querySelector(".close-tab").addEventListener("click", () => this.dispose());
  }

  shown() {
    return !this.element.hidden;
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

  onState(state) {
    const status = this.element.querySelector(".conn-status");
    status.textContent = state;
    status.dataset.state = state;
  }

  onAccepted() {
    this.element.querySelector(".terminate").disabled = false;
    this.findSessionId();
  }

  onEnded() {
    this.element.querySelector(".terminate").disabled = true;
  }

  async findSessionId() {
    const id = await super.findSessionId();
    if (id) this.element.querySelector(".session-id").textContent = id;
    return id;
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
    this.files.dispose();
    super.dispose();
    this.element.remove();
    this.button.remove();
    tabs.splice(tabs.indexOf(this), 1);
    select("instances");
  }
}

document.querySelector('#tabs .tab[data-tab="instances"]').addEventListener("click", () => select("instances"));

// ---- Files (spec 11.10) ---------------------------------------------------------------------
//
// Files move over plain HTTP on the relay's port, not through the page: a download is a link the
// browser's own download manager saves to disk as it arrives, and an upload is an
// XMLHttpRequest whose body the browser reads from the file as it sends it. The page never
// holds a file whole, whatever its size; the relay streams both within one window.
//
// Paths on the host are bytes (a file name need not be UTF-8): the panel keeps them as bytes,
// from the hex the relay lists them with, and sends them percent-encoded.

const FILES_PANEL = `
  <aside class="files-panel" hidden>
    <div class="files-bar">
      <nav class="crumbs" aria-label="folder"></nav>
      <button class="files-refresh" type="button" title="List again">Refresh</button>
      <button class="files-upload" type="button" title="Upload files here">Upload</button>
      <input class="files-input" type="file" multiple hidden>
    </div>
    <form class="files-goto">
      <input class="files-path" type="text" spellcheck="false" placeholder="Go to a folder: /srv/app">
    </form>
    <p class="files-error" role="alert"></p>
    <div class="files-list" role="list"></div>
    <p class="files-hint">Drop files or folders here to upload them to this folder.</p>
    <ul class="uploads"></ul>
  </aside>`;

// Uploads at once per panel; the rest wait their turn.
const UPLOADS_AT_ONCE = 3;
const lossy = new TextDecoder(); // invalid bytes become U+FFFD, for showing only

function hexBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}

// Every byte but the unreserved ones percent-encoded: the relay decodes the query to bytes.
function pct(bytes) {
  let out = "";
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function joinPath(dir, name) {
  const slash = dir.length === 1 ? 0 : 1; // "/" + name, or dir + "/" + name
  const out = new Uint8Array(dir.length + slash + name.length);
  out.set(dir);
  if (slash) out[dir.length] = 0x2f;
  out.set(name, dir.length + slash);
  return out;
}

function parentPath(path) {
  const last = path.lastIndexOf(0x2f);
  return last <= 0 ? Uint8Array.of(0x2f) : path.slice(0, last);
}

function filesUrl(op, instance, params) {
  const query = Object.entries(params)
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([name, value]) => `${name}=${value instanceof Uint8Array ? pct(value) : encodeURIComponent(value)}`)
    .join("&");
  return `/console/api/${op}/${encodeURIComponent(instance)}${query ? `?${query}` : ""}`;
}

// An error of a file endpoint: the relay's words, its code (EXISTS, PROHIBITED, ...) and status.
class FilesError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function filesApi(method, url) {
  let response;
  try {
    response = await fetch(url, { method, credentials: "same-origin" });
  } catch (e) {
    throw new FilesError("the relay did not answer", null, 0);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = response.status === 401 ? "your login ended: log in again" : body.error;
    throw new FilesError(message || `${response.status} ${response.statusText}`, body.code || null, response.status);
  }
  return body;
}

// "5 min ago" for the last month, a date before.
function modifiedInWords(unixSeconds) {
  if (!unixSeconds) return "";
  if (Date.now() / 1000 - unixSeconds < 30 * 86400) return ago(unixSeconds);
  return new Date(unixSeconds * 1000).toISOString().slice(0, 10);
}

class FilesPanel {
  constructor(tab) {
    this.instance = tab.instance;
    this.toggleButton = tab.element.querySelector(".files-toggle");
    this.element = tab.element.querySelector(".files-panel");
    this.path = null; // the listed folder, as bytes
    this.entries = [];
    this.truncated = false;
    this.error = "";
    this.errorCode = null;
    this.loading = false;
    this.asked = 0; // listings asked for: only the last one's answer is shown
    this.uploads = [];
    this.running = 0;
    this.refreshTimer = null;

    const $$ = (selector) => this.element.querySelector(selector);
    $$(".files-refresh").addEventListener("click", () => this.list(this.path));
    const input = $$(".files-input");
    $$(".files-upload").addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      if (this.path === null) {
        this.error = "List a folder first: the files go to the folder shown.";
        this.renderStatus();
      } else {
        for (const file of input.files) this.enqueue(file, this.path, file.name);
      }
      input.value = "";
    });
    $$(".files-goto").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $$(".files-path").value.trim();
      if (text) this.list(encoder.encode(text));
    });
    this.element.addEventListener("dragover", (event) => {
      if (!event.dataTransfer || !event.dataTransfer.types.includes("Files")) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      this.element.classList.add("dropping");
    });
    this.element.addEventListener("dragleave", (event) => {
      if (!this.element.contains(event.relatedTarget)) this.element.classList.remove("dropping");
    });
    this.element.addEventListener("drop", (event) => {
      event.preventDefault();
      this.element.classList.remove("dropping");
      this.dropped(event.dataTransfer);
    });
  }

  shown() {
    return !this.element.hidden;
  }

  toggle(show = !this.shown()) {
    this.element.hidden = !show;
    this.toggleButton.setAttribute("aria-pressed", String(show));
    this.toggleButton.classList.toggle("active", show);
    if (show && this.path === null && !this.loading) this.list(null);
  }

  // Lists `path` (bytes), or the login user's home folder when null.
  async list(path) {
    const asked = ++this.asked;
    this.loading = true;
    this.renderStatus();
    try {
      const listing = await filesApi("GET", filesUrl("files", this.instance, { path }));
      if (asked !== this.asked) return;
      this.path = hexBytes(listing.path_hex);
      this.entries = listing.entries;
      this.truncated = listing.truncated;
      this.error = "";
      this.errorCode = null;
      this.element.querySelector(".files-path").value = "";
    } catch (e) {
      if (asked !== this.asked) return;
      const where = path === null ? "your home folder" : lossy.decode(path);
      this.error = `Could not list ${where}: ${e.message}`;
      this.errorCode = e.code;
    } finally {
      if (asked === this.asked) {
        this.loading = false;
        this.render();
      }
    }
  }

  renderStatus() {
    this.element.classList.toggle("loading", this.loading);
    this.element.querySelector(".files-error").textContent = this.error;
  }

  render() {
    this.renderStatus();
    const crumbs = this.element.querySelector(".crumbs");
    crumbs.replaceChildren();
    if (this.path !== null) {
      // "/", then each folder on the way, each a button to go there.
      const stops = [Uint8Array.of(0x2f)];
      for (let i = 1; i < this.path.length; i++) if (this.path[i] === 0x2f) stops.push(this.path.slice(0, i));
      if (this.path.length > 1) stops.push(this.path);
      for (const stop of stops) {
        const crumb = document.createElement("button");
        crumb.type = "button";
        crumb.className = "crumb";
        crumb.textContent = stop.length === 1 ? "/" : lossy.decode(stop.slice(stop.lastIndexOf(0x2f) + 1));
        crumb.title = lossy.decode(stop);
        crumb.addEventListener("click", () => this.list(stop));
        crumbs.append(crumb);
      }
    }
    const list = this.element.querySelector(".files-list");
    list.replaceChildren();
    if (this.path !== null && this.path.length > 1) {
      list.append(this.row({ name: "..", kind: "up", size: null, mtime: 0 }, parentPath(this.path)));
    }
    const sorted = [...this.entries].sort((a, b) => {
      const dirs = (b.kind === "dir") - (a.kind === "dir");
      return dirs || a.name.localeCompare(b.name);
    });
    for (const entry of sorted) list.append(this.row(entry, joinPath(this.path, hexBytes(entry.name_hex))));
    if (this.truncated) {
      const more = document.createElement("p");
      more.className = "files-more";
      more.textContent = "Only the first 10,000 entries are listed.";
      list.append(more);
    }
  }

  // One entry: a folder to enter, or a file to download (the browser saves it as it comes).
  row(entry, path) {
    const row = document.createElement("div");
    row.className = `file-row ${entry.kind}`;
    row.setAttribute("role", "listitem");
    row.dataset.name = entry.name;
    let name;
    if (entry.kind === "file") {
      name = document.createElement("a");
      name.href = filesUrl("download", this.instance, { path });
      name.setAttribute("download", entry.name);
    } else {
      // Folders, and links, which may name one: listing a link follows it.
      name = document.createElement("button");
      name.type = "button";
      name.addEventListener("click", () => this.enter(entry, path));
    }
    name.className = "file-name";
    name.textContent = entry.kind === "symlink" ? `${entry.name} → ${entry.target}` : entry.name;
    name.title = lossy.decode(path);
    const size = document.createElement("span");
    size.className = "file-size";
    size.textContent = entry.kind === "file" ? bytesInWords(entry.size) : "";
    const when = document.createElement("span");
    when.className = "file-mtime";
    when.textContent = modifiedInWords(entry.mtime);
    if (entry.mtime) when.title = new Date(entry.mtime * 1000).toISOString();
    row.append(name, size, when);
    return row;
  }

  async enter(entry, path) {
    await this.list(path);
    // A link to a file: downloaded instead.
    if (entry.kind === "symlink" && this.errorCode === "NOT_A_DIRECTORY") {
      this.error = "";
      this.errorCode = null;
      const link = document.createElement("a");
      link.href = filesUrl("download", this.instance, { path });
      link.setAttribute("download", entry.name);
      link.click();
      this.render();
    }
  }

  downloadUrl(text) {
    return filesUrl("download", this.instance, { path: encoder.encode(text) });
  }

  // What was dropped: files and folders (read through the entries API, which only a drop
  // gives), or, without it, the files alone.
  dropped(transfer) {
    if (this.path === null) {
      this.error = "List a folder first: the files go to the folder shown.";
      this.renderStatus();
      return;
    }
    const dir = this.path;
    // Entries must be taken now: the drop's items are gone once this handler returns.
    const entries = [...transfer.items]
      .filter((item) => item.kind === "file")
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
    if (entries.length && entries.every((entry) => entry)) return this.addEntries(entries, dir);
    for (const file of transfer.files) this.enqueue(file, dir, file.name);
    return Promise.resolve();
  }

  // Uploads `entries` (FileSystemEntry-like: files and folders) into `dir`: each folder made
  // first, then what it holds.
  async addEntries(entries, dir) {
    for (const entry of entries) {
      if (entry.isFile) {
        try {
          const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
          this.enqueue(file, dir, entry.name);
        } catch (e) {
          this.failedItem(entry.name, `could not read it: ${e.message || e}`);
        }
      } else if (entry.isDirectory) {
        const path = joinPath(dir, encoder.encode(entry.name));
        try {
          await filesApi("POST", filesUrl("mkdir", this.instance, { path, mode: "755" }));
        } catch (e) {
          // An existing folder is uploaded into; anything else stops this folder.
          if (e.code !== "EXISTS") {
            this.failedItem(`${entry.name}/`, e.message);
            continue;
          }
        }
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
          if (!batch.length) break;
          await this.addEntries(batch, path);
        }
      }
    }
    this.refreshSoon();
  }

  failedItem(name, message) {
    const upload = new Upload(this, null, this.path || Uint8Array.of(0x2f), name, {});
    upload.state = "failed";
    upload.error = message;
    this.uploads.push(upload);
    upload.render();
  }

  enqueue(file, dir, name, options = {}) {
    const upload = new Upload(this, file, dir, name, options);
    this.uploads.push(upload);
    upload.render();
    this.pump();
    return upload;
  }

  pump() {
    while (this.running < UPLOADS_AT_ONCE) {
      const next = this.uploads.find((u) => u.state === "queued");
      if (!next) return;
      this.running += 1;
      next.start();
    }
  }

  finished(upload) {
    this.running -= 1;
    this.pump();
    if (upload.state === "done") this.refreshSoon();
  }

  // The listing again once uploads settle, if it shows a folder.
  refreshSoon() {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      if (this.path !== null && this.shown()) this.list(this.path);
    }, 300);
  }

  dispose() {
    for (const upload of this.uploads) upload.cancel();
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
  }
}

// One file going up, with its row: a progress bar, Cancel, and what went wrong in words.
class Upload {
  constructor(panel, file, dir, name, options) {
    this.panel = panel;
    this.file = file;
    this.path = joinPath(dir, encoder.encode(name));
    this.name = name;
    this.overwrite = Boolean(options.overwrite);
    this.mode = options.mode || null;
    this.state = "queued";
    this.loaded = 0;
    this.total = file ? file.size : 0;
    this.error = "";
    this.xhr = null;

    this.element = document.createElement("li");
    this.element.className = "upload";
    this.element.innerHTML = `
      <div class="upload-line"><span class="upload-name"></span><span class="upload-state"></span>
        <button class="upload-replace" type="button" hidden>Replace</button>
        <button class="upload-cancel" type="button">Cancel</button></div>
      <progress class="upload-progress" max="1" value="0"></progress>
      <p class="upload-error" role="alert"></p>`;
    this.element.querySelector(".upload-name").textContent = lossy.decode(this.path);
    this.element.querySelector(".upload-cancel").addEventListener("click", () => this.cancel());
    this.element.querySelector(".upload-replace").addEventListener("click", () => this.replace());
    panel.element.querySelector(".uploads").append(this.element);
  }

  start() {
    this.state = "uploading";
    this.error = "";
    this.code = null;
    const xhr = new XMLHttpRequest();
    this.xhr = xhr;
    const url = filesUrl("upload", this.panel.instance, {
      path: this.path,
      overwrite: this.overwrite ? "1" : "0",
      mode: this.mode,
    });
    xhr.open("PUT", url);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      this.loaded = event.loaded;
      this.render();
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        this.state = "done";
        this.loaded = this.total;
      } else {
        const body = xhr.response || {};
        this.state = "failed";
        this.code = body.code || null;
        this.error = xhr.status === 401 ? "your login ended: log in again" : body.error || `${xhr.status} ${xhr.statusText}`;
      }
      this.end();
    };
    xhr.onerror = () => {
      this.state = "failed";
      this.error = "the connection to the relay failed";
      this.end();
    };
    xhr.onabort = () => {
      this.state = "cancelled";
      this.end();
    };
    // The browser reads the file as it sends it, with its Content-Length.
    xhr.send(this.file);
    this.render();
  }

  end() {
    this.xhr = null;
    this.render();
    this.panel.finished(this);
  }

  cancel() {
    if (this.state === "queued") {
      this.state = "cancelled";
      this.render();
    } else if (this.xhr) {
      this.xhr.abort();
    }
  }

  // After EXISTS: the same file again, replacing what is there.
  replace() {
    if (this.state !== "failed" || !this.file) return;
    this.overwrite = true;
    this.state = "queued";
    this.loaded = 0;
    this.render();
    this.panel.pump();
  }

  render() {
    const words = {
      queued: "waiting",
      uploading: `${bytesInWords(this.loaded)} of ${bytesInWords(this.total)}`,
      done: `${bytesInWords(this.total)}, done`,
      failed: "failed",
      cancelled: "cancelled",
    };
    this.element.dataset.state = this.state;
    this.element.querySelector(".upload-state").textContent = words[this.state];
    const progress = this.element.querySelector(".upload-progress");
    progress.value = this.total ? this.loaded / this.total : this.state === "done" ? 1 : 0;
    this.element.querySelector(".upload-error").textContent = this.error;
    this.element.querySelector(".upload-cancel").hidden = !["queued", "uploading"].includes(this.state);
    this.element.querySelector(".upload-replace").hidden = !(this.state === "failed" && this.code === "EXISTS");
  }

  summary() {
    return {
      name: this.name,
      path: lossy.decode(this.path),
      state: this.state,
      loaded: this.loaded,
      total: this.total,
      error: this.error,
      code: this.code || null,
    };
  }
}

// A file dropped anywhere else would make the browser open it in place of the console (and
// end its terminals): only the files panels take drops.
for (const type of ["dragover", "drop"]) {
  window.addEventListener(type, (event) => {
    if (event.dataTransfer && event.dataTransfer.types.includes("Files")) event.preventDefault();
  });
}

// Folders for tests that cannot drag: `{name: "a", files: {"x.txt": "text", "sub": {...}}}`
// made into what a drop's entries API gives.
function fakeEntries(tree) {
  return Object.entries(tree).map(([name, content]) => {
    if (typeof content === "object" && !(content instanceof Uint8Array)) {
      const children = fakeEntries(content);
      let read = false;
      return {
        name,
        isFile: false,
        isDirectory: true,
        createReader: () => ({
          readEntries: (resolve) => {
            resolve(read ? [] : children);
            read = true;
          },
        }),
      };
    }
    return { name, isFile: true, isDirectory: false, file: (resolve) => resolve(new File([content], name)) };
  });
}

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
  // Each grid's terminals: instance, connection state, broadcast toggle, last command's status.
  grids: () => grids.map((g) => ({ id: g.id, terminals: g.terminals.map((t) => t.summary()) })),
  gridText: (grid, index) => grids[grid].terminals[index].text(),
  // The files panel of tab `index`: the names it lists (none until it has listed a folder).
  files: (index) => (tabs[index].files.path === null ? [] : tabs[index].files.entries.map((e) => e.name)),
  filesState: (index) => {
    const panel = tabs[index].files;
    return {
      shown: panel.shown(),
      path: panel.path === null ? null : lossy.decode(panel.path),
      loading: panel.loading,
      error: panel.error,
      truncated: panel.truncated,
    };
  },
  // Opens the panel on folder `path` (text; the home folder when absent), once listed.
  cd: async (index, path) => {
    const panel = tabs[index].files;
    panel.toggle(true);
    await panel.list(path === undefined ? null : encoder.encode(path));
    return panel.error || panel.entries.map((e) => e.name);
  },
  // Uploads `bytes` (a string, an array of numbers, a Uint8Array or a Blob) as `name` into the
  // listed folder, as a file chosen or dropped would be; returns the upload's index.
  upload: (index, name, bytes, options = {}) => {
    const panel = tabs[index].files;
    const body = Array.isArray(bytes) ? Uint8Array.from(bytes) : bytes;
    return panel.uploads.indexOf(panel.enqueue(new File([body], name), panel.path, name, options));
  },
  // A dropped folder tree (see fakeEntries), uploaded into the listed folder.
  uploadFolder: (index, tree) => tabs[index].files.addEntries(fakeEntries(tree), tabs[index].files.path),
  uploads: (index) => tabs[index].files.uploads.map((u) => u.summary()),
  cancelUpload: (index, upload) => tabs[index].files.uploads[upload].cancel(),
  downloadUrl: (index, path) => tabs[index].files.downloadUrl(path),
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
