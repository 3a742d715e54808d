#!/usr/bin/env python3
"""What session recording costs a command's throughput through the relay (issue 18).

Builds the release binaries, then for each relay setting (`--recording-default off`, then
`full`) starts a relay over a fresh store, an agent and, per run, `session-client exec` of a
command whose output (N MiB) goes to /dev/null, timed from the client's start to its exit.
After the `full` runs it prints what the recordings hold: bytes recorded and not recorded
(dropped while the disk was behind, or past the per-recording limit). Last, how fast the writer
records when nothing is dropped: one `yes` with a queue and a limit that hold all of it, timed
until its recording's end is written.

    python3 scripts/recording_overhead.py [--mib 1024] [--runs 3] [--relay-arg=--recording-max-mib=2048]
"""

import argparse
import json
import os
import subprocess
import time

from relay_fixture import BIN, Store, build, free_port, wait_for_port

COMMANDS = {
    "zeros": "head -c {n} /dev/zero",
    "yes": "yes | head -c {n}",
}


def run(mode, opts, total):
    results = {}
    relay_port = free_port()
    relay_url = f"ws://127.0.0.1:{relay_port}"
    with Store(f"recording-{mode}-") as store:
        code = store.admin("activation", "create")
        relay = store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{relay_port}",
                             "--recording-default", mode, *opts.relay_arg])
        wait_for_port(relay_port)
        store.spawn([f"{BIN}/session-agent", "--relay", relay_url, "--name", "bench", "--allow-root",
                     "--key-file", os.path.join(store.state, "agent.key"), "--activation-code", code])
        time.sleep(0.5)
        for name, command in COMMANDS.items():
            rates = []
            for _ in range(opts.runs):
                start = time.perf_counter()
                subprocess.run([f"{BIN}/session-client", "--relay", relay_url, "exec", "bench", "--",
                                command.format(n=total)], env=store.env, check=True,
                               stdout=subprocess.DEVNULL)
                rates.append(total / (time.perf_counter() - start) / 1e6)
            rates.sort()
            results[name] = (rates[-1], rates[len(rates) // 2])
        time.sleep(2)  # the writer ends the last recording a chunk interval later at most
        peak = peak_rss(relay.pid)
        listing = json.loads(store.admin("recording", "list", "-o", "json", "--limit", "1000"))
        full = [r for r in listing["recordings"] if r["mode"] == "full"]
        recorded = sum(r["size"] for r in full)
        unrecorded = sum(r["unrecorded"] for r in full)
    return results, len(full), recorded, unrecorded, peak


def peak_rss(pid):
    """A process's peak resident memory, in MiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def writer_rate(total, extra):
    """How fast the writer alone records: one `yes` of `total` bytes with a queue and a limit
    that hold all of it, timed from the client's start until the recording's end is indexed."""
    relay_port = free_port()
    relay_url = f"ws://127.0.0.1:{relay_port}"
    with Store("recording-writer-") as store:
        code = store.admin("activation", "create")
        store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{relay_port}",
                     "--recording-queue-mib", str(2 * (total >> 20) + 64),
                     "--recording-max-mib", str(4 * (total >> 20) + 64), *extra])
        wait_for_port(relay_port)
        store.spawn([f"{BIN}/session-agent", "--relay", relay_url, "--name", "bench", "--allow-root",
                     "--key-file", os.path.join(store.state, "agent.key"), "--activation-code", code])
        time.sleep(0.5)
        start = time.perf_counter()
        subprocess.run([f"{BIN}/session-client", "--relay", relay_url, "exec", "bench", "--",
                        COMMANDS["yes"].format(n=total)], env=store.env, check=True, stdout=subprocess.DEVNULL)
        session = time.perf_counter() - start
        while True:
            listing = json.loads(store.admin("recording", "list", "-o", "json"))
            done = [r for r in listing["recordings"] if r["chunks"] is not None]
            if done:
                break
            time.sleep(0.05)
        recorded = time.perf_counter() - start
        entry = done[0]
    return session, recorded, entry["size"], entry["unrecorded"]


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--mib", type=int, default=1024, help="MiB of output per run")
    args.add_argument("--runs", type=int, default=3)
    args.add_argument("--relay-arg", action="append", default=[], help="an extra relay option")
    opts = args.parse_args()
    total = opts.mib << 20
    build("session-relay", "session-agent", "session-client")
    print(f"{opts.mib} MiB per run, {opts.runs} runs, MB/s (best / median); relay options {opts.relay_arg}")
    for mode in ("off", "full"):
        results, files, recorded, unrecorded, peak = run(mode, opts, total)
        for name, (best, median) in results.items():
            print(f"recording {mode:4}  {name:5}  {best:7.0f} / {median:7.0f}")
        print(f"  relay peak RSS {peak:.1f} MiB")
        if files:
            print(f"  {files} recordings, {recorded / 1e6:.0f} MB on disk, {unrecorded / 1e6:.0f} MB of output not recorded")
    session, recorded, size, unrecorded = writer_rate(total, opts.relay_arg)
    print(f"writer alone: yes of {opts.mib} MiB took {session:.1f} s, its recording ended after {recorded:.1f} s "
          f"({total / recorded / 1e6:.0f} MB/s of output recorded), {size / 1e6:.0f} MB on disk, "
          f"{unrecorded} bytes not recorded")


if __name__ == "__main__":
    main()
