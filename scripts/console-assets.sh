#!/usr/bin/env bash
# Regenerates the browser console's generated files, which are committed so that building the
# relay needs neither npm nor a wasm toolchain:
#
#   session-relay/console/wasm/    session-proto in the browser: session-wasm built for wasm32,
#                                  then wasm-bindgen --target web
#   session-relay/console/vendor/  xterm.js and its addons, from the npm registry at the exact
#                                  versions of session-wasm/npm/package-lock.json
#
# Usage:
#   bash scripts/console-assets.sh           rebuild them in place
#   bash scripts/console-assets.sh --check   rebuild them into a temporary directory and fail,
#                                            listing the files, where the tree differs (CI)
#
# What it needs, and installs when missing: the rustup target wasm32-unknown-unknown,
# wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock (its glue and
# the crate must match), and npm. The build is reproducible: the same sources and toolchain give
# the same bytes in any checkout directory, on any machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONSOLE="$ROOT/session-relay/console"
NPM_DIR="$ROOT/session-wasm/npm"
# A target directory of its own: the size-optimised profile and the remapping flags below
# would otherwise invalidate the workspace's usual builds, and theirs this one.
TARGET_DIR="$ROOT/target/console-wasm"
WASM_TARGET="wasm32-unknown-unknown"

usage() {
  echo "usage: bash scripts/console-assets.sh [--check]" >&2
  exit 2
}

check=false
case "$#:${1:-}" in
  0:) ;;
  1:--check) check=true ;;
  *) usage ;;
esac

log() { echo "console-assets: $*" >&2; }

# The version of a package in Cargo.lock, which pins wasm-bindgen exactly.
locked_version() {
  awk -v name="$1" '
    $0 == "name = \"" name "\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' "$ROOT/Cargo.lock"
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx "$WASM_TARGET"; then
    log "adding the rustup target $WASM_TARGET"
    rustup target add "$WASM_TARGET"
  fi
}

# Prints the path of a wasm-bindgen CLI of exactly version $1, installing it if need be.
wasm_bindgen_cli() {
  local want="$1" cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin" candidate
  for candidate in "$(command -v wasm-bindgen || true)" "$cargo_bin/wasm-bindgen"; do
    if [[ -x "$candidate" && "$("$candidate" --version)" == "wasm-bindgen $want" ]]; then
      echo "$candidate"
      return
    fi
  done
  log "installing wasm-bindgen-cli $want (a few minutes, once)"
  # --locked: the CLI's own lock file, so that it builds the same everywhere.
  cargo install wasm-bindgen-cli --version "$want" --locked >&2
  echo "$cargo_bin/wasm-bindgen"
}

