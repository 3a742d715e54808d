"""What the benchmark scripts share: release binaries, free ports, a relay store with a user
allowed everything, and a PostgreSQL server of their own."""

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

    def __init__(self, prefix, db=None):
        """`db`: a PostgreSQL URL to keep the store in instead of an SQLite file."""
        self.procs = []
        self.state = tempfile.mkdtemp(prefix=prefix)
        self.env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"),
                        SESSION_RELAY_DB=db or os.path.join(self.state, "relay.db"))
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


class Postgres:
    """A PostgreSQL server of Debian's package in a temporary folder, on a Unix socket there and no
    TCP port, run as the package's `postgres` user when this is root (PostgreSQL refuses root).
    As a context, it stops the server and removes the folder on the way out."""

    def __init__(self):
        bins = sorted(d for d in (os.path.join("/usr/lib/postgresql", v, "bin")
                                  for v in os.listdir("/usr/lib/postgresql")) if os.path.exists(os.path.join(d, "initdb")))
        if not bins:
            sys.exit("no PostgreSQL server: apt-get install postgresql")
        self.bin = bins[-1]
        self.dir = tempfile.mkdtemp(prefix="bench-postgres-")
        self.socket = os.path.join(self.dir, "socket")
        os.mkdir(self.socket)
        self.root = os.geteuid() == 0
        if self.root:
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        data = os.path.join(self.dir, "data")
        self.run("initdb", "--auth=trust", "--username=postgres", "--no-sync", "--locale=C", "-D", data)
        self.run("pg_ctl", "start", "-w", "-D", data, "-l", os.path.join(self.dir, "log"),
                 "-o", f"-c listen_addresses='' -k {self.socket} -c max_connections=200")
        self.data = data

    def run(self, program, *args):
        argv = [os.path.join(self.bin, program), *args]
        if self.root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)

    def database(self, name):
        """The URL of a new database `name`."""
        self.run("createdb", "-h", self.socket, "-U", "postgres", name)
        return f"postgresql:///{name}?user=postgres&host={self.socket}"

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.run("pg_ctl", "stop", "-m", "fast", "-D", self.data)
        shutil.rmtree(self.dir, ignore_errors=True)
