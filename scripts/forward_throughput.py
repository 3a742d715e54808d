#!/usr/bin/env python3
"""Throughput of a forwarded port through the relay on loopback, beside plain loopback TCP.

Builds the release binaries, starts a relay, an agent and `session-client forward` as separate
processes, and pushes bytes to a sink server twice: directly (the baseline), and through the
forwarded port (client -> relay -> agent -> sink). Prints MB/s for each.

    python3 scripts/forward_throughput.py [--mb 2000] [--runs 3]
"""

import argparse
import os
import socket
import threading
import time

from relay_fixture import BIN, Store, build, free_port, wait_for_port


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


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--mb", type=int, default=2000, help="megabytes per run")
    args.add_argument("--runs", type=int, default=3)
    opts = args.parse_args()
    total = opts.mb * (1 << 20)

    build("session-relay", "session-agent", "session-client")
    relay_port, local_port = free_port(), free_port()
    relay_url = f"ws://127.0.0.1:{relay_port}"
    with Store("forward-throughput-") as store:
        code = store.admin("activation", "create")
        store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{relay_port}"])
        wait_for_port(relay_port)
        store.spawn([f"{BIN}/session-agent", "--relay", relay_url, "--name", "bench", "--allow-root",
                     "--key-file", os.path.join(store.state, "agent.key"), "--activation-code", code])
        time.sleep(0.5)
        sink_port, _ = sink_server()
        store.spawn([f"{BIN}/session-client", "--relay", relay_url, "forward", "bench",
                     f"{local_port}:127.0.0.1:{sink_port}"])
        wait_for_port(local_port)

        print(f"{opts.mb} MiB per run, {opts.runs} runs, MB/s (best / median)")
        for name, port in (("loopback TCP (baseline)", sink_port), ("forwarded port via relay", local_port)):
            rates = sorted(push(port, total) for _ in range(opts.runs))
            print(f"{name:<28} {rates[-1]:8.0f} / {rates[len(rates) // 2]:8.0f}")

if __name__ == "__main__":
    main()
