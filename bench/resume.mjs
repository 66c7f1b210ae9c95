#!/usr/bin/env node
// No-lost-signal benchmark (issue 7), in Miniflare's workerd on loopback with real WebSocket
// clients. Prints, from one run:
//
// 1. Relay: one-way latency p50/p99 and storage rows written per 1,000 relayed frames, for the
//    build before v1.1 §3–§4 (EDGESIGNAL_BEFORE_BUILD_DIR or --before, if given) and for this
//    build, with clients that acknowledge (batched every 100 ms) and clients that never do (a
//    v1 client). Rows are the rooms' own `rowsWritten` log fields, summed over the relay phase
//    and the quiet tail after it (when the room's flush would run).
// 2. Resume: N rooms of two peers; A trickles candidates to B; mid-trickle all N B sockets are
//    killed (TCP reset, no close), A keeps sending to the away B, and every B reconnects with its
//    resume token. Prints frames lost (every frame A sent must reach B once per seq: on the old
//    socket before the kill, or replayed), frames delivered twice (by seq: a replay of a frame
//    the old socket got but had not acknowledged; the client drops it), and the time from
//    reconnecting to `joined` and to having every frame sent so far.
//
// Asserts nothing about speed: it exits non-zero only if a frame is lost or misdelivered.
// Every loop is bounded and stops by itself; traffic goes to 127.0.0.1 only.
//
//   node bench/resume.mjs [--quick] [--rooms 50] [--seconds 4] [--before DIR]
import { parseArgs } from "node:util";
import { startWorker, uniqueRoom, BUILD_DIR } from "../miniflare/lib/harness.mjs";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rooms: { type: "string" },
    seconds: { type: "string" },
    before: { type: "string" },
  },
});
const QUICK = values.quick;
const ROOMS = Math.min(Math.max(Number(values.rooms ?? (QUICK ? 20 : 50)) || 50, 1), 200);
const SECONDS = Math.min(Math.max(Number(values.seconds ?? (QUICK ? 2 : 5)) || 5, 1), 20);
const BEFORE = values.before ?? process.env.EDGESIGNAL_BEFORE_BUILD_DIR;
/** Each peer sends a candidate to the other every 100 ms: 10/s, half its default budget. */
const INTERVAL_MS = 100;
const ACK_EVERY_MS = 100;
/** After the last frame: longer than the room's 2 s quiet flush, so its writes are counted. */
const QUIET_TAIL_MS = 3000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => (Number.isFinite(x) ? x.toFixed(2) : "–");

/** Sums `rowsWritten` over the room log lines printed since `mark`. */
function rowsSince(worker, mark) {
  return worker.logs
    .find((l) => typeof l.rowsWritten === "number", { since: mark })
    .reduce((sum, l) => sum + l.rowsWritten, 0);
}

/**
 * A peer: a connected client that records one-way latency of relayed candidates (payload
 * `t=<ms>`), tracks the highest `seq` it processed and, if `acks`, acknowledges it every 100 ms.
 */
function peer(client, { acks }) {
  const p = { client, latencies: [], lastSeq: 0, lastKept: 0, acked: 0, bySender: new Map(), dupes: 0, misdelivered: 0, timer: null };
  p.onFrame = (data) => {
    if (typeof data.seq === "number") {
      // The documented client rule (docs/protocol.md §6b): kept frames (all but joined,
      // refreshed and warnings) are deduplicated by the highest kept seq processed; a replay
      // follows `joined` with smaller seqs than it. Acknowledge the highest seq processed.
      const kept = !["joined", "warning", "refreshed"].includes(data.type);
      if (kept && data.seq <= p.lastKept) {
        p.dupes++;
        return;
      }
      if (kept) p.lastKept = data.seq;
      p.lastSeq = Math.max(p.lastSeq, data.seq);
    }
    if (data.type !== "relay") return;
    const text = data.inner?.candidate?.candidate ?? "";
    const m = /^t=([\d.]+) n=(\d+)$/.exec(text);
    if (!m) {
      p.misdelivered++;
      return;
    }
    p.latencies.push(performance.now() - Number(m[1]));
    const seen = p.bySender.get(data.inner.from) ?? new Set();
    if (seen.has(Number(m[2]))) p.misdelivered++;
    seen.add(Number(m[2]));
    p.bySender.set(data.inner.from, seen);
  };
  p.attach = (c) => {
    p.client = c;
    c.ws.on("message", (raw, binary) => {
      if (binary) return;
      let data;
      try {
        data = JSON.parse(raw.toString("utf8"));
      } catch {
        return;
      }
      p.onFrame(data);
    });
    // The harness also keeps an inbox; this benchmark reads frames itself.
    c.inbox = [];
  };
  p.attach(client);
  if (acks) {
    p.timer = setInterval(() => {
      if (p.lastSeq > p.acked && p.client.isOpen) {
        p.acked = p.lastSeq;
        p.client.send({ type: "ack", seq: p.acked });
      }
      p.client.inbox = [];
    }, ACK_EVERY_MS);
  }
  p.stop = () => clearInterval(p.timer);
  return p;
}

