#!/usr/bin/env node
// A V8 CPU profile of workerd's JavaScript thread (Miniflare's inspector) while a bounded load
// runs against a build of the Worker: which functions the time goes to, self and inclusive.
// For finding where the time goes, not for figures: sampling inflates small functions, and with
// the inspector attached `console.log` is far dearer than without (read log lines as noise).
//
//   node bench/profile.mjs [--mode connect|relay|trickle] [--n N] [--build DIR] [--top N]
//
//   connect  N clients connect+join one at a time, each into a new room (default N 300)
//   relay    one pair; A sends N candidates to B, one at a time (default N 20,000)
//   trickle  200 rooms; every A sends a candidate to its B every 100 ms for 6 s (alarms included)
//
// Function names need a build that keeps them (scripts/build.sh strips them): for example
//   EDGESIGNAL_DEV_BUILD=1 bash scripts/build.sh && cp -r build /tmp/named   (unoptimized), or
//   worker-build --release --no-opt, then wasm-opt -O --debuginfo as scripts/build.sh does.
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { startWorker, uniqueRoom } from "../miniflare/lib/harness.mjs";

const WebSocket = createRequire(import.meta.url)("../miniflare/node_modules/ws");
const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "connect" },
    n: { type: "string" },
    build: { type: "string" },
    top: { type: "string", default: "40" },
    port: { type: "string", default: "9231" },
  },
});
const MODE = values.mode;
if (!["connect", "relay", "trickle"].includes(MODE)) throw new Error(`unknown --mode ${MODE}`);
const N = Number(values.n ?? (MODE === "relay" ? 20_000 : 300));
const TOP = Number(values.top);
const HIGH = "100000";

const worker = await startWorker({
  buildDir: values.build,
  miniflare: { inspectorPort: Number(values.port) },
  // Limits far above the offered load: the profile is of the relay, not of refusals.
  bindings: {
    RATE_CONNECT_PER_MIN: HIGH,
    MAX_CONNECTIONS_PER_USER: "1000",
    RATE_MSG_PER_S: HIGH,
    RATE_MSG_BURST: HIGH,
    RATE_CANDIDATE_PER_S: HIGH,
    RATE_CANDIDATE_BURST: HIGH,
    RATE_ROOM_PER_S: HIGH,
  },
});
const targets = await (await fetch(`http://127.0.0.1:${values.port}/json`)).json();
// The user Worker's isolate (the entry Worker and its Durable Objects share it).
const target = targets.find((t) => t.webSocketDebuggerUrl?.endsWith("/core:user:")) ?? targets[0];
const inspector = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((resolve) => inspector.on("open", resolve));
let nextId = 0;
const pending = new Map();
inspector.on("message", (data) => {
  const message = JSON.parse(data);
  pending.get(message.id)?.(message);
  pending.delete(message.id);
});
const call = (method, params = {}) =>
  new Promise((resolve) => {
    const id = ++nextId;
    pending.set(id, resolve);
    inspector.send(JSON.stringify({ id, method, params }));
  });

const url = `ws://${worker.url.host}`;
async function connect(room, sub) {
  const ws = new WebSocket(`${url}/ws/${room}`, ["signal.v1", `bearer.${worker.token({ sub, rooms: [room] })}`]);
  await new Promise((resolve, reject) => {
    ws.once("message", resolve);
    ws.once("error", reject);
  });
  return ws;
}
/** A pair in a new room; B's peer id. */
async function pair(i) {
  const room = uniqueRoom("prof");
  const a = await connect(room, `a${i}`);
  const b = await connect(room, `b${i}`);
  const joined = await new Promise((resolve) => {
    b.once("message", (d) => resolve(JSON.parse(d)));
    b.send(JSON.stringify({ type: "join", roomId: room }));
  });
  return { a, b, to: joined.peerId };
}
const candidate = (to, i) => JSON.stringify({ type: "candidate", to, candidate: { candidate: "candidate:842163049 1 udp 1677729535 192.0.2.7 3478 typ srflx raddr 0.0.0.0 rport 0 generation 0", sdpMid: "0", sdpMLineIndex: 0 }, correlationId: `c${i}` });

// Warm up (compilation, the first objects), then set up what the mode needs, unprofiled.
for (let i = 0; i < 20; i++) (await connect(uniqueRoom("warm"), `warm${i}`)).close();
const pairs = MODE === "relay" ? [await pair(0)] : MODE === "trickle" ? await Promise.all(Array.from({ length: 200 }, (_, i) => pair(i))) : [];

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 50 });
await call("Profiler.start");
const started = performance.now();
const sockets = [];
if (MODE === "connect") {
  for (let i = 0; i < N; i++) sockets.push(await connect(uniqueRoom("prof"), `p${i}`));
} else if (MODE === "relay") {
  const [{ a, b, to }] = pairs;
  for (let i = 0; i < N; i++) {
    const got = new Promise((resolve) => b.once("message", resolve));
    a.send(candidate(to, i));
    await got;
  }
} else {
  const end = Date.now() + 6000;
  for (let i = 0; Date.now() < end; i++) {
    for (const { a, to } of pairs) a.send(candidate(to, i));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
const wallMs = performance.now() - started;
const { result } = await call("Profiler.stop");

// Self and inclusive time per function (name, script, position), from the samples.
const { nodes, samples, timeDeltas } = result.profile;
const byId = new Map(nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of nodes) for (const child of n.children ?? []) parent.set(child, n.id);
const key = (id) => {
  const f = byId.get(id).callFrame;
  return `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}:${f.lineNumber}:${f.columnNumber}`;
};
const self = new Map();
const inclusive = new Map();
let total = 0;
for (let i = 0; i < samples.length; i++) {
  const dt = timeDeltas[i];
  total += dt;
  self.set(key(samples[i]), (self.get(key(samples[i])) ?? 0) + dt);
  const seen = new Set();
  for (let id = samples[i]; id; id = parent.get(id)) {
    const k = key(id);
    if (!seen.has(k)) inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    seen.add(k);
  }
}
const print = (title, map) => {
  console.log(`\n${title}`);
  for (const [k, us] of [...map].sort((x, y) => y[1] - x[1]).slice(0, TOP)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k.slice(0, 150)}`);
  }
};
console.log(`${MODE}: ${MODE === "trickle" ? "200 rooms × 10 frames/s" : N} in ${wallMs.toFixed(0)} ms; ${(total / 1000).toFixed(0)} ms sampled on workerd's JavaScript thread`);
print("self time", self);
print("inclusive time", inclusive);

for (const s of [...sockets, ...pairs.flatMap((p) => [p.a, p.b])]) s.terminate();
inspector.close();
await worker.dispose();
