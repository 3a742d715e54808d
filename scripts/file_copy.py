#!/usr/bin/env python3
"""`session-client cp` of one large file each way through relay and agent, side by side with a
forwarded port's throughput on the same path, with the same file copied through that port by
programs that do what `cp` does at each end (read, SHA-256, write, fsync), and with `scp` over
`ssh -J` (two hops, the same topology), each the fastest of a few runs; then a resume cut at
half way. Prints one row per transfer with the peak memory of each process involved and the
CPU time each part of the path spent per GiB, and what the disk and SHA-256 alone manage here.

Needs OpenSSH's client and server and iperf3 (Debian: openssh-client openssh-server iperf3), and
root for sshd. Everything listens on 127.0.0.1 (and ::1, for the bastion hop). The files live
in a temporary folder: `TMPDIR=/dev/shm` keeps them in memory, off the disk.

    python3 scripts/file_copy.py [--size-mib 1024]
"""

import argparse
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import time

from path_table import listening, sshd, throughput
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


TICK = os.sysconf("SC_CLK_TCK")


def timed(argv, env):
    """Runs `argv`; returns (seconds, the peak resident memory of it and its children in KiB,
    sampled every 20 ms: rusage's figure would count the fork from this Python process, and its
    CPU seconds, user and system, with its children's)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while True:
        # wait4 rather than poll: it reaps the process with its resource usage.
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss_kib(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.read().decode()}")
    return elapsed, peak, usage.ru_utime + usage.ru_stime


def cpu_seconds(pid):
    """CPU seconds, user and system, that `pid` spent so far, with its children reaped."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14 to 17 of stat(5), counting from the pid.
    return sum(int(x) for x in fields[11:15]) / TICK


def children_cpu():
    """CPU seconds of this process's children reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pump(fill, drain):
    """Moves what `fill` puts in a buffer to `drain` until `fill` gives nothing; the SHA-256."""
    digest, buf = hashlib.sha256(), bytearray(1 << 20)
    while read := fill(buf):
        view = memoryview(buf)[:read]
        digest.update(view)
        drain(view)
    return digest.hexdigest()


def send(sock, path):
    """What a copy must do at the sending end: read the file, hash it, send it."""
    with open(path, "rb", buffering=0) as f:
        digest = pump(f.readinto, sock.sendall)
    sock.shutdown(socket.SHUT_WR)
    return digest


def receive(sock, path):
    """And at the receiving end: write what comes, hash it, fsync the file."""
    # Buffered: its write takes all it is given, as a raw file's need not.
    with open(path, "wb") as f:
        digest = pump(sock.recv_into, f.write)
        f.flush()
        os.fsync(f.fileno())
    return digest


def end(role, port, direction, path):
    """One end of a copy through a forwarded port (`--end`): listens on or connects to
    127.0.0.1:`port`, sends or receives `path`, and prints the SHA-256 of what it moved."""
    if role == "listen":
        with socket.create_server(("127.0.0.1", int(port))) as server:
            sock, _ = server.accept()
    else:
        sock = socket.create_connection(("127.0.0.1", int(port)))
    with sock:
        print((send if direction == "send" else receive)(sock, path))


def peak_kib(pid):
    """A running process's peak resident memory (VmHWM), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def disk_rate(folder, size):
    """MB/s of writing `size` bytes in `folder` and fsyncing them, as each copy ends."""
    path, block = os.path.join(folder, "disk.bin"), os.urandom(4 << 20)
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for offset in range(0, size, len(block)):
            f.write(block[: size - offset])
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    os.remove(path)
    return size / elapsed / 1e6


def hash_rate(path, size):
    """MB/s of SHA-256 over `path`, from the page cache, on one core (OpenSSL's, as ring's)."""
    start = time.perf_counter()
    sha256(path)
    return size / (time.perf_counter() - start) / 1e6


