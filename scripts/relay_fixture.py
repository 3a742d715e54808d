"""What the benchmark scripts share: release binaries, free ports, and a relay store with a user
allowed everything."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def build(*packages):
    args = [arg for package in packages for arg in ("-p", package)]
    subprocess.run(["cargo", "build", "--release", "-q", *args], cwd=ROOT, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class Store:
    """A fresh relay store in a temporary folder, with user `bench` allowed everything and its
    token in `env` (`SESSION_TOKEN`), beside the store's path (`SESSION_RELAY_DB`). As a context,
    it ends the processes it spawned and removes the folder on the way out."""

    def __init__(self, prefix):
        self.procs = []
        self.state = tempfile.mkdtemp(prefix=prefix)
        self.env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"),
                        SESSION_RELAY_DB=os.path.join(self.state, "relay.db"))
        self.admin("user", "add", "bench")
        policy = os.path.join(self.state, "all.json")
        with open(policy, "w") as f:
            f.write('{"Version": "1", "Statement": {"Effect": "Allow", "Action": "session:*", "Resource": "*"}}')
        self.admin("policy", "put", "all", policy)
        self.admin("policy", "attach", "all", "bench")
        self.env["SESSION_TOKEN"] = self.admin("token", "create", "bench", "--expires-in", "1h")

    def admin(self, *args):
        return subprocess.run([f"{BIN}/session-relay", "admin", *args], env=self.env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def spawn(self, argv, quiet=False, **env):
        """Starts a process with the store's environment and `env` on top; `quiet`: its output
        goes nowhere."""
        output = subprocess.DEVNULL if quiet else None
        proc = subprocess.Popen(argv, env=dict(self.env, **env), stdout=output, stderr=output)
        self.procs.append(proc)
        return proc

    def __enter__(self):
        return self

    def __exit__(self, *_):
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait()
        shutil.rmtree(self.state, ignore_errors=True)
