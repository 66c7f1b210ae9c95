# Sourced by the other scripts: paths and pinned versions. worker-build downloads wasm-bindgen,
# esbuild and wasm-opt unless these point at local binaries; this machine reaches no host but
# the package registries, so they always do.
EDGESIGNAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
WORKER_BUILD_VERSION="0.8.7"
# The wasm-bindgen CLI must be exactly the library version in Cargo.lock.
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$EDGESIGNAL_ROOT/Cargo.lock")"
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
# esbuild ships its binary in a per-platform package (linux-x64 on these machines).
export ESBUILD_BIN="$EDGESIGNAL_ROOT/node_modules/@esbuild/$(node -p 'process.platform + "-" + process.arch')/bin/esbuild"
export WASM_OPT_BIN="$EDGESIGNAL_ROOT/node_modules/.bin/wasm-opt"
# Offline-friendly wrangler.
export WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false
