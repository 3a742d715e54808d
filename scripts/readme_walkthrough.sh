#!/usr/bin/env bash
# Runs the README's walkthrough ("Running relay, agent and client separately") as written, so
# that it cannot drift from what the programs do: each fenced block after a
# `<!-- walkthrough -->` line is one terminal's commands, run in order in a temporary directory.
#
# What differs from a person at four terminals, and why:
# - The relay's and the agent's blocks run in the background (their programs run until
#   stopped); the script waits until the relay listens and until alice lists web-1 online.
# - `cargo build --release` is left out of terminal 1: the script builds beforehand, in the
#   checkout, and the temporary directory's `target/release` is a link to the binaries:
#   target/release when WALKTHROUGH_PROFILE=release, else target/debug (the tests built it
#   already; a release build would add minutes to CI for the same code paths).
# - `--user deploy`: kept where a user deploy exists; else, as root, the user in
#   $SESSION_TEST_USER (session-e2e, as `.ci/run` makes); not as root, left out (the agent can
#   only start sessions as the user it runs as).
# - Terminal 1's second block runs in a new shell: it is given the directory the first changed
#   to and the first's `R=` line.
# - Terminal 3's web page (python3's http.server on 127.0.0.1:8000) is what alice's forward
#   reaches: the script checks that her curl through the forward printed it, that the server
#   answered that request, and that after `kill %1` nothing listens on 127.0.0.1:8080 any more.
#   The fixed ports (7443, 8000, 8080) must be free on 127.0.0.1, and curl and python3 at hand.
# - Every block runs with stdin from /dev/null (`connect` then runs a shell without a terminal,
#   which ends at once) and under `bash -e`, so a failing command fails the walkthrough.
# Exits non-zero on any failure, after showing the programs' output; kills what it started.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
profile=${WALKTHROUGH_PROFILE:-debug}
started=$SECONDS

if [ "$profile" = release ]; then
  cargo build --release --manifest-path "$repo/Cargo.toml" -p session-relay -p session-agent -p session-client
else
  cargo build --manifest-path "$repo/Cargo.toml" -p session-relay -p session-agent -p session-client
fi

# Something listening on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "the walkthrough runs $tool: install it"; exit 1; }
done
for port in 7443 8000 8080; do
  if listening "$port"; then
    echo "something already listens on 127.0.0.1:$port, which the walkthrough uses"
    exit 1
  fi
done

work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do
    # Each block runs in a process group of its own (setsid): end the group, its programs with it.
    kill -- "-$pid" 2>/dev/null || true
  done
  if [ "$rc" != 0 ]; then
    for log in "$work"/*.log; do
      [ -e "$log" ] && printf '\n--- %s\n' "$(basename "$log")" && tail -n 40 "$log"
    done
    echo "walkthrough: FAILED"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The blocks, one file each: block-1.sh, block-2.sh, ...
awk -v dir="$work" '
  /^<!-- walkthrough -->$/ { marked = 1; next }
  marked && /^```/ { marked = 0; inside = 1; n++; next }
  inside && /^```/ { inside = 0; next }
  inside { print > (dir "/block-" n ".sh") }
' "$repo/README.md"
blocks=$(find "$work" -name 'block-*.sh' | wc -l)
[ "$blocks" = 5 ] || { echo "expected 5 walkthrough blocks in README.md, found $blocks"; exit 1; }

sed -i '/^cargo build --release$/d' "$work/block-1.sh"
if id -u deploy >/dev/null 2>&1; then
  :
elif [ "$(id -u)" = 0 ]; then
  user=${SESSION_TEST_USER:-session-e2e}
  id -u "$user" >/dev/null || { echo "no user deploy nor $user for the agent's sessions"; exit 1; }
  sed -i "s/--user deploy/--user $user/" "$work/block-3.sh"
else
  sed -i 's/--user deploy//' "$work/block-3.sh"
fi
{ echo 'cd target/walkthrough'; grep -E '^R=' "$work/block-1.sh"; cat "$work/block-5.sh"; } >"$work/block-5.run"
mv "$work/block-5.run" "$work/block-5.sh"

mkdir -p "$work/target"
# Cargo's target directory, wherever CARGO_TARGET_DIR puts it.
ln -s "${CARGO_TARGET_DIR:-$repo/target}/$profile" "$work/target/release"
cd "$work"

# A terminal's block in the foreground: it must succeed within two minutes.
run() {
  echo "== terminal block $1"
  if ! timeout 120 setsid bash -e "$work/block-$1.sh" </dev/null >"$work/block-$1.log" 2>&1; then
    echo "block $1 failed"
    exit 1
  fi
}

# A terminal's block whose program runs on: in the background, in a process group of its own.
start() {
  echo "== terminal block $1 (in the background)"
  setsid bash -e "$work/block-$1.sh" </dev/null >"$work/block-$1.log" 2>&1 &
  pids+=($!)
}

# Waits up to 30 s for `check` to succeed.
await() {
  local what=$1
  shift
  for _ in $(seq 300); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "timed out waiting until $what"
  exit 1
}

client() {
  SESSION_TOKEN=$(cat target/walkthrough/alice.token) target/release/session-client \
    --relay wss://127.0.0.1:7443 --ca-file target/walkthrough/tls/ca.pem "$@"
}
web_1_online() { client list | grep -qE '^web-1 +online'; }

run 1
start 2
await "the relay listens" grep -q 'relay listening' "$work/block-2.log"
start 3
await "web-1's page is served on its loopback" curl -fsS http://127.0.0.1:8000/index.html
await "web-1 is online" web_1_online
run 4

alice="$work/block-4.log"
ended() { grep -q 'the session ended' "$alice"; }
# The exec that alice's terminate ended was in the background: its last words may come later.
await "the terminated exec says so" ended
check() {
  grep -qE "$1" "$alice" || { echo "alice's terminal lacks: $2"; exit 1; }
}
check '^web-1 +online' "list showing web-1 online"
check 'Mounted on' "df -h / run on web-1"
check '^HELLO$' "HELLO from tr a-z A-Z"
check 'session alice-[0-9a-f]+ terminated' "terminate's confirmation"
check 'terminated by alice' "the ended exec naming who ended it"
# The forward: the page came through it, and the server on web-1's side answered its request
# (for `/`: the probe above asked for `/index.html`).
check '^hello from web-1$' "web-1's page, fetched by curl through the forward"
if grep -q 'session-client: forward from' "$alice"; then
  echo "the forward reported a failed connection"
  exit 1
fi
grep -q '"GET / HTTP/1.1" 200' "$work/block-3.log" || { echo "web-1's web server saw no request"; exit 1; }
# `kill %1` stopped it: nothing listens on its port any more.
not_listening() { ! listening "$1"; }
await "the forward stopped listening on 127.0.0.1:8080" not_listening 8080

run 5
grep -q '"event":"session"' "$work/block-5.log" || { echo "the audit shows no session"; exit 1; }
printf 'walkthrough: ok, in %s s\n' "$((SECONDS - started))"
