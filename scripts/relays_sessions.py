#!/usr/bin/env python3
"""Sessions started per second through three relays on one PostgreSQL, against one relay on the
same database and one relay on an SQLite file, side by side in one run (issue 20).

Builds the release binaries and starts a PostgreSQL server of its own (Debian's `postgresql`).
For each setup: a fresh store, its relays, and `session-loadgen agents` with an equal share of
N agents on each relay; then, on every relay at once, one `session-client run --json` of
`true` on the agents that relay holds, 256 at once per relay, twice (the first is also each
agent connection's first session, whose buffers the relay sizes on demand). The rate is the
sessions that succeeded over the time from the first start to the last exit.

    python3 scripts/relays_sessions.py [--agents 300]
"""

import argparse
import json
import resource
import subprocess
import sys
import threading
import time

from relay_fixture import BIN, Postgres, Store, build, free_port, wait_for_port
from idle_agents import all_online


def fleet_run(port, env, pattern, results, index):
    run = subprocess.run(
        [f"{BIN}/session-client", "--relay", f"ws://127.0.0.1:{port}", "run", "--json", "-t", pattern,
         "--max-concurrency", "256", "--", "true"],
        env=env, capture_output=True, text=True)
    statuses = {}
    for line in run.stdout.splitlines():
        record = json.loads(line)
        if "status" in record:
            statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    results[index] = (run.returncode, statuses)


def setup(name, db, relays, opts):
    ports = [free_port() for _ in range(relays)]
    with Store(f"relays-{relays}-", db) as store:
        code = store.admin("activation", "create", "--uses", str(opts.agents), "--expires-in", "1h")
        for port in ports:
            store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{port}",
                         "--max-handshakes-per-source", "512"], quiet=True)
        for port in ports:
            wait_for_port(port)
        share = opts.agents // relays
        started = time.perf_counter()
        for r, port in enumerate(ports):
            store.spawn([f"{BIN}/session-loadgen", "agents", "--relay", f"ws://127.0.0.1:{port}",
                         "--count", str(share), "--prefix", f"load-{r}-", "--rate", "300"],
                        quiet=True, SESSION_ACTIVATION_CODE=code)
        for port in ports:
            all_online(port, store.env, share, started, 120)
        passes = []
        for _ in range(2):
            results = [None] * relays
            threads = [threading.Thread(target=fleet_run, args=(port, store.env, f"load-{r}-*", results, r))
                       for r, port in enumerate(ports)]
            begun = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - begun
            succeeded = sum(statuses.get("succeeded", 0) for _, statuses in results)
            if any(code != 0 for code, _ in results):
                sys.exit(f"{name}: a run failed: {results}")
            passes.append((succeeded, took))
    return passes


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--agents", type=int, default=300)
    opts = args.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    build("session-relay", "session-client", "session-bench")
    with Postgres() as postgres:
        setups = [
            ("one relay, SQLite", None, 1),
            ("one relay, PostgreSQL", postgres.database("one"), 1),
            ("three relays, PostgreSQL", postgres.database("three"), 3),
        ]
        rows = [(name, setup(name, db, relays, opts)) for name, db, relays in setups]
    print(f"sessions started per second: `true` on {opts.agents} agents, each relay's share over one "
          "fleet connection, 256 at once per relay")
    print(f"| setup | run 1 | run 2 |")
    print(f"|---|---|---|")
    for name, passes in rows:
        cells = " | ".join(f"{n / took:.0f}/s ({n} in {took:.2f} s)" for n, took in passes)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
