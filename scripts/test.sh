#!/usr/bin/env bash
# Runs every test: lints for both targets, the native core tests, a release build of the Worker,
# the Miniflare integration suite against it in real workerd, and the benchmark (prints numbers).
# Installs what is missing first (scripts/setup.sh), so it works on a fresh clone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EDGESIGNAL_ROOT"
started=$SECONDS
stage() { printf '\n== %s (t=%ss)\n' "$*" "$((SECONDS - started))"; }

stage setup
bash scripts/setup.sh

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy (native, all targets)"
cargo clippy --all-targets --locked -- -D warnings

stage "cargo clippy (wasm32)"
cargo clippy --lib --target wasm32-unknown-unknown --locked -- -D warnings

stage "cargo test (native core)"
cargo test --locked

stage "build the Worker (worker-build --release)"
bash scripts/build.sh
printf 'wasm size: %s bytes, %s bytes gzip\n' "$(wc -c < build/index_bg.wasm)" "$(gzip -9c build/index_bg.wasm | wc -c)"

stage "Miniflare integration tests (workerd)"
(cd miniflare && npm test)

stage "benchmark (Miniflare, bounded)"
node bench/connect-relay.mjs --rounds "${BENCH_ROUNDS:-50}"

stage "all tests passed in $((SECONDS - started))s"
