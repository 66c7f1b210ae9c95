#!/usr/bin/env node
// Benchmark: connect → `joined` time and relay latency/throughput of the built Worker, in
// Miniflare's workerd on loopback (no wrangler proxy in front, see TOOLCHAIN.md), with real
// WebSocket clients. Prints numbers; it asserts nothing about speed (targets are read, not
// tested). Every loop is bounded by --rounds and stops by itself.
//
//   node bench/connect-relay.mjs [--rounds 50] [--candidates 200]
import { parseArgs } from "node:util";
import { startWorker, uniqueRoom } from "../miniflare/lib/harness.mjs";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "50" }, candidates: { type: "string", default: "200" } },
});
const rounds = Math.min(Math.max(Number.parseInt(values.rounds, 10) || 50, 1), 2000);
const burst = Math.min(Math.max(Number.parseInt(values.candidates, 10) || 200, 1), 5000);

function stats(samples) {
  const s = [...samples].sort((x, y) => x - y);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const f = (x) => x.toFixed(2);
  return `n=${s.length} p50=${f(at(0.5))} p95=${f(at(0.95))} p99=${f(at(0.99))} max=${f(s[s.length - 1])} ms`;
}

const worker = await startWorker({ bindings: { MAX_PEERS_PER_ROOM: "8" } });
try {
  // 1. Connect: handshake start → `joined`, each in a fresh room (a new Durable Object), and a
  //    second peer into an existing room (a live object).
  const fresh = [];
  const warm = [];
  for (let i = 0; i < rounds; i++) {
    const room = uniqueRoom("bench");
    const first = await worker.join(room, { label: "first" });
    fresh.push(first.ms);
    const second = await worker.join(room, { label: "second" });
    warm.push(second.ms);
    first.client.close();
    second.client.close();
    await Promise.all([first.client.closed, second.client.closed]);
  }

  // 2. Relay latency: A sends an offer, B receives the relay (one-way, same process clock).
  const { a, b, B } = await worker.pair(uniqueRoom("bench-relay"));
  const latency = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    a.send({ type: "offer", to: B, sdp: `v=0 round ${i}`, correlationId: `r${i}` });
    const frame = await b.nextFrame((f) => f.correlationId === `r${i}`);
    latency.push(frame.at - t0);
  }

  // 3. Throughput: a burst of candidates A → B, all received in order.
  const t0 = performance.now();
  for (let i = 0; i < burst; i++) {
    a.send({ type: "candidate", to: B, candidate: { candidate: `candidate:${i} 1 udp 1 192.0.2.1 ${1000 + i} typ host`, sdpMid: "0" } });
  }
  const got = await b.collect(burst, (f) => f.type === "relay", 30_000);
  const elapsed = performance.now() - t0;
  const inOrder = got.every((f, i) => f.inner.candidate.candidate.startsWith(`candidate:${i} `));

  console.log("benchmark (Miniflare workerd, loopback, ws client)");
  console.log(`  connect → joined, new room:      ${stats(fresh)}`);
  console.log(`  connect → joined, existing room: ${stats(warm)}`);
  console.log(`  relay one-way latency:           ${stats(latency)}`);
  console.log(`  candidate burst: ${burst} in ${elapsed.toFixed(1)} ms = ${Math.round((burst / elapsed) * 1000)} frames/s, in order: ${inOrder}`);
  const p99 = [...fresh, ...warm].sort((x, y) => x - y)[Math.floor(0.99 * (fresh.length + warm.length))] ?? 0;
  console.log(`  target connect < 500 ms: ${p99 < 500 ? "met" : "NOT MET"} (p99 ${p99.toFixed(1)} ms)`);
  if (!inOrder || got.length !== burst) {
    console.error("benchmark: candidates were lost or reordered");
    process.exitCode = 1;
  }
} finally {
  await worker.dispose();
}
