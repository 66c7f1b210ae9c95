#!/usr/bin/env node
// No-lost-signal benchmark (issue 7): what protocol v1.1 §3–§4 (seq on every server frame, ack,
// away/resume with replay) costs on the relay path, and whether a resume loses anything. Runs the
// built Worker in Miniflare's workerd on loopback, with real WebSocket clients in this process.
//
// 1. Relay. R rooms × 2 peers; each peer sends the other a candidate every 100 ms (10/s, half the
//    default candidate budget), spread over the tick so the latency is the relay's and not a
//    queue behind this single-threaded client. For each build and client kind: one-way latency
//    p50/p99 (send → receive, same clock), and storage rows written per 1,000 relayed frames:
//    the `rowsWritten` fields of the room's log lines (peer_joined, peer_resumed, storage_write,
//    room_alarm), summed from when every peer has joined to the last frame ("while relaying"),
//    and again including the quiet 3 s after it (when the room's quiet flush runs). Kinds:
//      - before: the build before v1.1 §3–§4 (protocol v1, no seq), if given;
//      - after, clients that acknowledge: cumulative `ack` of the highest seq below which
//        nothing is missing, batched every --ack-ms (50 ms), only when there is something new;
//      - after, clients that never acknowledge (what a v1 client costs the v1.1 server).
// 2. Resume (the v1.1 build only; "n/a" for v1). R rooms × 2 peers trickling both ways as above.
//    Mid-trickle every B socket is killed (ws.terminate(): no close frame; the client side
//    resets the connection), A keeps sending to the away B for 400 ms, then every A socket is
//    killed too (the room is all away), and 300 ms later all 2R sockets reconnect at once with
//    their resume token. A killed socket's own last send is at least one tick (100 ms) before
//    its kill: what a client had not yet handed to the server when it died is the client's to
//    resend, not the relay's to lose. Reports, summed over the runs: frames lost (a frame sent
//    on an open socket that never reached its addressee, or a seq never received), frames
//    delivered twice under the same seq (a replay of a frame the old socket got but had not yet
//    acknowledged; the client drops it) and time from starting the reconnect to `joined
//    {resumed:true}` and to having every replayed frame (every seq below the new `joined`'s, and
//    every frame the other peer sent before the reconnect).
//
// Numbers are per-run p50/p99 and rows, then the median over the runs (with the range when
// there are several): the machine is shared, so single runs are noisy.
//
// Asserts nothing about speed. Exits 1 only when a frame is lost, misrouted, delivered under two
// seqs or refused, a seq carries two different frames, or a resume does not resume. Every loop
// is bounded and stops by itself; a watchdog ends a hung run. Traffic goes to 127.0.0.1 only.
//
//   node bench/resume.mjs                 # full: 3 runs, 50 rooms (100 sockets), about 2 minutes
//   node bench/resume.mjs --quick         # 1 run, 10 rooms, about 15 s (20 s with a before build)
//   options: --after DIR (default: EDGESIGNAL_BUILD_DIR or build/)
//            --before DIR (default: EDGESIGNAL_BEFORE_BUILD_DIR; unset: no before row)
//            --runs N  --rooms N  --seconds S (relay phase)  --resume-seconds S  --ack-ms MS
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { BUILD_DIR, startWorker, uniqueRoom } from "../miniflare/lib/harness.mjs";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    after: { type: "string" },
    before: { type: "string" },
    runs: { type: "string" },
    rooms: { type: "string" },
    seconds: { type: "string" },
    "resume-seconds": { type: "string" },
    "ack-ms": { type: "string" },
  },
});
const QUICK = values.quick;
const int = (v, fallback, min, max) => {
  const n = Number(v ?? fallback);
  return Number.isFinite(n) ? Math.min(Math.max(Math.round(n), min), max) : fallback;
};
const RUNS = int(values.runs, QUICK ? 1 : 3, 1, 9);
const ROOMS = int(values.rooms, QUICK ? 10 : 50, 1, 200);
const SECONDS = int(values.seconds, QUICK ? 2 : 5, 1, 30);
const RESUME_SECONDS = int(values["resume-seconds"], QUICK ? 3 : 6, 3, 30);
const ACK_MS = int(values["ack-ms"], 50, 10, 1000);
const AFTER = resolve(values.after ?? BUILD_DIR);
const BEFORE_OPT = values.before ?? process.env.EDGESIGNAL_BEFORE_BUILD_DIR;
const BEFORE = BEFORE_OPT ? resolve(BEFORE_OPT) : null;
/** Each peer sends one candidate per tick. */
const INTERVAL_MS = 100;
/** A tick's sends are spread over this many slices. */
const SLICES = 10;
/** After the last frame: longer than the room's 2 s quiet flush, so its writes are counted. */
const QUIET_TAIL_MS = 3000;
const CONNECT_TIMEOUT_MS = 10_000;
/** The whole benchmark's limit; only turns a hang into a failure. */
const WATCHDOG_S = QUICK ? 120 : 900;

