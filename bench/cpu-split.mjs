#!/usr/bin/env node
// Where a relayed frame's server CPU goes, per server: the kernel, workerd's own C++ (the runtime,
// V8's C++ and builtins, the WebSocket and hibernation code) and the JIT code (JavaScript and
// wasm: the only part a room object's author writes). Linux `perf` samples workerd while N pairs
// relay candidates one round at a time; the split is perf's per-DSO share of the CPU clock.
//
//   node bench/cpu-split.mjs [--servers thin,js-v1,edgesignal] [--pairs 50] [--rounds 600] [--runs 3]
//                            [--symbols N] [--mode relay|connect] [--connects N] [--warmup N]
//                            [--tail-ms N] [--ack] [--var NAME=VALUE]...
//
// --tail-ms N keeps recording N ms after the last frame or connect, so that work the load causes
// later (a room's flush of unacknowledged frames, 2 s after its last client event) is counted
// too; 3,000 ms by default for connects, 0 for relay. --ack makes edgesignal's
// clients acknowledge every sequenced frame at once, as a v1.1 client does (the baselines have no
// acks): nothing is then left to flush.
//
// --var NAME=VALUE sets one more of edgesignal's vars (e.g. LOG_LEVEL=warn), over the
// side-by-side's EDGESIGNAL_VARS.
//
// --mode connect: instead of relaying, N connects one at a time, two per room (each room new),
// each until its `joined`: the split is per connect+join (entry Worker, room object, 101).
//
// --symbols N also lists each server's N costliest functions (µs per frame, over all runs).
// JIT code has no names unless V8 writes a perf map (`--perf-basic-prof`), which Miniflare does
// not expose: it shows as one [JIT] line; workerd's own functions and V8's builtins have names.
//
// Needs `perf` (Debian: `apt-get install linux-perf`) and permission to trace the server
// (root, or kernel.perf_event_paranoid ≤ 1). Same servers, vars and pinning as
// bench/side-by-side (server on core 0, this client on the rest); `ws` clients without
// permessage-deflate, like the Rust load generator. Bounded: pairs × rounds frames per run.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { claimsFor, mint } from "../miniflare/lib/jwt.mjs";
import { BENCH_SECRET, SERVERS } from "./side-by-side/server.mjs";
import { hasTaskset, serverVars, startServer } from "./side-by-side/processes.mjs";

const WebSocket = createRequire(import.meta.url)("../miniflare/node_modules/ws");
const { values } = parseArgs({
  options: {
    servers: { type: "string", default: "thin,js-v1,edgesignal" },
    pairs: { type: "string", default: "50" },
    rounds: { type: "string", default: "600" },
    runs: { type: "string", default: "3" },
    symbols: { type: "string", default: "0" },
    mode: { type: "string", default: "relay" },
    connects: { type: "string", default: "400" },
    warmup: { type: "string" },
    "tail-ms": { type: "string" },
    ack: { type: "boolean", default: false },
    var: { type: "string", multiple: true, default: [] },
  },
});
const servers = values.servers.split(",");
for (const s of servers) if (!SERVERS.includes(s)) throw new Error(`unknown server ${s}`);
const PAIRS = Number(values.pairs);
const ROUNDS = Number(values.rounds);
const RUNS = Number(values.runs);
// Unmeasured rounds (relay) or connects (connect) first, so that the isolate is warm: V8 compiles
// wasm lazily and tiers a function up only once it is hot, and the connect path's many functions
// each run once per connect. The default is past that point for this Worker (docs/performance.md).
const WARMUP = Number(values.warmup ?? (values.mode === "connect" ? 600 : 200));
const SYMBOLS = Number(values.symbols);
const MODE = values.mode;
if (!["relay", "connect"].includes(MODE)) throw new Error(`unknown --mode ${MODE}`);
const CONNECTS = Number(values.connects);
const TAIL_MS = Number(values["tail-ms"] ?? (MODE === "connect" ? 3000 : 0));
if (spawnSync("perf", ["--version"]).status !== 0) {
  console.error("cpu-split: needs Linux perf (Debian: apt-get install linux-perf)");
  process.exit(2);
}
const pin = cpus().length >= 2 && (await hasTaskset());
const extraVars = Object.fromEntries(values.var.map((v) => [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)]));

