// Real TURN, real browser (issue 9): inside a network namespace this run made itself
// (browser/netns.sh), a real coturn with `use-auth-secret`, the built Worker in workerd with
// TURN_SECRET, and Debian's Chromium driven by playwright-core. Two pages run seed 004's flow
// through the Worker (call_initiate → call_incoming → call_answer → call_accepted, then
// offer/answer/candidates carrying the callId) with `iceTransportPolicy: "relay"` and the
// credentials from `joined`, open a data channel and play each other's fake-camera video; a third
// page with tampered credentials gets no relay candidate. All traffic stays in the namespace.
//
// Run with: bash browser/netns.sh node --test browser/test/   (scripts/test.sh does)

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, requireNetns } from "../lib/chromium.mjs";
import { startWorker, uniqueRoom } from "../../miniflare/lib/harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const TURN_IP = "10.77.0.1";
const TURN_PORT = 3478;
const TURN_SECRET = randomBytes(16).toString("hex");
const RUN_TIMEOUT_MS = 30_000;

requireNetns();

let turn;
let worker;
let pages;
let browser;
const turnLog = [];

/** Resolves once something accepts TCP connections on `host:port` (bounded by `ms`). */
async function listening(host, port, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port}; turnserver said:\n${turnLog.join("")}`);
    await new Promise((r) => setTimeout(r, 50)); // polling a port that has no event to wait on
  }
}

before(async () => {
  turn = spawn(
    "turnserver",
    [
      "-n", // no config file
      `--listening-ip=${TURN_IP}`,
      `--relay-ip=${TURN_IP}`,
      `--listening-port=${TURN_PORT}`,
      "--use-auth-secret",
      `--static-auth-secret=${TURN_SECRET}`,
      "--realm=edgesignal.test",
      "--fingerprint",
      "--no-tls",
      "--no-dtls",
      "--no-cli",
      "--no-multicast-peers",
      `--allowed-peer-ip=${TURN_IP}`,
      "--min-port=49152",
      "--max-port=49200",
      "--log-file=stdout",
      "--simple-log",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  turn.stdout.on("data", (d) => turnLog.push(String(d)));
  turn.stderr.on("data", (d) => turnLog.push(String(d)));
  await listening(TURN_IP, TURN_PORT, 10_000);
  worker = await startWorker({
    bindings: {
      STUN_SERVERS: "",
      TURN_SERVER: `turn:${TURN_IP}:${TURN_PORT}?transport=udp`,
      TURN_SECRET,
      TURN_TTL_S: "600",
    },
  });
  const html = readFileSync(join(HERE, "..", "page.html"), "utf8");
  pages = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  // 127.0.0.1: a secure context, so getUserMedia works over plain http.
  await new Promise((resolve) => pages.listen(0, "127.0.0.1", resolve));
  // playwright-core gives the browser a fresh temporary profile of its own.
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await worker?.dispose();
  await new Promise((resolve) => (pages ? pages.close(resolve) : resolve()));
  turn?.kill("SIGTERM");
});

async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`  page error: ${e.message}`));
  page.on("console", (m) => process.env.EDGESIGNAL_VERBOSE && console.log(`  page: ${m.text()}`));
  await page.goto(`http://127.0.0.1:${pages.address().port}/`);
  return page;
}

function wsUrl(room, sub) {
  const token = worker.token({ sub, rooms: [room], ttlSeconds: 600 });
  return `ws://${worker.url.host}/ws/${room}?token=${token}`;
}

test("two pages call each other through the Worker and talk over TURN relay only", { timeout: 60_000 }, async () => {
  const room = uniqueRoom("browser");
  const [a, b] = [await openPage(), await openPage()];
  // B joins first (it will be called); A joins and calls it.
  const bRun = b.evaluate((o) => window.peer(o), { url: wsUrl(room, "browser-b"), role: "callee", text: "hello from B" });
  const bJoined = await worker.waitForLog((l) => l.event === "room.join" && l.room === room, 10_000);
  void bJoined;
  const aRun = a.evaluate((o) => window.peer(o), { url: wsUrl(room, "browser-a"), role: "caller", text: "hello from A" });
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("the call did not connect in time")), RUN_TIMEOUT_MS).unref());
  const [ra, rb] = await Promise.race([Promise.all([aRun, bRun]), timeout]);
  assert.equal(ra.message, "hello from B");
  assert.equal(rb.message, "hello from A");
  assert.equal(ra.callId, rb.callId);
  assert.ok(ra.width > 0 && rb.width > 0, `remote video width ${ra.width} / ${rb.width}`);
  for (const r of [ra, rb]) {
    assert.equal(r.localCandidateType, "relay", JSON.stringify(r));
    assert.equal(r.remoteCandidateType, "relay", JSON.stringify(r));
    assert.deepEqual(r.gatheredTypes, ["relay"], "relay only");
    assert.equal(r.relayError, undefined);
  }
  const t = ra.times;
  console.log(
    `  call_initiate → call_accepted ${(t.accepted - t.initiate).toFixed(1)} ms; → data channel open ${(t.channelOpen - t.initiate).toFixed(0)} ms; ` +
      `→ first data message ${(t.message - t.initiate).toFixed(0)} ms; → remote video playing ${(t.video - t.initiate).toFixed(0)} ms`,
  );
});

test("a page with tampered TURN credentials gathers no relay candidate", { timeout: 30_000 }, async () => {
  const room = uniqueRoom("browser-bad");
  const { client, joined } = await worker.join(room);
  await client.close();
  const servers = joined.iceServers.map((s) => ({ ...s }));
  const good = await (await openPage()).evaluate((o) => window.gatherOnly(o), { iceServers: servers });
  assert.ok(good.includes("relay"), `the real credentials gather relay candidates: ${good}`);
  servers[0].credential = `${servers[0].credential.slice(0, -4)}AAA=`;
  const bad = await (await openPage()).evaluate((o) => window.gatherOnly(o), { iceServers: servers });
  assert.deepEqual(bad, [], "no relay candidate with a tampered credential");
});
