#!/usr/bin/env bash
# Runs every test: lints for both targets, the native core tests (the Worker's and the load
# generator's), a release build of the Worker, the Miniflare integration suite against it in real
# workerd, and the benchmarks (they print numbers).
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

stage "cargo test (side-by-side load generator)"
cargo test --locked --release --manifest-path bench/side-by-side/loadgen/Cargo.toml

stage "build the Worker (worker-build --release)"
bash scripts/build.sh
printf 'wasm size: %s bytes, %s bytes gzip\n' "$(wc -c < build/index_bg.wasm)" "$(gzip -9c build/index_bg.wasm | wc -c)"

stage "Miniflare integration tests (workerd)"
(cd miniflare && npm test)

stage "SDK (@edgesignal/client) against the Worker in workerd"
node --test --test-concurrency=1 sdk/test/

stage "browser: Chromium pages call through the Worker over a real coturn; the SDK; the web console with another console and the Robot Agent (own network namespace)"
bash browser/netns.sh node --test --test-concurrency=1 browser/test/

# Benchmarks print numbers and assert nothing about speed; they fail only on lost or misrouted
# frames (or a call that does not work). Bounded: about a minute and a half together.
stage "benchmark: side by side with a thin relay, a plain-JS protocol v1, and that plus v1.1's heartbeat alarm (quick)"
node bench/side-by-side/run.mjs --quick --servers thin,js-v1,js-v1-alarm,edgesignal

stage "benchmark: a flood against normal rooms, default limits"
node bench/flood.mjs --seconds 3

stage "benchmark: relay and storage rows with and without acks; 20 sockets killed mid-trickle and resumed (quick)"
node bench/resume.mjs --quick

stage "benchmark: token verification per algorithm, cold start (quick)"
node bench/trust.mjs --quick

stage "benchmark: the web console calls the Robot Agent: connect and offer→answer by part (seed 000's 500 / 100 ms targets), 5 calls"
bash browser/netns.sh node bench/console-agent.mjs --calls 5 --relays 20

stage "all tests passed in $((SECONDS - started))s"