let nextUser = 0;
function open(url, room, ack = false) {
  const token = mint({ secret: BENCH_SECRET, claims: claimsFor({ sub: `split-${nextUser++}`, rooms: ["*"], ttlSeconds: 3600 }) });
  const ws = new WebSocket(new URL(`/ws/${room}`, url.replace(/^http/, "ws")), {
    headers: { Authorization: `Bearer ${token}` },
    perMessageDeflate: false,
  });
  if (ack) {
    ws.on("message", (data) => {
      const seq = JSON.parse(data).seq;
      if (seq) ws.send(JSON.stringify({ type: "ack", seq }));
    });
  }
  return new Promise((resolve, reject) => {
    ws.once("message", () => resolve(ws)); // `joined`
    ws.once("error", reject);
  });
}
/** A and B in one room; B's peer id from the `peer_joined` A hears (every server sends it). */
async function pair(url, i) {
  const room = `split-${Date.now().toString(36)}-${i}`;
  const a = await open(url, room);
  const heard = new Promise((resolve) => a.once("message", (d) => resolve(JSON.parse(d).peerId)));
  const b = await open(url, room);
  return { a, b, to: await heard };
}
const candidate = (to, i) =>
  JSON.stringify({ type: "candidate", to, candidate: { candidate: "candidate:842163049 1 udp 1677729535 192.0.2.7 3478 typ srflx raddr 0.0.0.0 rport 0 generation 0", sdpMid: "0", sdpMLineIndex: 0 }, correlationId: `c${i}` });
async function rounds(pairs, from, count) {
  for (let r = from; r < from + count; r++) {
    await Promise.all(
      pairs.map(({ a, b, to }) => {
        const got = new Promise((resolve) => b.once("message", resolve));
        a.send(candidate(to, r));
        return got;
      }),
    );
  }
}

/** perf's CPU-clock total (ns) and its share per DSO class for one recording. */
function split(file) {
  const out = spawnSync("perf", ["report", "-i", file, "--no-children", "--sort", "dso", "-g", "none", "--stdio"], { encoding: "utf8" }).stdout;
  const total = Number(/Event count \(approx\.\): (\d+)/.exec(out)?.[1] ?? NaN);
  const parts = { jit: 0, kernel: 0, workerd: 0, other: 0 };
  for (const m of out.matchAll(/^\s+([\d.]+)%\s+(.+?)\s*$/gm)) {
    const share = Number(m[1]) / 100;
    const dso = m[2];
    if (dso.startsWith("[JIT]")) parts.jit += share;
    else if (dso.startsWith("[kernel")) parts.kernel += share;
    else if (dso === "workerd") parts.workerd += share;
    else parts.other += share;
  }
  return { total, parts };
}

/** perf's share per function (DSO and symbol) for one recording, the first `limit` lines. */
function symbols(file, limit) {
  const out = spawnSync("perf", ["report", "-i", file, "--no-children", "--sort", "dso,sym", "-g", "none", "--stdio"], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  }).stdout;
  const found = [];
  for (const m of out.matchAll(/^\s+([\d.]+)%\s+(\S.*?)\s+\[[.k]\]\s+(.+?)\s*$/gm)) {
    found.push({ share: Number(m[1]) / 100, name: `${m[3].slice(0, 110)} (${m[2]})` });
    if (found.length >= limit) break;
  }
  return found;
}

