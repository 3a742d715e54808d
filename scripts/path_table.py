#!/usr/bin/env python3
"""Throughput and keystroke round trip of one TCP path through each kind of hop, side by side.

Every path ends at the same two servers on loopback: an iperf3 server (throughput, one stream)
and a one-byte echo server (round trip). The paths: direct TCP; two chained socat hops;
`ssh -L` (one hop) and `ssh -J` (a bastion: two hops) against an sshd started here; and a port
forwarded by session-client through relay and agent, once with the relay's default threads
(one per core) and once with `--threads 1`. Prints one row per path, then the
context switches each of this project's processes took per round trip (from /proc): a process
that sleeps between the two directions takes two.

Needs iperf3, socat and OpenSSH's client and server (Debian: iperf3 socat openssh-client
openssh-server), and root for sshd.

    python3 scripts/path_table.py [--seconds 5] [--round-trips 2000]
"""

import argparse
import json
import os
import socket
import subprocess
import threading
import time

from relay_fixture import BIN, Store, build, free_port, wait_for_port


def echo_server():
    """A server that echoes each byte back; returns its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def serve(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := conn.recv(64):
            conn.sendall(data)
        conn.close()

    def accept():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]


def round_trips(port, count):
    """Microseconds of `count` one-byte round trips through `port`: (p50, p99)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for i in range(count + 50):
            start = time.perf_counter()
            s.sendall(b"k")
            s.recv(1)
            if i >= 50:  # the first ones warm the path up
                times.append((time.perf_counter() - start) * 1e6)
    times.sort()
    return times[len(times) // 2], times[len(times) * 99 // 100]


def throughput(port, seconds, reverse=False):
    """MB/s of one iperf3 stream through `port`: from this end to the server's, or with
    `reverse` from the server's end to this one."""
    run = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J",
                          *(["-R"] if reverse else [])],
                         capture_output=True, text=True, check=True)
    result = json.loads(run.stdout)
    if "error" in result:
        raise SystemExit(f"iperf3 through port {port}: {result['error']}")
    return result["end"]["sum_received"]["bits_per_second"] / 8 / 1e6


def listening(port, timeout=10):
    """Waits until something listens on 127.0.0.1:`port`, without connecting: a connection
    through a hop would reach iperf3's server, which waits on it as the start of a test."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open("/proc/net/tcp") as f:
            # Columns: slot, local address (hex IP:port), remote address, state (0A: LISTEN).
            if any(fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A"
                   for fields in (line.split() for line in f.readlines()[1:])):
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def switches(pid):
    """Context switches of every thread of `pid` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def forward_path(store, targets, **env):
    """Relay, agent and one `session-client forward` per target port, on `store`; returns the
    local port of each target and the three processes."""
    relay_port = free_port()
    relay_url = f"ws://127.0.0.1:{relay_port}"
    code = store.admin("activation", "create")
    relay = store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{relay_port}"], quiet=True, **env)
    wait_for_port(relay_port)
    agent = store.spawn([f"{BIN}/session-agent", "--relay", relay_url, "--name", "bench", "--allow-root",
                         "--key-file", os.path.join(store.state, "agent.key"), "--activation-code", code],
                        quiet=True)
    time.sleep(0.5)
    local = {target: free_port() for target in targets}
    clients = [store.spawn([f"{BIN}/session-client", "--relay", relay_url, "forward", "bench",
                            f"{port}:127.0.0.1:{target}"], quiet=True) for target, port in local.items()]
    for port in local.values():
        listening(port)
    # The echo's client: the one whose switches count.
    return local, {"client": clients[-1], "relay": relay, "agent": agent}


