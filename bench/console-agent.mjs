#!/usr/bin/env node
// Benchmark: seed 000's timings (TC1 connect under 500 ms, TC2/TC3 SDP offer→answer under
// 100 ms) measured where a user sees them: the web console in real Chromium calls the Robot Agent
// (agent/agent.mjs, Node + libwebrtc) through the Worker in workerd, a fresh page, agent and room
// per call. Offer→answer is split into its parts on the system clock: the offer's way to the
// agent, the agent's answer (libwebrtc), the answer's way back to the page's main thread, and the
// page's own handling of that message until the SDK reports the answer (the console's listeners
// run first). `--room-split` also splits each way at the room: when this process reads the
// room's `relay.offer` / `relay.answer` line from workerd's stdout (LOG_LEVEL=debug, which costs
// the relay a little; the pipe moves a little time from the part before to the part after). Then
// the same two relays with the same SDP sizes between two plain
// WebSocket clients with nothing else running. Prints numbers; asserts nothing about speed (this
// is where the targets are read, not in a timed test); fails only when a call does not work (no
// answer, no echo, a candidate lost). Bounded: --calls (at most 50) and --relays (at most 500).
//
//   bash browser/netns.sh node bench/console-agent.mjs [--calls 10] [--relays 50] [--room-split]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { launchChromium, requireNetns } from "../browser/lib/chromium.mjs";
import { agentSignals, consoleState, openConsole, startAgent, until, wallClockOffset } from "../browser/lib/console.mjs";
import { startWorker, uniqueRoom } from "../miniflare/lib/harness.mjs";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "10" },
    relays: { type: "string", default: "50" },
    "room-split": { type: "boolean", default: false },
  },
});
const calls = Math.min(Math.max(Number.parseInt(values.calls, 10) || 10, 1), 50);
const relays = Math.min(Math.max(Number.parseInt(values.relays, 10) || 50, 1), 500);
requireNetns();

const TARGETS = { connect: 500, offerAnswer: 100 };
const quantile = (samples, q) => {
  const s = [...samples].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const wallOffset = wallClockOffset();

/** When this process read each room's relay lines, by kind ("offer" | "answer"), system clock. */
const relayLines = { offer: [], answer: [] };
function watchRelays(worker) {
  worker.logs.listeners.add(({ json }) => {
    const kind = json?.event === "relay.offer" ? "offer" : json?.event === "relay.answer" ? "answer" : null;
    if (kind) relayLines[kind].push({ room: json.room, at: performance.now() + wallOffset });
  });
}
const relayedAt = (kind, room) => relayLines[kind].find((l) => l.room === room)?.at ?? Number.NaN;

/** In the page, before its scripts: when the main thread starts dispatching the socket message
 * that carries the answer (this listener is the socket's first). */
function recordAnswerArrival() {
  const Native = window.WebSocket;
  window.answerArrivals = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (typeof e.data === "string" && e.data.includes('"type":"answer"')) window.answerArrivals.push(performance.now());
      });
    }
  };
}

/** One call: a console page and an agent in a fresh room; the console calls, the agent answers. */
async function oneCall(worker, browser, i) {
  const room = uniqueRoom(`bench-console-${i}`);
  const agent = await startAgent(worker, room, worker.token({ sub: "robot", rooms: [room], ttlSeconds: 600 }));
  const page = await openConsole(browser, worker, { room, token: worker.token({ sub: `console-${i}`, rooms: [room], ttlSeconds: 600 }), name: "Bench" }, { init: recordAnswerArrival });
  try {
    await until(page, () => window.edgesignalConsole.metrics.connectMs, null, 10_000, "the console connected");
    const call = page.getByRole("button", { name: "Call Robot Agent" });
    await call.waitFor({ timeout: 10_000 });
    await call.click();
    const agentId = agent.joined.peerId;
    await until(page, (id) => window.edgesignalConsole.metrics.peers.get(id)?.lastExchange != null, agentId, 15_000, "the agent's answer");
    // The call works: the data channel echoes, and every candidate reached the agent.
    await page.locator("#chat-input:enabled").waitFor({ timeout: 15_000 });
    await page.getByLabel("Data channel").fill(`bench ${i}`);
    await page.getByRole("button", { name: "Send" }).click();
    await page.locator("#chat li", { hasText: `Robot Agentbench ${i}` }).waitFor({ timeout: 10_000 });
    await until(page, (id) => window.edgesignalConsole.manager.peers.get(id)?.pc.iceGatheringState === "complete", agentId, 15_000, "gathering complete");
    const state = await consoleState(page);
    const t = state.peers[agentId];
    await agent.waitFor(() => agentSignals(agent, "in", "candidate").length >= t.candidatesSent, 5_000, `all ${t.candidatesSent} candidates at the agent`);
    const [offerIn] = agentSignals(agent, "in", "offer");
    const [answerOut] = agentSignals(agent, "out", "answer");
    const [arrival] = await page.evaluate(() => window.answerArrivals);
    const offerSent = state.wallOffset + t.lastExchange.offerSentAt;
    const answerArrived = state.wallOffset + arrival;
    // The SDP sizes of this call, for the quiet relay below.
    const sizes = await page.evaluate((id) => {
      const { pc } = window.edgesignalConsole.manager.peers.get(id);
      return { offer: pc.localDescription.sdp.length, answer: pc.remoteDescription.sdp.length };
    }, agentId);
    await page.getByRole("button", { name: "Hang up" }).click();
    await agent.waitFor((e) => e.event === "call_ended", 10_000, "the agent saw the call end");
    return {
      connect: state.connectMs,
      offerAnswer: t.offerAnswerMs[0],
      toAgent: offerIn.epochMs - offerSent,
      pageToRoom: relayedAt("offer", room) - offerSent,
      roomToAgent: offerIn.epochMs - relayedAt("offer", room),
      atAgent: answerOut.epochMs - offerIn.epochMs,
      toPage: answerArrived - answerOut.epochMs,
      agentToRoom: relayedAt("answer", room) - answerOut.epochMs,
      roomToPage: answerArrived - relayedAt("answer", room),
      inPage: t.lastExchange.answerReceivedAt - arrival,
      connected: t.connectedMs,
      candidates: t.candidatesSent,
      sizes,
    };
  } finally {
    await page.context().close();
    agent.kill("SIGTERM");
  }
}

