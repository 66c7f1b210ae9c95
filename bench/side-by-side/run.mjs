#!/usr/bin/env node
// Side-by-side benchmark: the same load against three servers in Miniflare's workerd on loopback,
// one table of medians and ratios. See bench/README.md.
//
//   node bench/side-by-side/run.mjs                # full: 3 runs, a few minutes
//   node bench/side-by-side/run.mjs --quick        # bounded, well under a minute (scripts/test.sh)
//   options: --runs N  --servers thin,js-v1,edgesignal  --var NAME=VALUE (edgesignal, repeatable)
//            --json FILE (every scenario line of every run)  --verbose (the server's and workerd's stderr)
//
// Exits 1 when a frame is lost, misdelivered or refused, or a connect fails; speed never fails it.
//
// Per run and server: a fresh Miniflare (so every Durable Object is new), hosted by server.mjs on
// core 0; the Rust load generator (loadgen/) on core 1; tokens minted here. Nothing is downloaded
// or built at run time: scripts/setup.sh builds the load generator.
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { claimsFor, mint } from "../../miniflare/lib/jwt.mjs";
import { BENCH_SECRET, BUILD_DIR, DEFAULT_SERVERS, EDGESIGNAL_VARS, SERVERS, buildDirOf, miniflareVersion } from "./server.mjs";
import { LOADGEN_CORE, NOFILE, SERVER_CORE, hasTaskset, lines, serverVars, spawnPinned, startServer } from "./processes.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const LOADGEN_DIR = join(HERE, "loadgen");
const LOADGEN_BIN = join(LOADGEN_DIR, "target", "release", "edgesignal-loadgen");

/**
 * Scenario sizes. `full` is what the issue asks for; `quick` keeps every scenario but smaller
 * and shorter so the whole thing stays around half a minute for scripts/test.sh.
 */
const PROFILES = {
  full: {
    runs: 3,
    pair_samples: 2000,
    // A warm isolate, as a busy server's is: V8 compiles wasm lazily and tiers a function up
    // only once it is hot, and with 200 frames and 10 connects edgesignal was still compiling
    // through the measured scenarios (bench/cpu-split.mjs: 0.4 ms of TurboFan per connect after
    // 20 connects, 0.05 ms after 1,500; 1.3 µs per frame after 10,000 frames, none after 50,000).
    warmup_frames: 10000,
    warmup_connects: 600,
    serial_connects: 200,
    rooms: 500,
    connect_in_flight: 64,
    idle_settle_ms: 2000,
    trickle_rate: 5000,
    trickle_secs: 4,
    burst_frames: 22,
    sweep: { start: 4000, factor: 1.5, max: 200000, step_secs: 2, bisect: 2, p99_ms: 100 },
    drain_ms: 2000,
    settle_ms: 500,
    connect_timeout_ms: 10000,
    wall_limit_s: 240,
  },
  quick: {
    runs: 1,
    pair_samples: 300,
    warmup_frames: 2000,
    warmup_connects: 200,
    serial_connects: 40,
    rooms: 500,
    connect_in_flight: 64,
    idle_settle_ms: 500,
    trickle_rate: 5000,
    trickle_secs: 1,
    burst_frames: 22,
    sweep: { start: 8000, factor: 2, max: 200000, step_secs: 0.75, bisect: 0, p99_ms: 100 },
    drain_ms: 1000,
    settle_ms: 250,
    connect_timeout_ms: 10000,
    wall_limit_s: 60,
  },
};

// ---------------------------------------------------------------------------------------------
// Processes