const watchdog = setTimeout(() => {
  console.error(`FAILED: still running after ${WATCHDOG_S} s; giving up`);
  process.exit(2);
}, WATCHDOG_S * 1000);
watchdog.unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const num = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "–");
/** The median over runs, with the range when there are several. */
const med = (xs, d = 2) => {
  const ok = xs.filter(Number.isFinite);
  if (ok.length <= 1 || Math.min(...ok) === Math.max(...ok)) return num(ok[0], d);
  return `${num(median(ok), d)} (${num(Math.min(...ok), d)}–${num(Math.max(...ok), d)})`;
};
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const log = (line) => process.stderr.write(`  ${line}\n`);

function buildId(dir) {
  const wasm = join(dir, "index_bg.wasm");
  if (!existsSync(wasm)) throw new Error(`${wasm} does not exist: build the Worker first`);
  const bytes = readFileSync(wasm);
  return `${dir} (wasm ${bytes.length.toLocaleString("en-US")} bytes, sha256 ${createHash("sha256").update(bytes).digest("hex").slice(0, 12)}…)`;
}

// ---------------------------------------------------------------------------------------------
// A peer: one identity whose successive sockets share its bookkeeping

/** Frames a resume answers afresh instead of replaying (v1.1 §3): they are not "kept". */
const NOT_KEPT = new Set(["joined", "warning", "refreshed", "ice_servers"]);

class Peer {
  constructor(worker, room, roomIndex, label, { acks }) {
    Object.assign(this, { worker, room, roomIndex, label, acks });
    this.token = worker.token({ rooms: [room], sub: `${label}-${room}` });
    this.client = null;
    this.open = false;
    this.peerId = null;
    this.resumeToken = null;
    this.other = null; // the other Peer of the room
    // seq bookkeeping (v1.1; v1 frames have no seq)
    this.seqs = new Map(); // seq → the frame's text without its seq
    this.contiguous = 0; // every seq ≤ this was received
    this.acked = 0;
    this.joinedSeq = 0; // seq of the latest joined
    this.dupSeq = 0; // same seq, same frame again (a replay of an unacknowledged frame): dropped
    this.seqConflict = 0; // same seq, a different frame: a Worker bug
    // relay payloads from the other peer
    this.got = new Set(); // n of every candidate received
    this.twice = 0; // the same candidate under two seqs (or twice in v1): a Worker bug
    this.misrouted = 0;
    this.refused = []; // error and warning frames
    this.latencies = [];
    this.sent = 0; // candidates sent to the other peer on an open socket
    // presence of the other peer, as a careful client sees it: the latest joined's snapshot,
    // then presence frames newer than it (replayed ones, older than the snapshot, are history)
    this.view = null;
    this.naiveView = null; // every presence frame in arrival order, replays included
    this.onJoined = null;
  }

  async connect(query) {
    const client = await this.worker.connect(this.room, { token: this.token, query, label: this.label, timeoutMs: CONNECT_TIMEOUT_MS });
    // The harness client queued whatever arrived before `open` resolved; take it over, in order.
    client.receive = (data, binary) => {
      if (!binary) this.frame(data.toString("utf8"), performance.now());
    };
    for (const f of client.inbox.splice(0)) if (!f.binary) this.frame(f.raw, f.at);
    this.client = client;
    this.open = true;
    client.closed.then(() => {
      if (this.client === client) this.open = false;
    });
    return client;
  }