def sshd(store, port):
    """Starts an sshd on loopback that lets this user in with a key made here; returns the
    options an ssh client needs."""
    state = store.state
    host_key, user_key = os.path.join(state, "host_key"), os.path.join(state, "user_key")
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    authorized = os.path.join(state, "authorized_keys")
    with open(user_key + ".pub") as public, open(authorized, "w") as out:
        out.write(public.read())
    os.chmod(authorized, 0o600)
    config = os.path.join(state, "sshd_config")
    with open(config, "w") as f:
        # Also on ::1: the bastion path jumps through one address to the other, as ssh
        # refuses a jump to the host it jumps from.
        f.write(f"ListenAddress 127.0.0.1\nListenAddress ::1\nPort {port}\nHostKey {host_key}\n"
                f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\nUsePAM no\n"
                f"PermitRootLogin prohibit-password\nPidFile {state}/sshd.pid\n"
                # scp speaks SFTP since OpenSSH 9.0.
                "Subsystem sftp internal-sftp\n"
                # The keys live under /tmp, which is not root's alone.
                "StrictModes no\n")
    os.makedirs("/run/sshd", exist_ok=True)
    store.spawn(["/usr/sbin/sshd", "-D", "-f", config])
    wait_for_port(port)
    return ["-i", user_key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-N"]


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--seconds", type=int, default=5, help="of each iperf3 run")
    args.add_argument("--round-trips", type=int, default=2000)
    opts = args.parse_args()

    build("session-relay", "session-agent", "session-client")
    iperf_port, echo_port = free_port(), echo_server()
    user = os.environ.get("USER", "root")
    with Store("path-table-") as store:
        store.spawn(["iperf3", "-s", "-p", str(iperf_port)], quiet=True)
        wait_for_port(iperf_port)

        # Each path: a name, for each target port the local port that reaches it, and for this
        # project's paths the processes whose context switches are counted.
        paths = [("direct TCP", {iperf_port: iperf_port, echo_port: echo_port})]

        # Two socat hops, the baseline; three, as many processes as this project's path
        # crosses (client, relay, agent).
        for hops, name in ((2, "two chained socat hops"), (3, "three chained socat hops")):
            socat = {}
            for target in (iperf_port, echo_port):
                upstream = target
                for _ in range(hops):
                    port = free_port()
                    # iperf3 ends its streams abruptly: socat's complaints are not wanted here.
                    store.spawn(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,nodelay",
                                 f"TCP:127.0.0.1:{upstream},nodelay"], quiet=True)
                    listening(port)
                    upstream = port
                socat[target] = upstream
            paths.append((name, socat))

        ssh_port = free_port()
        ssh = ["ssh", *sshd(store, ssh_port)]
        for name, jump in (("ssh -L, one hop", []), ("ssh -J (a bastion), two hops",
                                                     ["-J", f"{user}@[::1]:{ssh_port}"])):
            local = {target: free_port() for target in (iperf_port, echo_port)}
            forwards = [arg for target, port in local.items() for arg in ("-L", f"{port}:127.0.0.1:{target}")]
            # The jump host's connection takes the same options: one config for both hops.
            config = os.path.join(store.state, "ssh_config")
            with open(config, "w") as f:
                f.write("StrictHostKeyChecking no\nUserKnownHostsFile /dev/null\nLogLevel ERROR\n"
                        f"IdentityFile {os.path.join(store.state, 'user_key')}\n")
            store.spawn([*ssh, "-F", config, *jump, *forwards, "-p", str(ssh_port), f"{user}@127.0.0.1"])
            for port in local.values():
                wait_for_port(port)
            paths.append((name, local))

        targets = (iperf_port, echo_port)
        local, procs = forward_path(store, targets)
        paths.append(("client -> relay -> agent (forward)", local, procs))
        with Store("path-table-") as single:
            local, procs = forward_path(single, targets, SESSION_RELAY_THREADS="1")
            paths.append(("the same, relay on one worker thread", local, procs))

            print(f"{'path':<38} {'MB/s':>7} {'RTT p50':>9} {'RTT p99':>9}")
            counted = []
            for name, ports, *ours in paths:
                procs = ours[0] if ours else {}
                rate = throughput(ports[iperf_port], opts.seconds)
                before = {k: switches(p.pid) for k, p in procs.items()}
                p50, p99 = round_trips(ports[echo_port], opts.round_trips)
                if procs:
                    # Warm-up included: round_trips makes 50 more than it times.
                    each = {k: (switches(p.pid) - before[k]) / (opts.round_trips + 50) for k, p in procs.items()}
                    counted.append((name, each))
                print(f"{name:<38} {rate:7.0f} {p50:7.0f} us {p99:7.0f} us")
            print("\ncontext switches per round trip")
            for name, each in counted:
                print(f"{name:<38} " + ", ".join(f"{k} {v:.1f}" for k, v in each.items()))


if __name__ == "__main__":
    main()