# session-wasm for the browser, into $1.
build_wasm() {
  local out="$1" version cli sysroot cargo_home registry flags
  version="$(locked_version wasm-bindgen)"
  [[ -n "$version" ]] || { log "no wasm-bindgen in Cargo.lock"; exit 1; }
  ensure_wasm_target
  cli="$(wasm_bindgen_cli "$version")"

  # No absolute path of this machine may reach the module (panic locations name source files):
  # the checkout, the registry's sources and the toolchain are renamed to fixed prefixes. When
  # several match, rustc applies the last, so the most specific come last.
  sysroot="$(rustc --print sysroot)"
  cargo_home="$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd)"
  flags=(
    "--remap-path-prefix=$ROOT=/session"
    "--remap-path-prefix=$sysroot=/rust"
    "--remap-path-prefix=$cargo_home=/cargo"
  )
  # The registry's directory name hashes where the index lives; keep it out too. Fetched
  # first, so that a fresh CARGO_HOME has the directories to name.
  cargo fetch --manifest-path "$ROOT/Cargo.toml" --locked --target "$WASM_TARGET" >&2
  for registry in "$cargo_home"/registry/src/*/; do
    if [[ -d "$registry" ]]; then
      flags+=("--remap-path-prefix=${registry%/}=/cargo/registry/src/crates")
    fi
  done

  log "building session-wasm for $WASM_TARGET"
  # The release profile, tuned here for size rather than in Cargo.toml, where it would apply
  # to the relay and the agent too. Flags from the environment are replaced, not added to:
  # they would make the bytes depend on who ran the script. The encoded form separates flags
  # by 0x1f, so that a checkout path with spaces stays one flag.
  env -u RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS \
    CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${flags[*]}")" \
    CARGO_TARGET_DIR="$TARGET_DIR" \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
    CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    CARGO_PROFILE_RELEASE_PANIC=abort \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_INCREMENTAL=false \
    cargo build --manifest-path "$ROOT/Cargo.toml" --locked --release -p session-wasm --target "$WASM_TARGET"

  mkdir -p "$out"
  "$cli" --target web --no-typescript --out-dir "$out" \
    "$TARGET_DIR/$WASM_TARGET/release/session_wasm.wasm"
}

# Copies a UMD file without its source map comment: the maps are not shipped.
copy_js() {
  sed -e '/^\/\/# sourceMappingURL=[^ ]*$/d' "$1" >"$2"
}

# xterm.js and its addons, into $1/xterm, with a README that says what each file is.
vendor_xterm() {
  local out="$1/xterm" modules="$NPM_DIR/node_modules/@xterm" name
  log "installing xterm.js from session-wasm/npm/package-lock.json"
  # --ignore-scripts: nothing of a package runs here; only its files are copied.
  (cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)

  mkdir -p "$out"
  copy_js "$modules/xterm/lib/xterm.js" "$out/xterm.js"
  cp "$modules/xterm/css/xterm.css" "$out/xterm.css"
  cp "$modules/xterm/LICENSE" "$out/LICENSE-xterm"
  for name in fit unicode11 search; do
    copy_js "$modules/addon-$name/lib/addon-$name.js" "$out/addon-$name.js"
    cp "$modules/addon-$name/LICENSE" "$out/LICENSE-addon-$name"
  done

  version() { node -p "require(process.argv[1]).version" "$modules/$1/package.json"; }
  cat >"$1/README.md" <<EOF
# Vendored files

Generated by \`scripts/console-assets.sh\` from the npm registry, at the exact versions of
\`session-wasm/npm/package-lock.json\`: edit that, never these files, and run the script again.
Each \`.js\` file is its package's UMD build (\`lib/*.js\`) without its source map comment; the
page loads them with \`<script>\` tags, and each defines a global.

| file | package | version | global |
| --- | --- | --- | --- |
| \`xterm/xterm.js\` | \`@xterm/xterm\` | $(version xterm) | \`Terminal\` |
| \`xterm/xterm.css\` | \`@xterm/xterm\` (\`css/xterm.css\`) | $(version xterm) | |
| \`xterm/addon-fit.js\` | \`@xterm/addon-fit\` | $(version addon-fit) | \`FitAddon.FitAddon\` |
| \`xterm/addon-unicode11.js\` | \`@xterm/addon-unicode11\` | $(version addon-unicode11) | \`Unicode11Addon.Unicode11Addon\` |
| \`xterm/addon-search.js\` | \`@xterm/addon-search\` | $(version addon-search) | \`SearchAddon.SearchAddon\` |
| \`xterm/LICENSE-*\` | each package's \`LICENSE\` (MIT) | | |
EOF
}

# Lists the files that differ between the committed tree $1 and the rebuild $2; fails if any.
compare() {
  local committed="$1" rebuilt="$2" label="$3" file status=0
  while IFS= read -r file; do
    if [[ ! -f "$committed/$file" ]]; then
      echo "  missing from the tree: $label/$file"
      status=1
    elif [[ ! -f "$rebuilt/$file" ]]; then
      echo "  not generated (remove it): $label/$file"
      status=1
    elif ! cmp -s "$committed/$file" "$rebuilt/$file"; then
      echo "  differs: $label/$file"
      status=1
    fi
  done < <(for dir in "$committed" "$rebuilt"; do
    if [[ -d "$dir" ]]; then (cd "$dir" && find . -type f | sed 's|^\./||'); fi
  done | LC_ALL=C sort -u)
  return "$status"
}

# Everything is built in a fresh directory first: in place, the old files are replaced only
# once all of it has built, and files no longer generated disappear.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
build_wasm "$build/wasm"
vendor_xterm "$build/vendor"

if $check; then
  status=0
  for dir in wasm vendor; do
    compare "$CONSOLE/$dir" "$build/$dir" "session-relay/console/$dir" || status=1
  done
  if [[ $status -ne 0 ]]; then
    log "the committed files differ from a rebuild (above): run bash scripts/console-assets.sh"
    log "and commit the result. Built with $(rustc --version) and wasm-bindgen $(locked_version wasm-bindgen)."
    exit 1
  fi
  log "the committed files match a rebuild"
else
  for dir in wasm vendor; do
    rm -rf "${CONSOLE:?}/$dir"
    cp -R "$build/$dir" "$CONSOLE/$dir"
  done
  log "regenerated session-relay/console/wasm and session-relay/console/vendor"
  log "session_wasm_bg.wasm: $(wc -c <"$CONSOLE/wasm/session_wasm_bg.wasm") bytes"
fi
