#!/usr/bin/env python3
"""Throughput of a forwarded port through the relay on loopback, beside plain loopback TCP.

Builds the release binaries, starts a relay, an agent and `session-client forward` as separate
processes, and pushes bytes to a sink server twice: directly (the baseline), and through the
forwarded port (client -> relay -> agent -> sink). Prints MB/s for each.

    python3 scripts/forward_throughput.py [--mb 2000] [--runs 3]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sink_server():
    """Accepts connections and reads them to the end; returns (port, results list)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    results = []

    def serve():
        while True:
            conn, _ = server.accept()
            total = 0
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
            results.append(total)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], results


def push(port, total):
    """Sends `total` bytes to 127.0.0.1:port and waits until the sink has read them all."""
    block = os.urandom(1 << 20)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        sent = 0
        while sent < total:
            s.sendall(block)
            sent += len(block)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(120)
        s.recv(1)  # the far end closes once the sink has read everything
    return total / (time.perf_counter() - start) / 1e6


def wait_for_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--mb", type=int, default=2000, help="megabytes per run")
    args.add_argument("--runs", type=int, default=3)
    opts = args.parse_args()
    total = opts.mb * (1 << 20)

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "session-relay", "-p", "session-agent",
                    "-p", "session-client"], cwd=ROOT, check=True)
    relay_port, local_port = free_port(), free_port()
    relay_url = f"ws://127.0.0.1:{relay_port}"
    state = tempfile.mkdtemp(prefix="forward-throughput-")
    db = os.path.join(state, "relay.db")
    env = dict(os.environ, RUST_LOG="warn", SESSION_RELAY_DB=db)

    def admin(*args):
        return subprocess.run([f"{BIN}/session-relay", "admin", *args], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    # A user allowed everything, and an activation code for the agent.
    admin("user", "add", "bench")
    policy = os.path.join(state, "all.json")
    with open(policy, "w") as f:
        f.write('{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:*", "Resource": "*"}}')
    admin("policy", "put", "all", policy)
    admin("policy", "attach", "all", "bench")
    env["SESSION_TOKEN"] = admin("token", "create", "bench", "--expires-in", "1h")
    code = admin("activation", "create")
    procs = []
    try:
        procs.append(subprocess.Popen([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{relay_port}"], env=env))
        wait_for_port(relay_port)
        procs.append(subprocess.Popen([f"{BIN}/session-agent", "--relay", relay_url, "--name", "bench",
                                       "--allow-root", "--key-file", os.path.join(state, "agent.key"),
                                       "--activation-code", code], env=env))
        time.sleep(0.5)
        sink_port, _ = sink_server()
        procs.append(subprocess.Popen([f"{BIN}/session-client", "--relay", relay_url, "forward", "bench",
                                       f"{local_port}:127.0.0.1:{sink_port}"], env=env))
        wait_for_port(local_port)

        print(f"{opts.mb} MiB per run, {opts.runs} runs, MB/s (best / median)")
        for name, port in (("loopback TCP (baseline)", sink_port), ("forwarded port via relay", local_port)):
            rates = sorted(push(port, total) for _ in range(opts.runs))
            print(f"{name:<28} {rates[-1]:8.0f} / {rates[len(rates) // 2]:8.0f}")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
