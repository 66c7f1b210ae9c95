#!/usr/bin/env node
// Flood benchmark: one abusive client against N normal rooms, under the DEFAULT rate limits, in
// Miniflare's workerd on loopback with real WebSocket clients. Prints, from one run: the normal
// rooms' relay latency without and with the flood, what the flood got delivered and dropped,
// the server CPU per dropped frame, and the storage rows written per 1,000 relayed frames
// (from the room's own `rowsWritten` log fields). Asserts nothing about speed. Every loop is
// bounded in count and time and stops by itself; traffic goes to 127.0.0.1 only.
//
//   node bench/flood.mjs [--rooms 20] [--seconds 4] [--flood-per-tick 100]
import { readFileSync, readdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { startWorker, uniqueRoom } from "../miniflare/lib/harness.mjs";

const { values } = parseArgs({
  options: {
    rooms: { type: "string", default: "20" },
    seconds: { type: "string", default: "4" },
    "flood-per-tick": { type: "string", default: "100" },
  },
});
const ROOMS = Math.min(Math.max(Number(values.rooms) || 20, 1), 200);
// Under RATE_ABUSE_STRIKES (10 s of drops within a minute) so the flood runs to the end.
const SECONDS = Math.min(Math.max(Number(values.seconds) || 4, 1), 8);
const FLOOD_PER_TICK = Math.min(Math.max(Number(values["flood-per-tick"]) || 100, 1), 1000);
const TICK_MS = 2;
/** Each normal room sends an offer every 100 ms: 10/s, half its default budget. */
const NORMAL_INTERVAL_MS = 100;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The workerd processes Miniflare started (children of this process). */
function workerdPids() {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return Number(after[1]) === process.pid && stat.includes("workerd");
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** utime + stime of `pids`, in ms (CLK_TCK = 100 on Linux). */
function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks * 10;
}

function stats(samples) {
  const s = [...samples].sort((x, y) => x - y);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { n: s.length, p50: at(0.5), p99: at(0.99) };
}

/** Rows written, summed from the room's log lines since `mark`. */
function rowsWritten(worker, mark) {
  return worker.logs.find((l) => typeof l.rowsWritten === "number", { since: mark }).reduce((sum, l) => sum + l.rowsWritten, 0);
}

const worker = await startWorker();
const pids = workerdPids();
try {
  const pairs = [];
  for (let i = 0; i < ROOMS; i++) pairs.push(await worker.pair(uniqueRoom("normal")));

  /** Normal traffic in every room for `seconds`: paced offers, one-way latency per frame. */
  async function normalTraffic(seconds) {
    const latencies = [];
    let relayed = 0;
    // Bounded by the clock (a loaded server makes rounds slower, never the phase longer).
    const deadline = performance.now() + seconds * 1000;
    for (let r = 0; performance.now() < deadline; r++) {
      const t0 = performance.now();
      await Promise.all(
        pairs.map(async ({ a, b, B }, i) => {
          const id = `n${r}-${i}`;
          const sent = performance.now();
          a.send({ type: "offer", to: B, sdp: "v=0 normal", correlationId: id });
          const frame = await b.nextFrame((f) => f.correlationId === id, 5000);
          latencies.push(frame.at - sent);
          relayed++;
        }),
      );
      await sleep(Math.max(0, NORMAL_INTERVAL_MS - (performance.now() - t0)));
    }
    return { latency: stats(latencies), relayed };
  }

  // Phase 1: normal traffic alone.
  let mark = worker.logs.mark();
  let cpu0 = cpuMs(pids);
  const quiet = await normalTraffic(SECONDS);
  const quietCpu = cpuMs(pids) - cpu0;
  const quietRows = rowsWritten(worker, mark);

  // Phase 2: the same, while one client floods its own room with candidates.
  const flood = await worker.pair(uniqueRoom("flood"));
  let sent = 0;
  let flooding = true;
  const warnings = [];
  flood.a.ws.on("message", (data) => {
    const f = JSON.parse(data.toString());
    if (f.type === "warning" && f.code === "throttled") warnings.push(f);
  });
  const candidate = (i) => JSON.stringify({ type: "candidate", to: flood.B, candidate: { candidate: `candidate:${i} 1 udp 2122260223 192.0.2.1 ${i % 65535} typ host`, sdpMid: "0" } });
  mark = worker.logs.mark();
  cpu0 = cpuMs(pids);
  const floodEnds = performance.now() + SECONDS * 1000;
  const flooder = (async () => {
    const maxFrames = FLOOD_PER_TICK * Math.ceil((SECONDS * 1000) / TICK_MS);
    while (flooding && sent < maxFrames && performance.now() < floodEnds) {
      // As fast as the server reads: a client cannot push faster than that for long, and
      // frames still queued in our socket buffer would count as sent but not yet handled.
      if (flood.a.ws.bufferedAmount < 64 * 1024) {
        for (let i = 0; i < FLOOD_PER_TICK; i++) flood.a.ws.send(candidate(sent++));
      }
      await sleep(TICK_MS);
    }
  })();
  const loud = await normalTraffic(SECONDS);
  flooding = false;
  await flooder;
  const loudCpu = cpuMs(pids) - cpu0;
  const floodRows = rowsWritten(worker, mark);
  // After the notice interval one more candidate passes and flushes the last `dropped` count.
  // The server may still be reading the flood's tail when we stop, so a warning can go out
  // late; then one more interval and one more candidate (at most three).
  let flushed = null;
  let delivered = 0;
  let dropped = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    await sleep(1100);
    const last = `candidate:${sent} `;
    flood.a.ws.send(candidate(sent++));
    flushed = await flood.b.nextFrame((f) => f.type === "relay" && f.inner.candidate.candidate.startsWith(last), 10_000).catch(() => null);
    if (flushed) flood.b.inbox.push(flushed);
    await flood.a.nextFrame((f) => f.type === "warning", 300).catch(() => null);
    delivered = flood.b.inbox.filter((f) => f.data?.type === "relay").length;
    dropped = warnings.reduce((sum, w) => sum + w.dropped, 0);
    if (delivered + dropped === sent) break;
  }
  const extraCpu = Math.max(0, loudCpu - quietCpu);

  const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "n/a");
  console.log(`flood benchmark (Miniflare workerd, loopback, ws clients, default limits; ${ROOMS} normal rooms at 10 offers/s each, ${SECONDS} s per phase)`);
  console.log(`  normal rooms, no flood:   relay p50 ${f2(quiet.latency.p50)} ms  p99 ${f2(quiet.latency.p99)} ms  (${quiet.relayed} frames)`);
  console.log(`  normal rooms, with flood: relay p50 ${f2(loud.latency.p50)} ms  p99 ${f2(loud.latency.p99)} ms  (${loud.relayed} frames)`);
  console.log(`  flood: ${sent} candidates sent in ${SECONDS} s, ${delivered} delivered, ${dropped} dropped (told in ${warnings.length} throttled warnings), ${sent - delivered - dropped} unaccounted`);
  console.log(`  server CPU: ${quietCpu} ms without the flood, ${loudCpu} ms with it: ${f2((extraCpu * 1000) / Math.max(1, dropped))} us per dropped frame`);
  console.log(`  storage rows written per 1,000 relayed frames: ${f2((quietRows * 1000) / quiet.relayed)} normal, ${f2((floodRows * 1000) / (loud.relayed + delivered))} under the flood (${floodRows} rows: the flooder's strike seconds)`);
  if (!flushed || sent - delivered - dropped !== 0) process.exitCode = 1;
} finally {
  await worker.dispose();
}
