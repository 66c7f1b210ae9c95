#!/usr/bin/env bash
# Installs everything the project needs, pinned, skipping what is already there. Safe to re-run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EDGESIGNAL_ROOT"

step() { printf '\n== setup: %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for component in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$component"; then
    step "rust component $component"
    rustup component add "$component"
  fi
done

if ! worker-build --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
  step "worker-build $WORKER_BUILD_VERSION (about 6 minutes on 2 cores)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

if ! "$WASM_BINDGEN_BIN" --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
  step "wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 4 minutes)"
  # Not --locked: some versions' lock files name a dependency the index no longer serves.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# npm packages exactly as locked; re-installed only when the lock file changed.
npm_ci() {
  local dir="$1" stamp
  stamp="$dir/node_modules/.edgesignal-lock.sha256"
  if [ ! -f "$stamp" ] || ! sha256sum --status -c "$stamp" 2>/dev/null; then
    step "npm ci in $(basename "$dir")"
    (cd "$dir" && npm ci --no-audit --no-fund)
    (cd "$dir" && sha256sum package-lock.json) | sed "s|  |  $dir/|" > "$stamp"
  fi
}
npm_ci "$EDGESIGNAL_ROOT"
npm_ci "$EDGESIGNAL_ROOT/miniflare"
# playwright-core only: it drives Debian's Chromium and never downloads a browser.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_ci "$EDGESIGNAL_ROOT/browser"
# The Robot Agent: @roamhq/wrtc ships libwebrtc prebuilt in its per-platform package.
npm_ci "$EDGESIGNAL_ROOT/agent"

# The browser test's real parts, from Debian's packages: Chromium and coturn (about a minute).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v turnserver >/dev/null || missing+=(coturn)
if [ "${#missing[@]}" -gt 0 ]; then
  step "Debian packages: ${missing[*]} (about a minute)"
  sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  if ! DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y --no-install-recommends "${missing[@]}"; then
    sudo_if_needed apt-get update
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

# The side-by-side benchmark's load generator: its own crate and lock file (never part of the
# Worker's build). cargo rebuilds it only when its sources changed; nothing is built at run time.
LOADGEN_DIR="$EDGESIGNAL_ROOT/bench/side-by-side/loadgen"
if [ ! -x "$LOADGEN_DIR/target/release/edgesignal-loadgen" ]; then
  step "benchmark load generator (bench/side-by-side/loadgen, about 30 s)"
fi
cargo build --release --locked --quiet --manifest-path "$LOADGEN_DIR/Cargo.toml" --target-dir "$LOADGEN_DIR/target"
echo "setup: ready"