  /** Connects (or resumes) and resolves with the `joined` frame. */
  join(query) {
    const joined = new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`${this.label} ${this.room}: no joined within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      this.onJoined = (frame) => {
        clearTimeout(timer);
        done(frame);
      };
    });
    return this.connect(query).then(() => joined);
  }

  frame(text, at) {
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      this.misrouted++;
      return;
    }
    if (typeof data.seq === "number") {
      const { seq, ...rest } = data;
      const key = JSON.stringify(rest);
      const seen = this.seqs.get(seq);
      if (seen !== undefined) {
        if (seen === key) this.dupSeq++;
        else this.seqConflict++;
        return; // the documented client rule: a seq already processed is dropped
      }
      this.seqs.set(seq, key);
      while (this.seqs.has(this.contiguous + 1)) this.contiguous++;
    }
    const replayed = typeof data.seq === "number" && data.seq < this.joinedSeq;
    switch (data.type) {
      case "joined": {
        if (typeof data.seq === "number") this.joinedSeq = data.seq;
        this.peerId = data.peerId;
        this.resumeToken = data.resumeToken;
        this.resumed = data.resumed === true;
        const other = (data.peers ?? [])[0];
        this.view = other ? (other.status === "away" ? "away" : "present") : null;
        this.naiveView = this.view;
        this.onJoined?.(data);
        this.onJoined = null;
        break;
      }
      case "peer_joined":
      case "peer_back":
      case "peer_away":
      case "peer_left": {
        const v = { peer_joined: "present", peer_back: "present", peer_away: "away", peer_left: "gone" }[data.type];
        this.naiveView = v;
        if (!replayed) this.view = v;
        break;
      }
      case "relay": {
        const m = /^t=([\d.]+) r=(\d+) n=(\d+)$/.exec(data.inner?.candidate?.candidate ?? "");
        if (!m || Number(m[2]) !== this.roomIndex || (this.other?.peerId && data.inner.from !== this.other.peerId)) {
          this.misrouted++;
          break;
        }
        const n = Number(m[3]);
        if (this.got.has(n)) this.twice++;
        this.got.add(n);
        if (!replayed) this.latencies.push(at - Number(m[1]));
        break;
      }
      case "error":
      case "warning":
        this.refused.push(text);
        break;
      default:
        break;
    }
    this.afterFrame?.();
  }

  /** Sends candidate `n` to the other peer. */
  sendCandidate(n) {
    const frame = { type: "candidate", to: this.other.peerId, candidate: { candidate: `t=${performance.now().toFixed(3)} r=${this.roomIndex} n=${n}`, sdpMid: "0" } };
    this.client.send(frame);
    this.sent++;
  }

  /** Cumulative ack of what was processed without a hole, only when there is something new. */
  ack() {
    if (this.acks && this.open && this.contiguous > this.acked) {
      this.acked = this.contiguous;
      this.client.send({ type: "ack", seq: this.acked });
    }
  }

  /** seqs up to the highest received that never arrived. */
  seqGaps() {
    let max = 0;
    for (const s of this.seqs.keys()) max = Math.max(max, s);
    return max - this.seqs.size;
  }

  kill() {
    this.open = false;
    this.client.terminate();
  }
}

/** R rooms, two peers each, joined one after the other (A first: B is the newcomer). */
async function rooms(worker, count, { acks }) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const room = uniqueRoom("bench");
    const a = new Peer(worker, room, i, "A", { acks });
    const b = new Peer(worker, room, i, "B", { acks });
    a.other = b;
    b.other = a;
    await a.join();
    await b.join();
    out.push({ room, a, b });
  }
  return out;
}

function ackLoop(peers) {
  const timer = setInterval(() => peers.forEach((p) => p.ack()), ACK_MS);
  return () => clearInterval(timer);
}

/** Room log lines with `rowsWritten` since `mark`: their sum, and the room alarms among them. */
function storageSince(worker, mark, until = Infinity) {
  const entries = worker.logs.entries.slice(mark, until).filter((e) => e.json);
  return {
    rows: sum(entries.map((e) => (typeof e.json.rowsWritten === "number" ? e.json.rowsWritten : 0))),
    alarms: entries.filter((e) => e.json.event === "room_alarm").length,
  };
}

/** Runs `ticks` ticks; `each(t, slicePairs)` is called for each of the tick's slices. */
async function trickle(ticks, pairs, each, { onTick } = {}) {
  const slice = Math.ceil(pairs.length / SLICES);
  for (let t = 0; t < ticks; t++) {
    onTick?.(t);
    for (let s = 0; s < SLICES; s++) {
      each(t, pairs.slice(s * slice, (s + 1) * slice));
      await sleep(INTERVAL_MS / SLICES);
    }
  }
}

/** Waits (bounded) until every peer received everything its other peer sent. */
async function drain(peers, limitMs) {
  const deadline = performance.now() + limitMs;
  while (performance.now() < deadline && peers.some((p) => p.got.size < p.other.sent)) await sleep(20);
}

// ---------------------------------------------------------------------------------------------
// 1. Relay

async function relay(kind, buildDir, { acks }) {
  const worker = await startWorker({ buildDir });
  try {
    const rs = await rooms(worker, ROOMS, { acks });
    const peers = rs.flatMap((r) => [r.a, r.b]);
    const stopAcks = ackLoop(peers);
    await sleep(300);
    // every peer has joined: from here on, rows belong to the relay
    for (const p of peers) p.latencies = [];
    const mark = worker.logs.mark();
    const ticks = Math.round((SECONDS * 1000) / INTERVAL_MS);
    await trickle(ticks, rs, (t, slice) => {
      for (const r of slice) {
        r.a.sendCandidate(t);
        r.b.sendCandidate(t);
      }
    });
    await drain(peers, 2000);
    const whileRelaying = worker.logs.mark();
    await sleep(QUIET_TAIL_MS);
    const during = storageSince(worker, mark, whileRelaying);
    const total = storageSince(worker, mark);
    stopAcks();
    const sent = sum(peers.map((p) => p.sent));
    const received = sum(peers.map((p) => p.got.size));
    const latencies = peers.flatMap((p) => p.latencies);
    return {
      kind,
      sent,
      received,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      rowsDuring: (during.rows / Math.max(sent, 1)) * 1000,
      rowsTotal: (total.rows / Math.max(sent, 1)) * 1000,
      alarms: total.alarms,
      misrouted: sum(peers.map((p) => p.misrouted)),
      twice: sum(peers.map((p) => p.twice)),
      seqConflict: sum(peers.map((p) => p.seqConflict)),
      seqGaps: sum(peers.map((p) => p.seqGaps())),
      refused: peers.flatMap((p) => p.refused),
    };
  } finally {
    await worker.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Resume

async function resumeRun(buildDir) {
  const worker = await startWorker({ buildDir });
  try {
    const rs = await rooms(worker, ROOMS, { acks: true });
    const peers = rs.flatMap((r) => [r.a, r.b]);
    const stopAcks = ackLoop(peers);
    await sleep(300);
    const mark = worker.logs.mark();
    const ticks = Math.round((RESUME_SECONDS * 1000) / INTERVAL_MS);
    const killB = Math.max(3, Math.round(ticks / 4));
    const killA = killB + 4; // A sends to the away B for 4 ticks (400 ms)
    const reconnect = killA + 3;
    const timings = []; // per resumed socket: {joined, caughtUp} in ms from the reconnect's start
    const reconnects = [];
    await trickle(
      ticks,
      rs,
      (t, slice) => {
        for (const r of slice) {
          for (const p of [r.a, r.b]) {
            // the tick before its own kill, a peer does not send (see the top of this file)
            if (p === r.b && t === killB - 1) continue;
            if (p === r.a && t === killA - 1) continue;
            if (p.open && p.joinedSeq && !p.resuming) p.sendCandidate(t);
          }
        }
      },
      {
        onTick: (t) => {
          if (t === killB) rs.forEach((r) => r.b.kill());
          if (t === killA) rs.forEach((r) => r.a.kill());
          if (t !== reconnect) return;
          for (const p of peers) {
            const owed = p.other.sent; // nothing is in flight: both sockets are dead
            const started = performance.now();
            const timing = { joined: NaN, caughtUp: NaN };
            timings.push(timing);
            const oldId = p.peerId;
            p.resuming = true;
            p.afterFrame = null;
            reconnects.push(
              p.join(`resume=${encodeURIComponent(p.resumeToken)}`).then(
                (joined) => {
                  timing.joined = performance.now() - started;
                  p.resumedOk = joined.resumed === true && joined.peerId === oldId;
                  const check = () => {
                    if (p.contiguous >= p.joinedSeq - 1 && p.got.size >= owed) {
                      timing.caughtUp = performance.now() - started;
                      p.afterFrame = null;
                    }
                  };
                  p.afterFrame = check;
                  check();
                  p.resuming = false;
                },
                (err) => {
                  p.resumeError = err.message;
                  p.resuming = false;
                },
              ),
            );
          }
        },
      },
    );
    await Promise.all(reconnects);
    await drain(peers, 3000);
    await sleep(2 * ACK_MS);
    stopAcks();
    const storage = storageSince(worker, mark);
    return {
      sockets: peers.length,
      resumed: peers.filter((p) => p.resumedOk).length,
      resumeErrors: peers.filter((p) => p.resumeError).map((p) => `${p.label} ${p.room}: ${p.resumeError}`),
      sent: sum(peers.map((p) => p.sent)),
      lost: sum(peers.map((p) => Math.max(0, p.other.sent - p.got.size))),
      seqGaps: sum(peers.map((p) => p.seqGaps())),
      dupSeq: sum(peers.map((p) => p.dupSeq)),
      twice: sum(peers.map((p) => p.twice)),
      seqConflict: sum(peers.map((p) => p.seqConflict)),
      misrouted: sum(peers.map((p) => p.misrouted)),
      refused: peers.flatMap((p) => p.refused),
      staleView: peers.filter((p) => p.view !== "present").length,
      staleNaiveView: peers.filter((p) => p.naiveView !== "present").length,
      notCaughtUp: timings.filter((t) => !Number.isFinite(t.caughtUp)).length,
      joinedP50: pct(timings.map((t) => t.joined).filter(Number.isFinite), 50),
      joinedP99: pct(timings.map((t) => t.joined).filter(Number.isFinite), 99),
      caughtUpP50: pct(timings.map((t) => t.caughtUp).filter(Number.isFinite), 50),
      caughtUpP99: pct(timings.map((t) => t.caughtUp).filter(Number.isFinite), 99),
      rows: storage.rows,
      awayMs: { A: (reconnect - killA) * INTERVAL_MS, B: (reconnect - killB) * INTERVAL_MS },
    };
  } finally {
    await worker.dispose();
  }
}

// ---------------------------------------------------------------------------------------------

const started = performance.now();
const KINDS = [
  ...(BEFORE ? [{ label: "before (v1: no seq, no ack)", dir: BEFORE, acks: false }] : []),
  { label: `after, clients ack (batched every ${ACK_MS} ms)`, dir: AFTER, acks: true },
  { label: "after, clients never ack (as a v1 client)", dir: AFTER, acks: false },
];
console.log(`# bench/resume.mjs${QUICK ? " --quick" : ""}: ${RUNS} run(s), medians over runs (range in brackets)`);
console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model?.trim() ?? "?"}), Node ${process.version}; Miniflare workerd on 127.0.0.1, clients in this process`);
console.log(`after:  ${buildId(AFTER)}`);
console.log(`before: ${BEFORE ? buildId(BEFORE) : "not given (EDGESIGNAL_BEFORE_BUILD_DIR or --before): no before row"}`);
console.log(
  `relay: ${ROOMS} rooms × 2 peers, each sending the other a candidate every ${INTERVAL_MS} ms for ${SECONDS} s; ` +
    `resume: ${ROOMS} rooms × 2 peers (${2 * ROOMS} sockets killed and resumed per run), ${RESUME_SECONDS} s`,
);

const relayResults = KINDS.map(() => []);
const resumeResults = [];
for (let run = 1; run <= RUNS; run++) {
  for (const [i, k] of KINDS.entries()) {
    const r = await relay(k.label, k.dir, { acks: k.acks });
    relayResults[i].push(r);
    log(`run ${run} ${k.label}: ${r.received}/${r.sent} frames, p50 ${num(r.p50)} ms, p99 ${num(r.p99)} ms, rows/1000 ${num(r.rowsDuring, 1)} → ${num(r.rowsTotal, 1)}, alarms ${r.alarms}`);
  }
  const res = await resumeRun(AFTER);
  resumeResults.push(res);
  log(
    `run ${run} resume: ${res.resumed}/${res.sockets} resumed, lost ${res.lost}, seq gaps ${res.seqGaps}, dup seq ${res.dupSeq}, ` +
      `joined p50/p99 ${num(res.joinedP50)}/${num(res.joinedP99)} ms, caught up ${num(res.caughtUpP50)}/${num(res.caughtUpP99)} ms`,
  );
}

console.log(`\n## Relay (one-way latency: send → receive; rows: per 1,000 relayed frames)\n`);
console.log("| build, clients | frames received / sent | one-way p50 (ms) | one-way p99 (ms) | rows per 1,000 frames while relaying | … incl. the 3 s quiet after | room alarms (all rooms, per run) |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const [i, k] of KINDS.entries()) {
  const rs = relayResults[i];
  console.log(
    `| ${k.label} | ${sum(rs.map((r) => r.received))} / ${sum(rs.map((r) => r.sent))} | ${med(rs.map((r) => r.p50))} | ${med(rs.map((r) => r.p99))} | ` +
      `${med(rs.map((r) => r.rowsDuring), 1)} | ${med(rs.map((r) => r.rowsTotal), 1)} | ${med(rs.map((r) => r.alarms), 0)} |`,
  );
}

