#!/usr/bin/env python3
"""Relay memory and CPU per idle agent, with N real agents connected at once.

Builds the release binaries, starts a relay on a fresh store, and `session-loadgen agents`
(separate processes). Waits until the relay lists every agent online, then lets them idle and
reads the relay's resident memory and CPU time from /proc. Prints one line per figure.

    python3 scripts/idle_agents.py [--agents 10000] [--rate 500] [--idle 30] [--restart] [--replace N]
                                   [--relay-env NAME=VALUE ...]
"""

import argparse
import os
import resource
import subprocess
import sys
import time

from relay_fixture import BIN, Store, build, free_port, wait_for_port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def online(port, env):
    """How many instances the relay lists online, asked as a user would (`session-client list`);
    None when it did not answer (admission control may refuse while the agents' handshakes fill
    it)."""
    listing = subprocess.run([f"{BIN}/session-client", "--relay", f"ws://127.0.0.1:{port}", "list"],
                             env=env, capture_output=True, text=True)
    if listing.returncode != 0:
        return None
    return sum(1 for line in listing.stdout.splitlines()[1:] if line.split()[1:2] == ["online"])


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--agents", type=int, default=10000)
    args.add_argument("--rate", type=int, default=500, help="new agents per second")
    args.add_argument("--idle", type=int, default=30, help="seconds of idling measured")
    args.add_argument("--restart", action="store_true",
                      help="then restart the relay and time the reconnect storm")
    args.add_argument("--replace", type=int, default=0, metavar="ROUNDS",
                      help="then as many times: all agents leave and as many new ones come, "
                           "the relay ending a session 1 s after its agent left")
    args.add_argument("--relay-env", action="append", default=[], metavar="NAME=VALUE",
                      help="set in the relay's environment only (LD_PRELOAD=... tries an allocator)")
    opts = args.parse_args()

    # Every agent is a socket in the relay and one in the load generator.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < opts.agents + 100:
        sys.exit(f"{opts.agents} agents need {opts.agents + 100} open files per process; the hard limit is {hard}")

    build("session-relay", "session-client", "session-bench")
    port = free_port()
    with Store("idle-agents-") as store:
        uses = opts.agents * (1 + opts.replace)
        code = store.admin("activation", "create", "--uses", str(uses), "--expires-in", "1h")
        # Every agent dials from 127.0.0.1 here: the per-source handshake cap is the total one.
        relay_env = dict(pair.split("=", 1) for pair in opts.relay_env)
        # Sessions of agents that left are kept for a re-attach (60 s by default): not what the
        # rounds of --replace measure.
        detach = ["--detach-timeout", "1"] if opts.replace else []
        relay = store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{port}",
                             "--max-handshakes-per-source", "512", *detach], **relay_env)
        wait_for_port(port)
        time.sleep(0.5)
        empty = rss_kib(relay.pid)
        started = time.perf_counter()
        loadgen = [f"{BIN}/session-loadgen", "agents", "--relay", f"ws://127.0.0.1:{port}",
                   "--count", str(opts.agents), "--rate", str(opts.rate)]
        agents = store.spawn(loadgen, SESSION_ACTIVATION_CODE=code)
        up = all_online(port, store.env, opts.agents, started, 120 + opts.agents / opts.rate * 3)
        time.sleep(5)
        cpu = cpu_seconds(relay.pid)
        time.sleep(opts.idle)
        cpu = cpu_seconds(relay.pid) - cpu
        held = rss_kib(relay.pid)
        replaced = []
        for round in range(1, opts.replace + 1):
            agents.terminate()
            agents.wait()
            time.sleep(5)
            # New names: an instance's name stays bound to the key that registered it.
            agents = store.spawn([*loadgen, "--prefix", f"round-{round}-"], quiet=True,
                                 SESSION_ACTIVATION_CODE=code)
            all_online(port, store.env, opts.agents, time.perf_counter(), 120 + opts.agents / opts.rate * 3)
            time.sleep(5)
            replaced.append(rss_kib(relay.pid))
        if opts.restart:
            # Every agent finds its relay gone at once, and a new one that knows no session.
            relay.terminate()
            relay.wait()
            started = time.perf_counter()
            store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{port}",
                         "--max-handshakes-per-source", "512"], **relay_env)
            back = all_online(port, store.env, opts.agents, started, 300)
    print(f"agents online                  {opts.agents} in {up:.1f} s (dialing at {opts.rate}/s)")
    print(f"relay RSS empty                {empty} KiB")
    print(f"relay RSS with the agents      {held} KiB")
    print(f"relay memory per idle agent    {(held - empty) / opts.agents:.1f} KiB")
    print(f"relay CPU while they idle      {100 * cpu / opts.idle:.2f} % of one core over {opts.idle} s")
    for round, rss in enumerate(replaced, 1):
        print(f"after {round} replacement(s)       {(rss - empty) / opts.agents:.1f} KiB per idle agent")
    if opts.restart:
        print(f"online again after a restart   {opts.agents} in {back:.1f} s")


def all_online(port, env, agents, started, limit):
    """Seconds from `started` until the relay lists `agents` online; gives up after `limit`."""
    count = 0
    while count < agents:
        time.sleep(1)
        count = online(port, env) or count
        if time.perf_counter() - started > limit:
            sys.exit(f"only {count} of {agents} agents online")
    return time.perf_counter() - started

if __name__ == "__main__":
    main()
