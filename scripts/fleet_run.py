#!/usr/bin/env python3
"""One fleet command on N agents through one relay: time to the first and the last result, and
the relay's memory per target in flight.

Builds the release binaries, starts a relay on a fresh store and `session-loadgen agents` (N real
agents in one process), waits until the relay lists them all online, then runs
`session-client run --json` on every one of them over one connection, reading its JSON lines as
they come, twice: the first command is also the first session on each agent's connection, whose
buffers the relay sizes on demand, so the second shows what targets in flight cost. The relay's
resident memory is sampled every 20 ms while each runs. Then, as a baseline in the same run, the
same command on the same agents the way pssh would run it: one `session-client exec` process
(and connection, and WebSocket handshake) per target, as many at once.

    python3 scripts/fleet_run.py [--agents 1000] [--concurrency 256] [--command 'echo ok']
"""

import argparse
import json
import resource
import subprocess
import sys
import threading
import time

from relay_fixture import BIN, Store, build, free_port, wait_for_port
from idle_agents import all_online, rss_kib


class Sampler:
    """The highest resident memory of a process while it is running, sampled every 20 ms."""

    def __init__(self, pid):
        time.sleep(2)
        self.pid = pid
        self.before = self.peak = rss_kib(pid)
        self.running = threading.Event()
        self.running.set()
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()

    def sample(self):
        while self.running.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def stop(self):
        self.running.clear()
        self.thread.join()
        self.after = rss_kib(self.pid)


def fleet_command(port, env, pid, opts):
    """The command on every agent over one fleet connection, its JSON lines read as they come."""
    memory = Sampler(pid)
    started = time.perf_counter()
    run = subprocess.Popen(
        [f"{BIN}/session-client", "--relay", f"ws://127.0.0.1:{port}", "run", "--json",
         "-t", "load-*", "--max-concurrency", str(opts.concurrency), "--", opts.command],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = last = None
    statuses = {}
    for line in run.stdout:
        record = json.loads(line)
        if "status" in record:
            now = time.perf_counter() - started
            first = first if first is not None else now
            last = now
            statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    code = run.wait()
    ended = time.perf_counter() - started
    memory.stop()
    if code != 0:
        sys.exit(f"session-client run exited {code}: {statuses}")
    return first, last, ended, statuses, memory


def exec_each(port, env, pid, opts):
    """The baseline: one `session-client exec` per target, `--concurrency` at once."""
    memory = Sampler(pid)
    names = "".join(f"load-{i}\n" for i in range(opts.agents))
    started = time.perf_counter()
    xargs = subprocess.run(
        ["xargs", "-P", str(opts.concurrency), "-I", "{}", f"{BIN}/session-client", "--relay",
         f"ws://127.0.0.1:{port}", "exec", "{}", "--", opts.command],
        env=env, input=names, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    ended = time.perf_counter() - started
    memory.stop()
    if xargs.returncode != 0:
        sys.exit(f"xargs session-client exec exited {xargs.returncode}")
    return ended, memory


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--agents", type=int, default=1000)
    args.add_argument("--concurrency", type=int, default=256)
    args.add_argument("--command", default="echo ok")
    args.add_argument("--rate", type=int, default=500, help="new agents per second")
    opts = args.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    build("session-relay", "session-client", "session-bench")
    port = free_port()
    with Store("fleet-run-") as store:
        code = store.admin("activation", "create", "--uses", str(opts.agents), "--expires-in", "1h")
        relay = store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{port}",
                             "--max-handshakes-per-source", "512"])
        wait_for_port(port)
        started = time.perf_counter()
        store.spawn([f"{BIN}/session-loadgen", "agents", "--relay", f"ws://127.0.0.1:{port}",
                     "--count", str(opts.agents), "--rate", str(opts.rate)], SESSION_ACTIVATION_CODE=code)
        all_online(port, store.env, opts.agents, started, 120 + opts.agents / opts.rate * 3)
        passes = [fleet_command(port, store.env, relay.pid, opts) for _ in range(2)]
        base_ended, base_memory = exec_each(port, store.env, relay.pid, opts)

    in_flight = min(opts.concurrency, opts.agents)
    for n, (first, last, ended, statuses, memory) in enumerate(passes, 1):
        print(f"session-client run, command {n}: {opts.agents} targets {statuses}, {in_flight} at once, "
              f"`{opts.command}`")
        print(f"  first result                      {first:.3f} s after starting")
        print(f"  last result                       {last:.3f} s after starting ({ended:.3f} s to exit)")
        print(f"  relay RSS before / peak / after   {memory.before} / {memory.peak} / {memory.after} KiB")
        print(f"  relay memory per target in flight {(memory.peak - memory.before) / in_flight:.1f} KiB")
    print(f"baseline: one `session-client exec` per target, {in_flight} at once (xargs -P)")
    print(f"  all {opts.agents} done                     {base_ended:.3f} s")
    print(f"  relay RSS before / peak / after   {base_memory.before} / {base_memory.peak} / "
          f"{base_memory.after} KiB")
    print(f"  relay memory per target in flight {(base_memory.peak - base_memory.before) / in_flight:.1f} KiB")


if __name__ == "__main__":
    main()