const R = resumeResults;
const awayA = R[0].awayMs.A;
const awayB = R[0].awayMs.B;
console.log(
  `\n## Resume: per run ${2 * ROOMS} sockets killed mid-trickle (B, then A ${awayB - awayA} ms later), all reconnected at once ` +
    `with their resume token (B away ${awayB} ms, A ${awayA} ms); totals over ${RUNS} run(s)\n`,
);
const resumeRows = [
  ["sockets resumed (joined{resumed:true}, same peerId) / killed", `${sum(R.map((r) => r.resumed))} / ${sum(R.map((r) => r.sockets))}`],
  ["frames sent (both directions, whole scenario)", sum(R.map((r) => r.sent))],
  ["frames lost (sent, never received; or a seq never received)", `${sum(R.map((r) => r.lost))} (seq gaps ${sum(R.map((r) => r.seqGaps))})`],
  ["duplicates: same seq received twice (replay of a frame received but not yet acked; dropped by the client)", sum(R.map((r) => r.dupSeq))],
  ["duplicates the client cannot drop (one frame under two seqs; two frames under one seq)", sum(R.map((r) => r.twice + r.seqConflict))],
  ["misrouted frames / error or warning frames", `${sum(R.map((r) => r.misrouted))} / ${sum(R.map((r) => r.refused.length))}`],
  ["reconnect → joined{resumed:true}: p50 (ms)", med(R.map((r) => r.joinedP50))],
  ["reconnect → joined{resumed:true}: p99 (ms)", med(R.map((r) => r.joinedP99))],
  ["reconnect → joined and every replayed frame: p50 (ms)", med(R.map((r) => r.caughtUpP50))],
  ["reconnect → joined and every replayed frame: p99 (ms)", med(R.map((r) => r.caughtUpP99))],
  ["sockets that never caught up", sum(R.map((r) => r.notCaughtUp))],
  ["peers whose final view of the other is not `present` (joined snapshot, then newer presence frames)", sum(R.map((r) => r.staleView))],
  ["… the same, applying replayed presence frames too", sum(R.map((r) => r.staleNaiveView))],
  ["storage rows written, from the relay's start to the end (per run)", med(R.map((r) => r.rows), 0)],
];
console.log(`| resume | before (v1) | after |`);
console.log("|---|---:|---:|");
for (const [label, value] of resumeRows) console.log(`| ${label} | n/a | ${value} |`);
console.log(`\nwall time ${((performance.now() - started) / 1000).toFixed(1)} s`);

