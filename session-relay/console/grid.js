// The grid: a shell on each of several instances, side by side, and a broadcast line under
// them whose text, with Enter, goes to every terminal whose "broadcast" toggle is on.
//
// Each terminal's header tells its last command's status at a glance. Its shell is opened with
// PROMPT_COMMAND set, which bash runs before each prompt, with `$?` still the last command's
// status: it prints that status as OSC 133;D (the shell-integration sequence terminals know),
// and xterm.js hands the sequence to the handler here instead of showing it. Shells other than
// bash ignore the variable, and so does bash if a startup file sets it anew: the status then
// stays unknown.

import { Shell, encoder } from "/console/shell.js";

// The most terminals in one grid: each is a connection and a terminal of its own.
export const MAX_GRID = 16;

const STATUS_ENV = { PROMPT_COMMAND: 'printf "\\033]133;D;%s\\007" "$?"' };

let nextGrid = 1;

export class Grid {
  // `select(id)` shows a view of the page; `closed()` is called once the grid is gone.
  constructor(instances, { select, closed }) {
    this.id = `g${nextGrid++}`;
    this.closed = closed;

    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.className = "tab";
    this.button.dataset.tab = this.id;
    this.button.textContent = `Grid (${instances.length})`;
    this.button.title = instances.join(", ");
    this.button.addEventListener("click", () => select(this.id));
    document.querySelector("#tabs").append(this.button);

    this.element = document.createElement("section");
    this.element.className = "grid-tab";
    this.element.setAttribute("aria-label", `Grid of ${instances.length} terminals`);
    this.element.innerHTML = `
      <div class="grid-cells"></div>
      <form class="broadcast-line" autocomplete="off">
        <label class="broadcast-label" for="${this.id}-line">Broadcast to <span class="broadcast-count"></span></label>
        <input id="${this.id}-line" class="broadcast-input" type="text" spellcheck="false"
          placeholder="A command for every terminal whose broadcast is on; Enter sends it">
        <button class="broadcast-send" type="submit">Send</button>
        <button class="close-grid" type="button">Close grid</button>
      </form>`;
    const cells = this.element.querySelector(".grid-cells");
    // As square as it can be; the last terminal takes what its row leaves.
    const cols = Math.ceil(Math.sqrt(instances.length));
    cells.style.setProperty("--cols", cols);
    this.terminals = instances.map((instance) => new GridTerminal(this, instance, cells));
    const left = instances.length % cols;
    if (left) this.terminals[this.terminals.length - 1].element.style.gridColumn = `span ${cols - left + 1}`;
    document.querySelector("#terminals").append(this.element);
    for (const terminal of this.terminals) terminal.mount(terminal.element.querySelector(".terminal-host"));

    const input = this.element.querySelector(".broadcast-input");
    this.element.querySelector(".broadcast-line").addEventListener("submit", (event) => {
      event.preventDefault();
      this.broadcast(input.value);
      input.value = "";
    });
    this.element.querySelector(".close-grid").addEventListener("click", () => this.dispose());
    this.renderCount();
  }

  connect() {
    for (const terminal of this.terminals) terminal.connect();
  }

  focus() {
    for (const terminal of this.terminals) terminal.fit.fit();
    this.element.querySelector(".broadcast-input").focus();
  }

  // `text` and Enter to every terminal whose broadcast is on, as if typed into each.
  broadcast(text) {
    const bytes = encoder.encode(`${text}\r`);
    for (const terminal of this.terminals) {
      if (terminal.broadcast) terminal.input(bytes);
    }
  }

  renderCount() {
    const on = this.terminals.filter((t) => t.broadcast).length;
    this.element.querySelector(".broadcast-count").textContent = `${on} of ${this.terminals.length}`;
    this.element.querySelector(".broadcast-send").disabled = on === 0;
  }

  dispose() {
    for (const terminal of this.terminals) terminal.dispose();
    this.element.remove();
    this.button.remove();
    this.closed();
  }
}

// One terminal of a grid, under a header: the instance, its last command's status, the
// connection's state and the broadcast toggle.
class GridTerminal extends Shell {
  constructor(grid, instance, cells) {
    super(instance, { env: STATUS_ENV, fontSize: 13 });
    this.grid = grid;
    this.broadcast = true;
    this.status = null; // the last command's exit status; null while unknown
    this.marks = 0; // statuses reported
    // The first status comes with the shell's first prompt, before any command: it is that of
    // the startup files, not one of a command. (Not "no line sent yet": what is typed ahead,
    // or broadcast as the shell starts, runs after that prompt.)
    this.started = false;

    this.element = document.createElement("section");
    this.element.className = "grid-cell";
    this.element.dataset.instance = instance;
    this.element.setAttribute("aria-label", `Terminal on ${instance}`);
    this.element.innerHTML = `
      <div class="grid-head">
        <span class="instance"></span>
        <span class="mark"></span>
        <span class="conn-status"></span>
        <label class="broadcast-toggle"><input class="broadcast" type="checkbox" checked> broadcast</label>
      </div>
      <div class="terminal-host"></div>`;
    this.element.querySelector(".instance").textContent = instance;
    const toggle = this.element.querySelector("input.broadcast");
    toggle.setAttribute("aria-label", `Broadcast to ${instance}`);
    toggle.addEventListener("change", () => {
      this.broadcast = toggle.checked;
      this.element.classList.toggle("excluded", !this.broadcast);
      grid.renderCount();
    });
    cells.append(this.element);
    this.term.parser.registerOscHandler(133, (data) => this.shellMark(data));
    this.renderMark();
  }

  shown() {
    return !this.grid.element.hidden;
  }

  onState(state) {
    const status = this.element.querySelector(".conn-status");
    status.textContent = state;
    status.dataset.state = state;
  }

  // OSC 133 (`data` is what follows "133;"): "D;<status>" at each prompt, the status of what
  // ran before it: a command, or nothing (an empty line keeps the status; Ctrl-C at the prompt
  // makes it 130). The other marks (prompt and command starts) are not used.
  shellMark(data) {
    const [mark, status] = data.split(";");
    if (mark !== "D") return false;
    if (!this.started) {
      this.started = true;
      return true;
    }
    this.marks += 1;
    this.status = /^\d+$/.test(status || "") ? Number(status) : null;
    this.renderMark();
    return true;
  }

  renderMark() {
    const mark = this.element.querySelector(".mark");
    if (this.status === null) {
      mark.dataset.status = "unknown";
      mark.textContent = "unknown";
      mark.title = "No command's status yet: bash tells it after each command";
    } else if (this.status === 0) {
      mark.dataset.status = "ok";
      mark.textContent = "ok";
      mark.title = "The last command succeeded";
    } else {
      mark.dataset.status = "failed";
      mark.textContent = `failed (${this.status})`;
      mark.title = `The last command failed with exit status ${this.status}`;
    }
  }

  summary() {
    return {
      instance: this.instance,
      state: this.state,
      broadcast: this.broadcast,
      status: this.status === null ? "unknown" : this.status === 0 ? "ok" : "failed",
      code: this.status,
      marks: this.marks,
    };
  }
}
