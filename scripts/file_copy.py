#!/usr/bin/env python3
"""`session-client cp` of one large file each way through relay and agent, side by side with a
forwarded port's throughput on the same path and with `scp` over `ssh -J` (two hops, the same
topology), and a resume cut at half way. Prints one row per transfer, with the peak memory of
each process involved.

Needs OpenSSH's client and server and iperf3 (Debian: openssh-client openssh-server iperf3), and
root for sshd. Everything listens on 127.0.0.1 (and ::1, for the bastion hop).

    python3 scripts/file_copy.py [--size-mib 1024]
"""

import argparse
import hashlib
import json
import os
import subprocess
import time

from path_table import sshd, throughput
from relay_fixture import BIN, Store, build, free_port, wait_for_port


def make_file(path, size):
    """`size` bytes that do not compress, written in 4 MiB pieces."""
    block = os.urandom(4 << 20)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            f.write(piece)
            written += len(piece)
            block = block[1:] + block[:1]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_rss_kib(root):
    """The resident memory of `root` and its descendants now, KiB."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def timed(argv, env):
    """Runs `argv`; returns (seconds, the peak resident memory of it and its children in KiB,
    sampled every 20 ms: rusage's figure would count the fork from this Python process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_kib(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.read().decode()}")
    return elapsed, peak


def peak_kib(pid):
    """A running process's peak resident memory (VmHWM), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--size-mib", type=int, default=1024)
    args.add_argument("--seconds", type=int, default=5, help="of the iperf3 run")
    opts = args.parse_args()
    size = opts.size_mib << 20

    build("session-relay", "session-agent", "session-client")
    user = os.environ.get("USER", "root")
    with Store("file-copy-") as store:
        data = os.path.join(store.state, "data")
        os.makedirs(data)
        source = os.path.join(data, "source.bin")
        make_file(source, size)
        digest = sha256(source)

        relay_port, iperf_port = free_port(), free_port()
        relay_url = f"ws://127.0.0.1:{relay_port}"
        code = store.admin("activation", "create")
        relay = store.spawn([f"{BIN}/session-relay", "--listen", f"127.0.0.1:{relay_port}"], quiet=True)
        wait_for_port(relay_port)
        agent = store.spawn([f"{BIN}/session-agent", "--relay", relay_url, "--name", "bench", "--allow-root",
                             "--key-file", os.path.join(store.state, "agent.key"), "--activation-code", code],
                            quiet=True)
        client = [f"{BIN}/session-client", "--relay", relay_url]
        env = dict(store.env, RUST_LOG="warn")
        for _ in range(100):
            if subprocess.run([*client, "exec", "bench", "true"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)

        rows = []

        def row(name, seconds, rss_kib, check=None):
            rate = size / seconds / 1e6
            rows.append((name, rate, seconds, rss_kib, check))

        # cp, both ways.
        down = os.path.join(store.state, "down.bin")
        seconds, rss = timed([*client, "cp", f"bench:{source}", down], env)
        row("session-client cp, download", seconds, rss, sha256(down) == digest)
        up = os.path.join(data, "up.bin")
        seconds, rss = timed([*client, "cp", down, f"bench:{up}"], env)
        row("session-client cp, upload", seconds, rss, sha256(up) == digest)
        os.remove(up)

        # A forwarded port on the same path.
        store.spawn(["iperf3", "-s", "-p", str(iperf_port)], quiet=True)
        wait_for_port(iperf_port)
        local = free_port()
        store.spawn([*client, "forward", "bench", f"{local}:127.0.0.1:{iperf_port}"], quiet=True)
        wait_for_port(local)
        # The probe's own connection reaches iperf3's server through the agent a moment later;
        # iperf3 runs one test at a time and would take it for part of the next one.
        time.sleep(1)
        # Both directions: a download moves bytes from the agent's end to the client's.
        forward_up = throughput(local, opts.seconds)
        time.sleep(1)
        forward_down = throughput(local, opts.seconds, reverse=True)

        # scp over a bastion: two ssh hops, as client -> relay -> agent is.
        ssh_port = free_port()
        ssh_options = sshd(store, ssh_port)[:-1]  # without -N
        config = os.path.join(store.state, "ssh_config")
        with open(config, "w") as f:
            f.write("StrictHostKeyChecking no\nUserKnownHostsFile /dev/null\nLogLevel ERROR\n"
                    f"IdentityFile {os.path.join(store.state, 'user_key')}\n")
        scp = ["scp", "-q", "-F", config, *ssh_options, "-J", f"{user}@[::1]:{ssh_port}", "-P", str(ssh_port)]
        scp_down = os.path.join(store.state, "scp-down.bin")
        seconds, rss = timed([*scp, f"{user}@127.0.0.1:{source}", scp_down], env)
        row("scp over ssh -J, download", seconds, rss, sha256(scp_down) == digest)
        scp_up = os.path.join(data, "scp-up.bin")
        seconds, rss = timed([*scp, scp_down, f"{user}@127.0.0.1:{scp_up}"], env)
        row("scp over ssh -J, upload", seconds, rss, sha256(scp_up) == digest)

        # Resume: a download cut at half way, then continued.
        cut = os.path.join(store.state, "cut.bin")
        partial = os.path.join(store.state, ".cut.bin.session-partial")
        proc = subprocess.Popen([*client, "cp", f"bench:{source}", cut], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and (not os.path.exists(partial) or os.path.getsize(partial) < size // 2):
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        held = os.path.getsize(partial) if os.path.exists(partial) else 0
        start = time.perf_counter()
        subprocess.run([*client, "cp", "--resume", f"bench:{source}", cut], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        resumed_seconds = time.perf_counter() - start
        audit = json.loads(store.admin("audit", "--json"))["records"]
        reads = [r for r in audit if (r.get("kind") or "").startswith("file read:") and r.get("file_outcome") == "ok"]
        resent = reads[-1].get("bytes_from_instance") if reads else None

        cut_whole = os.path.exists(cut) and sha256(cut) == digest
        relay_rss, agent_rss = peak_kib(relay.pid), peak_kib(agent.pid)

    print(f"{'transfer':<32} {'MB/s':>7} {'seconds':>8} {'peak RSS':>10}  hashes equal")
    for name, rate, seconds, rss, check in rows:
        print(f"{name:<32} {rate:7.0f} {seconds:8.2f} {rss / 1024:7.1f} MiB  {check}")
    print(f"{'forwarded port, client to agent':<32} {forward_up:7.0f}")
    print(f"{'forwarded port, agent to client':<32} {forward_down:7.0f}")
    down, up = rows[0][1], rows[1][1]
    print(f"cp against the forwarded port in the same direction: download {down / forward_down:.2f}x, "
          f"upload {up / forward_up:.2f}x")
    print(f"relay peak RSS {relay_rss / 1024:.1f} MiB, agent peak RSS {agent_rss / 1024:.1f} MiB "
          f"(over the whole run)")
    print(f"resume: cut with {held} of {size} bytes held; the continued copy moved {resent} bytes "
          f"in {resumed_seconds:.2f} s; hashes equal: {cut_whole}")


if __name__ == "__main__":
    main()