/** The same two relays (offer A→B, answer B→A on receipt) between plain `ws` clients. */
async function quietRelays(worker, sizes) {
  const { a, b, A, B } = await worker.pair(uniqueRoom("bench-console-quiet"));
  const filler = (n, tag) => `v=0\r\n${tag}`.padEnd(n, "a=x\r\n");
  const samples = [];
  for (let i = 0; i < relays; i++) {
    const t0 = performance.now();
    a.send({ type: "offer", to: B, sdp: filler(sizes.offer, `o${i}`), correlationId: `o${i}` });
    await b.nextFrame((f) => f.correlationId === `o${i}`);
    b.send({ type: "answer", to: A, sdp: filler(sizes.answer, `a${i}`), correlationId: `a${i}` });
    const answer = await a.nextFrame((f) => f.correlationId === `a${i}`);
    samples.push(answer.at - t0);
  }
  a.close();
  b.close();
  return samples;
}

const COLUMNS = [
  ["connect", "connect"],
  ["offer→answer", "offerAnswer"],
  ["  to agent", "toAgent"],
  ["    to room", "pageToRoom"],
  ["    room→agent", "roomToAgent"],
  ["  at agent", "atAgent"],
  ["  to page", "toPage"],
  ["    to room", "agentToRoom"],
  ["    room→page", "roomToPage"],
  ["  in page", "inPage"],
  ["connected", "connected"],
];
const ms = (x) => (Number.isNaN(x) ? "–" : x.toFixed(1));

/** Jiffies of all CPUs from /proc/stat: total and stolen (time the VM's host gave to others). */
function cpuTicks() {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
}

const roomSplit = values["room-split"];
const worker = await startWorker({ assets: true, bindings: { STUN_SERVERS: "", ...(roomSplit ? { LOG_LEVEL: "debug" } : {}) } });
watchRelays(worker);
const columns = COLUMNS.filter(([, key]) => roomSplit || !["pageToRoom", "roomToAgent", "agentToRoom", "roomToPage"].includes(key));
let browser;
try {
  browser = await launchChromium();
  const results = [];
  console.log(`console → Robot Agent, ${calls} calls (a fresh page, agent and room each), ms; offer→answer = the parts below it`);
  console.log(`  ${"call".padEnd(14)}${Array.from({ length: calls }, (_, i) => String(i + 1).padStart(7)).join("")}`);
  const before = cpuTicks();
  for (let i = 1; i <= calls; i++) results.push(await oneCall(worker, browser, i));
  const after = cpuTicks();
  await browser.close();
  browser = undefined;
  for (const [label, key] of [...columns, ["candidates", "candidates"]]) {
    console.log(`  ${label.padEnd(14)}${results.map((r) => (key === "candidates" ? String(r[key]) : ms(r[key])).padStart(7)).join("")}`);
  }
  const steal = (after.steal - before.steal) / Math.max(1, after.total - before.total);
  console.log(`  CPU stolen by the VM's host during the calls: ${(steal * 100).toFixed(0)}%${steal > 0.05 ? " (a noisy machine: compare runs with care)" : ""}`);
  const sizes = results.at(-1).sizes;
  const quiet = await quietRelays(worker, sizes);
  console.log(`  ${"".padEnd(14)}${["p50", "p95", "max", "target", "within"].map((h) => h.padStart(8)).join("")}`);
  for (const [label, key] of columns) {
    const xs = results.map((r) => r[key]).filter((x) => !Number.isNaN(x));
    const target = TARGETS[key];
    const cells = [quantile(xs, 0.5), quantile(xs, 0.95), Math.max(...xs)].map(ms);
    if (target) cells.push(String(target), `${xs.filter((x) => x < target).length}/${xs.length}`);
    console.log(`  ${label.padEnd(14)}${cells.map((c) => c.padStart(8)).join("")}`);
  }
  console.log(
    `  the same two relays${roomSplit ? " (LOG_LEVEL=debug)" : ""} (offer ${sizes.offer} B → answer ${sizes.answer} B) between two ws clients, nothing else running, ${relays} rounds: ` +
      `p50 ${quantile(quiet, 0.5).toFixed(2)} ms, p95 ${quantile(quiet, 0.95).toFixed(2)} ms, max ${Math.max(...quiet).toFixed(2)} ms`,
  );
} finally {
  await browser?.close();
  await worker.dispose();
}