/** Runs the load generator against `ready`; resolves with its scenario lines. */
function runLoadgen(config, { pin, label, wallLimitS }) {
  const child = spawnPinned(LOADGEN_CORE, [LOADGEN_BIN], pin);
  const results = [];
  const stderr = [];
  lines(child.stdout, (line) => {
    try {
      results.push(JSON.parse(line));
    } catch {
      stderr.push(`(stdout) ${line}`);
    }
  });
  lines(child.stderr, (line) => {
    stderr.push(line);
    process.stderr.write(`  [${label}] ${line}\n`);
  });
  child.stdin.end(JSON.stringify(config));
  // The load generator bounds every loop itself; this only turns a hang into a failure.
  const killer = setTimeout(() => child.kill("SIGKILL"), wallLimitS * 1000);
  return new Promise((done, reject) => {
    child.on("exit", (code, signal) => {
      clearTimeout(killer);
      if (code === 0) done(results);
      else reject(new Error(`${label}: loadgen failed (${signal ?? code}):\n${stderr.slice(-20).join("\n")}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// One run of one server

async function benchServer(server, run, profile, opts) {
  const vars = serverVars(server, opts.vars);
  const started = performance.now();
  // Read before the start: whoever rebuilds build/ meanwhile changes later runs, not this one.
  const build = server === "edgesignal" ? buildId() : server === "edgesignal-before" ? buildId(buildDirOf(server)) : undefined;
  const ready = await startServer(server, vars, opts);
  try {
    const url = new URL(ready.url);
    const tokenCount = 2 + profile.warmup_connects + profile.serial_connects + 2 * profile.rooms;
    const tag = `${run}-${server}-${Date.now().toString(36)}`;
    // A distinct `sub` per connection, so per-user limits never bite; "*" covers every room.
    const tokens = Array.from({ length: tokenCount }, (_, i) =>
      mint({ secret: BENCH_SECRET, claims: claimsFor({ sub: `bench-${tag}-${i}`, rooms: ["*"], ttlSeconds: 3600 }) }),
    );
    const { wall_limit_s: wallLimitS, runs: _runs, ...scenario } = profile;
    const config = {
      ...scenario,
      addr: `127.0.0.1:${url.port}`,
      room_prefix: `b${tag}`.replace(/[^A-Za-z0-9_-]/g, "-"),
      tokens,
      server_pids: ready.workerdPids,
      host_pids: [ready.hostPid],
    };
    const label = `run ${run} ${server}`;
    const scenarioLines = await runLoadgen(config, { ...opts, label, wallLimitS });
    const seconds = (performance.now() - started) / 1000;
    return { server, run, seconds, lines: scenarioLines, miniflare: ready.miniflare, build };
  } finally {
    await ready.stop();
  }
}

/** The table's numbers from one server's scenario lines. */
function metrics(lines) {
  const by = Object.fromEntries(lines.map((l) => [l.scenario, l]));
  const need = ["pair_latency", "connect_serial", "connect_bulk", "idle_memory", "trickle", "burst", "sweep"];
  for (const s of need) if (!by[s]) throw new Error(`loadgen printed no ${s} line`);
  const { pair_latency: pair, connect_serial: serial, connect_bulk: bulk, idle_memory: idle, trickle, burst, sweep } = by;
  const windows = [pair, serial, bulk, trickle, burst, ...sweep.steps];
  const best = sweep.steps.filter((s) => s.pass && s.rate === sweep.max_rate)[0];
  return {
    pair_p50: pair.p50_ms,
    pair_p99: pair.p99_ms,
    trickle_p95: trickle.p95_ms,
    trickle_p99: trickle.p99_ms,
    trickle_cores: trickle.server_cores,
    cpu_per_frame_us: trickle.server_cpu_per_frame_us,
    burst_ms: burst.time_to_last_ms,
    burst_p99: burst.p99_ms,
    max_rate: sweep.max_rate ?? 0,
    max_rate_cores: best?.server_cores ?? null,
    serial_p50: serial.p50_ms,
    serial_p99: serial.p99_ms,
    cpu_per_connect_ms: serial.server_cpu_per_connect_ms,
    bulk_p99: bulk.p99_ms,
    bulk_rate: bulk.connects_per_s,
    mem_per_conn_kib: idle.bytes_per_connection / 1024,
    rss_base_mib: idle.rss_before_bytes / 2 ** 20,
    lost: pair.lost + trickle.lost + burst.lost,
    misdelivered: windows.reduce((a, s) => a + (s.misdelivered ?? 0), 0),
    refused: pair.errors + trickle.errors + burst.errors + pair.warnings + trickle.warnings + burst.warnings,
    connect_failed: serial.failed + bulk.failed,
    loadgen_cores: Math.max(...windows.map((s) => s.loadgen_cores ?? 0)),
    // Windows under half a second are too short for the tick-based machine total.
    other_cores: Math.max(0, ...windows.filter((s) => s.wall_s >= 0.5).map((s) => s.other_cores ?? 0)),
    host_cpu_s: windows.reduce((a, s) => a + (s.host_cpu_s ?? 0), 0),
    _sweep: sweep,
  };
}

// ---------------------------------------------------------------------------------------------
// Table

/** [label, metric key, decimals, ratio?] */
const ROWS = [
  ["pair relay one-way p50 (ms)", "pair_p50", 2],
  ["pair relay one-way p99 (ms)", "pair_p99", 2],
  ["{rooms} rooms trickle {trickle} frames/s: p95 (ms)", "trickle_p95", 2],
  ["{rooms} rooms trickle {trickle} frames/s: p99 (ms)", "trickle_p99", 2],
  ["{rooms} rooms trickle: server CPU (cores)", "trickle_cores", 3],
  ["server CPU per relayed frame (µs)", "cpu_per_frame_us", 1],
  ["{rooms} rooms burst, {burst} frames: all delivered (ms)", "burst_ms", 1],
  ["max sustained frames/s (p99 ≤ {p99bound} ms, 0 loss)", "max_rate", 0],
  ["  server CPU at that rate (cores)", "max_rate_cores", 2],
  ["connect+join one at a time: p50 (ms)", "serial_p50", 2],
  ["connect+join one at a time: p99 (ms)", "serial_p99", 2],
  ["server CPU per connect (ms)", "cpu_per_connect_ms", 2],
  ["{conns} connects, 64 in flight: p99 (ms)", "bulk_p99", 1],
  ["{conns} connects, 64 in flight: connects/s", "bulk_rate", 0],
  ["idle memory per connection (KiB RSS)", "mem_per_conn_kib", 1],
  ["workerd RSS before those connections (MiB)", "rss_base_mib", 1],
  ["frames lost (pair + trickle + burst)", "lost", 0, false],
  ["frames refused (error/warning frames)", "refused", 0, false],
  ["loadgen CPU, busiest scenario (cores)", "loadgen_cores", 2, false],
  ["other processes' CPU, busiest scenario (cores)", "other_cores", 2, false],
];

const median = (xs) => {
  const s = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function fmt(x, decimals) {
  if (x === null || x === undefined) return "–";
  return x.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function table(results, servers, profile) {
  const runs = [...new Set(results.map((r) => r.run))];
  const m = (server, run) => results.find((r) => r.server === server && r.run === run)?.metrics;
  // The ratio of each run (same machine state for the three servers), then their median and,
  // with several runs, their range.
  const ratioCell = (key, over) => {
    const perRun = runs
      .map((run) => [m("edgesignal", run)?.[key], m(over, run)?.[key]])
      .filter(([a, b]) => typeof a === "number" && typeof b === "number" && b !== 0)
      .map(([a, b]) => a / b);
    if (perRun.length === 0) return "–";
    const cell = `${median(perRun).toFixed(2)}×`;
    if (perRun.length === 1) return cell;
    return `${cell} (${Math.min(...perRun).toFixed(2)}–${Math.max(...perRun).toFixed(2)})`;
  };
  const header = ["scenario", ...servers];
  const withRatios = servers.includes("edgesignal");
  const over = withRatios ? servers.filter((s) => s !== "edgesignal") : [];
  for (const o of over) header.push(`edgesignal/${o}`);
  const rows = ROWS.map(([label, key, decimals, ratios = true]) => {
    const name = label
      .replace("{trickle}", fmt(profile.trickle_rate, 0))
      .replace("{burst}", fmt(profile.rooms * profile.burst_frames, 0))
      .replace("{p99bound}", String(profile.sweep.p99_ms))
      .replace("{conns}", fmt(profile.rooms * 2, 0))
      .replace("{rooms}", fmt(profile.rooms, 0));
    const cells = servers.map((s) => fmt(median(runs.map((run) => m(s, run)?.[key])), decimals));
    const ratioCells = over.map((o) => (ratios ? ratioCell(key, o) : "–"));
    return [name, ...cells, ...ratioCells];
  });
  const out = [`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`];
  for (const row of rows) out.push(`| ${row.join(" | ")} |`);
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------

/** Which build of edgesignal a run loaded: the wasm's size, hash and time. */
function buildId(dir = BUILD_DIR) {
  const wasm = join(dir, "index_bg.wasm");
  if (!existsSync(wasm)) return `${dir} missing`;
  const bytes = readFileSync(wasm);
  const sha = createHash("sha256").update(bytes).digest("hex").slice(0, 12);
  const built = statSync(wasm).mtime.toISOString();
  const name = dir === BUILD_DIR ? "build/index_bg.wasm" : wasm;
  return `${name} ${bytes.length.toLocaleString("en-US")} bytes (${gzipSync(bytes, { level: 9 }).length.toLocaleString("en-US")} gzip), sha256 ${sha}…, built ${built}`;
}

function machineFacts(pin, miniflare, builds) {
  const cpu = cpus();
  return [
    `machine: ${cpu.length} cores (${cpu[0]?.model?.trim() ?? "?"}), Linux, Node ${process.version}`,
    `servers: Miniflare ${miniflare} Node API (workerd), loopback 127.0.0.1, no wrangler proxy; fresh instance per server per run`,
    pin
      ? `pinning: server (Node host + workerd) on core ${SERVER_CORE}, ` +
        `loadgen (Rust, tokio current-thread) on core ${LOADGEN_CORE}; ulimit -n ${NOFILE}`
      : "pinning: OFF (fewer than 2 cores or no taskset): server and loadgen share cores",
    ...builds.map((b) => `edgesignal: ${b}`),
  ].join("\n");
}

function warnings(results) {
  const notes = [];
  for (const r of results) {
    const x = r.metrics;
    const who = `run ${r.run} ${r.server}`;
    if (x.lost) notes.push(`${who}: ${x.lost} frames lost outside the sweep`);
    if (x.misdelivered) notes.push(`${who}: ${x.misdelivered} frames reached a socket they were not addressed to`);
    if (x.other_cores > 0.2) {
      notes.push(`${who}: other processes kept up to ${x.other_cores.toFixed(2)} cores busy in one scenario: figures disturbed`);
    }
    if (x.refused) notes.push(`${who}: ${x.refused} error/warning frames (rate limits?)`);
    if (x.connect_failed) notes.push(`${who}: ${x.connect_failed} connects failed`);
    if (x.loadgen_cores > 0.8) {
      notes.push(`${who}: loadgen used ${x.loadgen_cores.toFixed(2)} cores in one scenario: near its own limit`);
    }
    if (x._sweep.loadgen_bound) {
      notes.push(`${who}: the rate sweep was limited by the loadgen, not the server (max rate is a lower bound)`);
    }
    if (x._sweep.max_rate === null) notes.push(`${who}: no sweep step passed`);
    if (x.host_cpu_s > 0.5) {
      notes.push(`${who}: the Node host used ${x.host_cpu_s.toFixed(2)} s CPU (expected ~0: traffic goes to workerd)`);
    }
  }
  return notes;
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      runs: { type: "string" },
      servers: { type: "string", default: DEFAULT_SERVERS.join(",") },
      var: { type: "string", multiple: true, default: [] },
      json: { type: "string" },
      verbose: { type: "boolean", default: false },
    },
  });
  const profile = { ...PROFILES[values.quick ? "quick" : "full"] };
  if (values.runs !== undefined) profile.runs = Math.min(Math.max(Number.parseInt(values.runs, 10) || 1, 1), 9);
  const servers = values.servers.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of servers) if (!SERVERS.includes(s)) throw new Error(`unknown server ${s} (use ${SERVERS.join(", ")})`);
  const vars = {};
  for (const kv of values.var) {
    const at = kv.indexOf("=");
    if (at < 1) throw new Error(`--var wants NAME=VALUE, got ${kv}`);
    vars[kv.slice(0, at)] = kv.slice(at + 1);
  }
  if (!existsSync(LOADGEN_BIN)) {
    throw new Error(`${LOADGEN_BIN} is missing: run \`bash scripts/setup.sh\` (it builds the load generator)`);
  }
  const pin = cpus().length >= 2 && (await hasTaskset());

  const started = performance.now();
  console.error(`side-by-side: ${values.quick ? "quick" : "full"}, ${profile.runs} run(s), servers ${servers.join(", ")}`);
  const results = [];
  for (let run = 1; run <= profile.runs; run++) {
    // Servers take turns within each run, so slow drift of the machine hits all three alike,
    // and the order rotates from run to run: whoever goes first in a fresh process tree (measured
    // to be worth up to 8% here) is not always the same server.
    const order = servers.map((_, i) => servers[(i + run - 1) % servers.length]);
    for (const server of order) {
      console.error(`side-by-side: run ${run}/${profile.runs}: ${server}`);
      const r = await benchServer(server, run, profile, { pin, verbose: values.verbose, vars });
      r.metrics = metrics(r.lines);
      console.error(`side-by-side: run ${run}/${profile.runs}: ${server} done in ${r.seconds.toFixed(1)} s`);
      results.push(r);
    }
  }
  const wall = (performance.now() - started) / 1000;

  const mode = values.quick ? "--quick" : "full";
  console.log(`\nedgesignal side-by-side benchmark (${mode}): medians of ${profile.runs} run(s)`);
  const builds = [...new Set(results.filter((r) => r.server === "edgesignal").map((r) => r.build).filter(Boolean))];
  const before = [...new Set(results.filter((r) => r.server === "edgesignal-before").map((r) => r.build))];
  console.log(machineFacts(pin, results[0]?.miniflare ?? miniflareVersion(), builds));
  for (const b of before) console.log(`edgesignal-before: ${b}`);
  if (servers.includes("edgesignal")) {
    console.log(`edgesignal vars: ${Object.entries({ ...EDGESIGNAL_VARS, ...vars }).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  }
  console.log("ratios: edgesignal's value / the baseline's in each run; their median (and range over the runs).");
  console.log("        Above 1 is slower or costlier, except in the frames/s and connects/s rows (above 1 is better).");
  console.log("");
  console.log(table(results, servers, profile));
  console.log("");
  for (const r of results) {
    const steps = r.metrics._sweep.steps.map(
      (s) => `${fmt(s.rate, 0)}${s.pass ? "✓" : `✗(p99 ${s.p99_ms ?? "–"} ms, lost ${s.lost})`}`,
    );
    console.log(`sweep run ${r.run} ${r.server}: ${steps.join(" ")}`);
  }
  const notes = warnings(results);
  if (builds.length > 1) notes.push(`build/ changed between runs: the edgesignal figures mix ${builds.length} builds`);
  if (notes.length) console.log(`\nsuspicious:\n${notes.map((n) => `  - ${n}`).join("\n")}`);
  else console.log("\nsuspicious: nothing (no loss or misdelivery, no refusals, loadgen below 0.8 cores, no other load)");
  console.log(`\nwall time ${wall.toFixed(1)} s`);
  // Speed never fails the run (a disturbed machine is slow); broken delivery does.
  const broken = results.filter((r) => r.metrics.lost || r.metrics.misdelivered || r.metrics.refused || r.metrics.connect_failed);
  if (broken.length) {
    console.log(`\nFAILED: frames lost, misdelivered or refused, or connects failed in ${broken.length} server run(s)`);
    process.exitCode = 1;
  }
  if (values.json) {
    const raw = { profile, servers, results: results.map(({ metrics: _m, ...r }) => r) };
    writeFileSync(values.json, `${JSON.stringify(raw, null, 2)}\n`);
    console.log(`raw results: ${values.json}`);
  }
}

main().catch((e) => {
  console.error(`side-by-side: ${e.stack ?? e}`);
  process.exit(1);
});