async function pairs(worker, rooms, { acks }) {
  const out = [];
  for (let i = 0; i < rooms; i++) {
    const room = uniqueRoom("bench");
    const tokens = [0, 1].map((k) => worker.token({ rooms: [room], sub: `u${k}-${room}` }));
    const ja = await worker.join(room, { token: tokens[0], label: `A${i}` });
    const jb = await worker.join(room, { token: tokens[1], label: `B${i}` });
    out.push({
      room,
      tokens,
      a: peer(ja.client, { acks }),
      b: peer(jb.client, { acks }),
      A: ja.joined.peerId,
      B: jb.joined.peerId,
      resumeB: jb.joined.resumeToken,
    });
  }
  return out;
}

const candidate = (to, n) => ({ type: "candidate", to, candidate: { candidate: `t=${performance.now().toFixed(3)} n=${n}`, sdpMid: "0" } });

/** Phase 1 for one build and one client kind. */
async function relay(label, buildDir, { acks }) {
  const worker = await startWorker({ buildDir });
  try {
    const ps = await pairs(worker, ROOMS, { acks });
    await sleep(300);
    const mark = worker.logs.mark();
    let sent = 0;
    const ticks = Math.round((SECONDS * 1000) / INTERVAL_MS);
    // Spread over each 100 ms tick in ten slices, so latency is the relay's, not a queue of
    // one burst behind this single-threaded client.
    const slice = Math.ceil(ps.length / 10);
    for (let t = 0; t < ticks; t++) {
      for (let i = 0; i < ps.length; i += slice) {
        for (const p of ps.slice(i, i + slice)) {
          p.a.client.send(candidate(p.B, t));
          p.b.client.send(candidate(p.A, t));
          sent += 2;
        }
        await sleep(INTERVAL_MS / 10);
      }
    }
    await sleep(QUIET_TAIL_MS);
    const rows = rowsSince(worker, mark);
    const latencies = ps.flatMap((p) => [...p.a.latencies, ...p.b.latencies]);
    const misdelivered = ps.reduce((n, p) => n + p.a.misdelivered + p.b.misdelivered, 0);
    ps.forEach((p) => (p.a.stop(), p.b.stop()));
    return { label, sent, received: latencies.length, p50: pct(latencies, 50), p99: pct(latencies, 99), rowsPer1000: (rows / Math.max(sent, 1)) * 1000, misdelivered };
  } finally {
    await worker.dispose();
  }
}