const problems = [];
for (const [i, k] of KINDS.entries()) {
  for (const r of relayResults[i]) {
    if (r.received !== r.sent) problems.push(`${k.label}: ${r.sent - r.received} frames lost`);
    if (r.misrouted || r.twice || r.seqConflict) problems.push(`${k.label}: ${r.misrouted} misrouted, ${r.twice} twice, ${r.seqConflict} seq conflicts`);
    if (r.seqGaps) problems.push(`${k.label}: ${r.seqGaps} seqs never received`);
    if (r.refused.length) problems.push(`${k.label}: ${r.refused.length} error/warning frames, e.g. ${r.refused[0]}`);
  }
}
for (const r of R) {
  if (r.resumed !== r.sockets) problems.push(`resume: ${r.sockets - r.resumed} sockets did not resume ${r.resumeErrors.slice(0, 3).join("; ")}`);
  if (r.lost || r.seqGaps) problems.push(`resume: ${r.lost} frames lost, ${r.seqGaps} seqs never received`);
  if (r.misrouted || r.twice || r.seqConflict) problems.push(`resume: ${r.misrouted} misrouted, ${r.twice} frames under two seqs, ${r.seqConflict} seqs with two frames`);
  if (r.refused.length) problems.push(`resume: ${r.refused.length} error/warning frames, e.g. ${r.refused[0]}`);
  if (r.staleView) problems.push(`resume: ${r.staleView} peers see the other as away or gone at the end`);
}
if (problems.length) {
  console.error(`FAILED:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