def main():
    if sys.argv[1:2] == ["--end"]:
        return end(*sys.argv[2:6])
    args = argparse.ArgumentParser()
    args.add_argument("--size-mib", type=int, default=1024)
    args.add_argument("--seconds", type=int, default=5, help="of the iperf3 run")
    args.add_argument("--runs", type=int, default=3, help="of each copy, the fastest shown")
    opts = args.parse_args()
    size = opts.size_mib << 20
    gib = size / (1 << 30)

    build("session-relay", "session-agent", "session-client")
    user = os.environ.get("USER", "root")
    with Store("file-copy-") as store:
        data = os.path.join(store.state, "data")
        os.makedirs(data)
        source = os.path.join(data, "source.bin")
        disk = disk_rate(data, size)
        make_file(source, size)
        digest = sha256(source)
        hashing = hash_rate(source, size)

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

        def row(name, runs):
            """`runs`: (seconds, peak RSS in KiB, hashes equal, CPU) of each run, the CPU seconds
            of relay, agent (with its file workers), client and the ends (the processes that
            read and write the file, or iperf3), or None. The fastest run is shown."""
            seconds, _, _, cpu = min(runs, key=lambda run: run[0])
            rates = " ".join(f"{size / run[0] / 1e6:.0f}" for run in runs)
            rows.append((name, size / seconds / 1e6, seconds, max(run[1] for run in runs),
                         all(run[2] for run in runs), cpu, rates))

        def cpu_since(*pids):
            """A function that gives the CPU seconds each of `pids` spent from now to its call."""
            before = [cpu_seconds(pid) for pid in pids]

            def since():
                # The agent reaps a file worker once it exited: a moment after the client's end.
                time.sleep(0.2)
                return [cpu_seconds(pid) - then for pid, then in zip(pids, before)]
            return since

        # cp, both ways. Each copy writes a GiB the machine may have to find afresh (a virtual
        # machine's host can take back memory its guest freed): the best of a few runs counts.
        down, up = os.path.join(store.state, "down.bin"), os.path.join(data, "up.bin")
        runs = []
        for _ in range(opts.runs):
            if os.path.exists(down):
                os.remove(down)
            since = cpu_since(relay.pid, agent.pid)
            seconds, rss, cpu = timed([*client, "cp", f"bench:{source}", down], env)
            runs.append((seconds, rss, sha256(down) == digest, (*since(), cpu, 0)))
        row("session-client cp, download", runs)
        runs = []
        for _ in range(opts.runs):
            since = cpu_since(relay.pid, agent.pid)
            seconds, rss, cpu = timed([*client, "cp", down, f"bench:{up}"], env)
            runs.append((seconds, rss, sha256(up) == digest, (*since(), cpu, 0)))
            os.remove(up)
        row("session-client cp, upload", runs)

        # The same copies through a forwarded port: one process at each end reads or writes the
        # file and hashes it, as the file worker and `cp` do, with nothing else in between.
        forwarder_port, far = free_port(), free_port()
        forwarder = store.spawn([*client, "forward", "bench", f"{forwarder_port}:127.0.0.1:{far}"], quiet=True)
        # Not a connection: it would reach the far end, which takes only one.
        listening(forwarder_port)
        me = [sys.executable, os.path.abspath(__file__), "--end"]
        port_down, port_up = os.path.join(store.state, "port-down.bin"), os.path.join(data, "port-up.bin")
        # (row, what the far end does and with which file, what this end does, the copy made)
        for name, far_does, near_does, made in (
                ("download", ("send", source), ("receive", port_down), port_down),
                ("upload", ("receive", port_up), ("send", down), port_up)):
            runs = []
            for _ in range(opts.runs):
                far_end = subprocess.Popen([*me, "listen", str(far), *far_does], stdout=subprocess.PIPE, text=True)
                listening(far)
                since = cpu_since(relay.pid, agent.pid, forwarder.pid)
                seconds, rss, near_cpu = timed([*me, "connect", str(forwarder_port), *near_does], env)
                far_hash = far_end.stdout.read().strip()
                far_usage = os.wait4(far_end.pid, 0)[2]
                far_end.returncode = 0
                cpu = (*since(), near_cpu + far_usage.ru_utime + far_usage.ru_stime)
                runs.append((seconds, rss, far_hash == digest and sha256(made) == digest, cpu))
                os.remove(made)
            row(f"forwarded port, file {name}", runs)

        # A forwarded port on the same path, measured with iperf3.
        iperf = store.spawn(["iperf3", "-s", "-p", str(iperf_port)], quiet=True)
        wait_for_port(iperf_port)
        local = free_port()
        forward = store.spawn([*client, "forward", "bench", f"{local}:127.0.0.1:{iperf_port}"], quiet=True)
        wait_for_port(local)
        # The probe's own connection reaches iperf3's server through the agent a moment later;
        # iperf3 runs one test at a time and would take it for part of the next one.
        time.sleep(1)
        # Both directions: a download moves bytes from the agent's end to the client's.
        ports = []
        for name, reverse in (("client to agent", False), ("agent to client", True)):
            since, client_before = cpu_since(relay.pid, agent.pid, forward.pid, iperf.pid), children_cpu()
            rate = throughput(local, opts.seconds, reverse=reverse)
            relay_cpu, agent_cpu, forward_cpu, server_cpu = since()
            # iperf3's client is a child of this script, reaped by now.
            cpu = (relay_cpu, agent_cpu, forward_cpu, server_cpu + children_cpu() - client_before)
            # CPU per GiB over the bytes iperf3 moved in its seconds.
            moved_gib = rate * 1e6 * opts.seconds / (1 << 30)
            ports.append((f"forwarded port (iperf3), {name}", rate, tuple(c / moved_gib * gib for c in cpu)))
            time.sleep(1)
        forward_up, forward_down = ports[0][1], ports[1][1]

        # scp over a bastion: two ssh hops, as client -> relay -> agent is.
        ssh_port = free_port()
        ssh_options = sshd(store, ssh_port)[:-1]  # without -N
        config = os.path.join(store.state, "ssh_config")
        with open(config, "w") as f:
            f.write("StrictHostKeyChecking no\nUserKnownHostsFile /dev/null\nLogLevel ERROR\n"
                    f"IdentityFile {os.path.join(store.state, 'user_key')}\n")
        scp = ["scp", "-q", "-F", config, *ssh_options, "-J", f"{user}@[::1]:{ssh_port}", "-P", str(ssh_port)]
        scp_down = os.path.join(store.state, "scp-down.bin")
        runs = []
        for _ in range(opts.runs):
            if os.path.exists(scp_down):
                os.remove(scp_down)
            seconds, rss, _ = timed([*scp, f"{user}@127.0.0.1:{source}", scp_down], env)
            runs.append((seconds, rss, sha256(scp_down) == digest, None))
        row("scp over ssh -J, download", runs)
        scp_up = os.path.join(data, "scp-up.bin")
        runs = []
        for _ in range(opts.runs):
            seconds, rss, _ = timed([*scp, scp_down, f"{user}@127.0.0.1:{scp_up}"], env)
            runs.append((seconds, rss, sha256(scp_up) == digest, None))
            os.remove(scp_up)
        row("scp over ssh -J, upload", runs)
        os.remove(scp_down)

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

    def cpu_columns(cpu):
        if cpu is None:
            return ""
        per_gib = [c / gib for c in cpu]
        return " ".join(f"{c:6.2f}" for c in [*per_gib, sum(per_gib)])

    print(f"{'transfer':<40} {'MB/s':>5} {'seconds':>7} {'peak RSS':>10} {'hashes':>6}"
          f"   CPU s/GiB: {'relay':>6} {'agent':>6} {'client':>6} {'ends':>6} {'total':>6}   MB/s of each run")
    for name, rate, seconds, rss, check, cpu, rates in rows:
        print(f"{name:<40} {rate:5.0f} {seconds:7.2f} {rss / 1024:6.1f} MiB {str(check):>6}"
              f"              {cpu_columns(cpu) or ' ' * 34}   {rates}")
    for name, rate, cpu in ports:
        print(f"{name:<40} {rate:5.0f} {'':>7} {'':>10} {'':>6}              {cpu_columns(cpu)}")
    cp_down, cp_up, port_down, port_up = rows[0][1], rows[1][1], rows[2][1], rows[3][1]
    print("'ends': the processes that read and write the file (cp's file worker is in 'agent'), or iperf3")
    print(f"cp against iperf3 through the forwarded port, same direction: download "
          f"{cp_down / forward_down:.2f}x, upload {cp_up / forward_up:.2f}x")
    print(f"cp against the same copy through the forwarded port: download {cp_down / port_down:.2f}x, "
          f"upload {cp_up / port_up:.2f}x")
    print(f"this folder's disk: {disk:.0f} MB/s written and fsynced; SHA-256 on one core: {hashing:.0f} MB/s")
    print(f"relay peak RSS {relay_rss / 1024:.1f} MiB, agent peak RSS {agent_rss / 1024:.1f} MiB "
          f"(over the whole run)")
    print(f"resume: cut with {held} of {size} bytes held; the continued copy moved {resent} bytes "
          f"in {resumed_seconds:.2f} s; hashes equal: {cut_whole}")

if __name__ == "__main__":
    main()