/** Phase 2: kill every B mid-trickle, resume them all. */
async function resumeScenario(buildDir) {
  const worker = await startWorker({ buildDir });
  try {
    const ps = await pairs(worker, ROOMS, { acks: true });
    const mark = worker.logs.mark();
    const ticks = Math.round((SECONDS * 1000) / INTERVAL_MS);
    const killAt = Math.floor(ticks / 3);
    const reconnectAt = killAt + 5; // ~500 ms of A sending to an away B
    const sentToB = new Map(ps.map((p) => [p.B, 0]));
    const resumeTimes = [];
    const caughtUp = [];
    let resumed = 0;
    const reconnects = [];
    for (let t = 0; t < ticks; t++) {
      if (t === killAt) {
        for (const p of ps) {
          p.b.stop();
          p.b.client.terminate();
        }
      }
      if (t === reconnectAt) {
        for (const p of ps) {
          const owed = sentToB.get(p.B);
          const started = performance.now();
          reconnects.push(
            worker
              .join(p.room, { token: p.tokens[1], query: `resume=${encodeURIComponent(p.resumeB)}`, label: `B'${p.room}` })
              .then(({ client, joined }) => {
                resumeTimes.push(performance.now() - started);
                if (joined.resumed && joined.peerId === p.B) resumed++;
                const fresh = peer(client, { acks: true });
                // Continue B's bookkeeping: what it had processed before the kill counts.
                fresh.lastSeq = p.b.lastSeq;
                fresh.lastKept = p.b.lastKept;
                fresh.acked = p.b.acked;
                fresh.bySender = p.b.bySender;
                fresh.latencies = p.b.latencies;
                fresh.onFrame(joined);
                p.b = fresh;
                const check = setInterval(() => {
                  if ((p.b.bySender.get(p.A)?.size ?? 0) >= owed) {
                    caughtUp.push(performance.now() - started);
                    clearInterval(check);
                  }
                }, 1);
                setTimeout(() => clearInterval(check), 10_000);
              }),
          );
        }
      }
      for (const p of ps) {
        p.a.client.send(candidate(p.B, t));
        sentToB.set(p.B, sentToB.get(p.B) + 1);
      }
      await sleep(INTERVAL_MS);
    }
    await Promise.all(reconnects);
    await sleep(1000);
    let lost = 0;
    let dupes = 0;
    let misdelivered = 0;
    for (const p of ps) {
      const got = p.b.bySender.get(p.A)?.size ?? 0;
      lost += sentToB.get(p.B) - got;
      dupes += p.b.dupes;
      misdelivered += p.b.misdelivered;
      p.a.stop();
      p.b.stop();
    }
    const sent = [...sentToB.values()].reduce((a, b) => a + b, 0);
    return {
      killed: ps.length,
      resumed,
      sent,
      lost,
      dupes,
      misdelivered,
      resumeP50: pct(resumeTimes, 50),
      resumeP99: pct(resumeTimes, 99),
      caughtUpP50: pct(caughtUp, 50),
      caughtUpP99: pct(caughtUp, 99),
      rows: rowsSince(worker, mark),
    };
  } finally {
    await worker.dispose();
  }
}

const started = performance.now();
console.log(`# ${ROOMS} rooms × 2 peers, each sending a candidate every ${INTERVAL_MS} ms for ${SECONDS} s${QUICK ? " (quick)" : ""}`);
const rows = [];
if (BEFORE) rows.push(await relay("before (v1, no seq)", BEFORE, { acks: false }));
rows.push(await relay("after, clients ack every 100 ms", BUILD_DIR, { acks: true }));
rows.push(await relay("after, clients never ack (v1)", BUILD_DIR, { acks: false }));
console.log("\n| build, clients | frames relayed | one-way p50 (ms) | p99 (ms) | storage rows per 1,000 frames |");
console.log("|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.label} | ${r.received} / ${r.sent} | ${ms(r.p50)} | ${ms(r.p99)} | ${r.rowsPer1000.toFixed(1)} |`);

const res = await resumeScenario(BUILD_DIR);
console.log(`\n| resume: ${res.killed} sockets killed mid-trickle, all resumed | value |`);
console.log("|---|---|");
console.log(`| resumed with the same peerId | ${res.resumed} / ${res.killed} |`);
console.log(`| frames sent to the killed peers | ${res.sent} |`);
console.log(`| frames lost | ${res.lost} |`);
console.log(`| frames delivered twice (same seq: unacknowledged, replayed; dropped by the client) | ${res.dupes} |`);
console.log(`| reconnect → joined{resumed}: p50 / p99 (ms) | ${ms(res.resumeP50)} / ${ms(res.resumeP99)} |`);
console.log(`| reconnect → every frame sent so far received: p50 / p99 (ms) | ${ms(res.caughtUpP50)} / ${ms(res.caughtUpP99)} |`);
console.log(`| storage rows written in the scenario | ${res.rows} |`);
console.log(`\nwall time ${((performance.now() - started) / 1000).toFixed(1)} s`);

const bad = rows.reduce((n, r) => n + r.misdelivered + (r.sent - r.received), 0) + res.lost + res.misdelivered + (res.killed - res.resumed);
if (bad) {
  console.error(`FAILED: ${bad} frame(s) lost or misdelivered, or a resume that did not resume`);
  process.exit(1);
}