const dir = mkdtempSync(join(tmpdir(), "cpu-split-"));
const rows = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    const order = servers.map((_, i) => servers[(i + run - 1) % servers.length]);
    for (const server of order) {
      const ready = await startServer(server, serverVars(server, extraVars), { pin });
      try {
        const pairs = [];
        const sockets = [];
        if (MODE === "relay") {
          for (let i = 0; i < PAIRS; i++) pairs.push(await pair(ready.url, i));
          await rounds(pairs, 0, WARMUP);
        } else {
          for (let i = 0; i < WARMUP; i++) (await open(ready.url, `warm-${run}-${i >> 1}`)).close();
          await new Promise((resolve) => setTimeout(resolve, 500)); // their closes, outside the window
        }
        const file = join(dir, `${server}-${run}.data`);
        const perf = spawn("perf", ["record", "-F", "1999", "-p", ready.workerdPids.join(","), "-o", file], { stdio: "ignore" });
        await new Promise((resolve) => setTimeout(resolve, 300)); // perf attached
        if (MODE === "relay") await rounds(pairs, WARMUP, ROUNDS);
        else {
          const ack = values.ack && server.startsWith("edgesignal");
          for (let i = 0; i < CONNECTS; i++) sockets.push(await open(ready.url, `c-${run}-${Date.now().toString(36)}-${i >> 1}`, ack));
        }
        if (TAIL_MS > 0) await new Promise((resolve) => setTimeout(resolve, TAIL_MS));
        perf.kill("SIGINT");
        await new Promise((resolve) => perf.once("exit", resolve));
        const { total, parts } = split(file);
        const units = MODE === "relay" ? PAIRS * ROUNDS : CONNECTS;
        const top = SYMBOLS > 0 ? symbols(file, SYMBOLS * 4) : [];
        rows.push({ server, run, perFrameUs: total / 1000 / units, parts, top });
        console.error(`cpu-split: run ${run}/${RUNS} ${server}: ${(total / 1000 / units).toFixed(1)} µs per ${MODE === "relay" ? "frame" : "connect"}`);
        for (const ws of sockets) ws.close();
        for (const { a, b } of pairs) a.close(), b.close();
      } finally {
        await ready.stop();
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const tail = TAIL_MS > 0 ? `, and ${TAIL_MS} ms after` : "";
const acks = values.ack ? ", edgesignal's clients acknowledging" : "";
const what = MODE === "relay" ? `relayed frame, split by perf (${PAIRS} pairs × ${ROUNDS} rounds${tail}` : `connect+join, split by perf (${CONNECTS} connects one at a time, two per new room${tail}${acks}`;
console.log(`\nserver CPU per ${what}, medians of ${RUNS} runs, µs)`);
console.log("| server | total (range) | workerd (runtime, V8 C++) | kernel | JIT (JavaScript + wasm) | other (libc, vdso) |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const server of servers) {
  const mine = rows.filter((r) => r.server === server);
  const cell = (key) => median(mine.map((r) => r.perFrameUs * r.parts[key])).toFixed(1);
  const totals = mine.map((r) => r.perFrameUs);
  const range = `${Math.min(...totals).toFixed(1)}–${Math.max(...totals).toFixed(1)}`;
  console.log(`| ${server} | ${median(totals).toFixed(1)} (${range}) | ${cell("workerd")} | ${cell("kernel")} | ${cell("jit")} | ${cell("other")} |`);
}

if (SYMBOLS > 0) {
  for (const server of servers) {
    const mine = rows.filter((r) => r.server === server);
    const sum = new Map();
    for (const r of mine) for (const { share, name } of r.top) sum.set(name, (sum.get(name) ?? 0) + (share * r.perFrameUs) / mine.length);
    console.log(`\n${server}: costliest functions, µs per ${MODE === "relay" ? "frame" : "connect"} (mean over runs)`);
    for (const [name, us] of [...sum].sort((a, b) => b[1] - a[1]).slice(0, SYMBOLS)) console.log(`  ${us.toFixed(2).padStart(6)}  ${name}`);
  }
}
