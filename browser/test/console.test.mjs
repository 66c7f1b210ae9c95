// The web console in real Chromium, served by the Worker itself (its `[assets]`, in workerd),
// inside the test's own network namespace: two consoles call each other (video both ways and the
// data channel), one's signaling socket is killed mid-call and the SDK resumes without dropping
// the call; the console calls the Robot Agent (agent/agent.mjs, a real Node WebRTC peer) and
// exchanges data-channel messages with it (seed 000 TC1–TC3: the console connects, the agent
// receives the offer and every candidate and answers); a bad token shows a readable error.
// Timings are printed, never asserted: the seed's targets (connect under 500 ms, offer→answer
// under 100 ms) are measured over many calls by bench/console-agent.mjs. Screenshots go to
// browser/artifacts/ (look at them).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, requireNetns } from "../lib/chromium.mjs";
import { agentSignals, consoleState, openConsole as open, startAgent as start, until } from "../lib/console.mjs";
import { startWorker, uniqueRoom } from "../../miniflare/lib/harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const ARTIFACTS = join(ROOT, "browser", "artifacts");

requireNetns();

let worker;
let browser;
const agents = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  worker = await startWorker({ assets: true, bindings: { STUN_SERVERS: "" } });
  browser = await launchChromium();
});

after(async () => {
  for (const agent of agents) agent.kill("SIGKILL");
  await browser?.close();
  await worker?.dispose();
});

/** A console page opened with a fragment (room, token, name), as scripts/dev.sh's link does. */
const openConsole = (fragment) => open(browser, worker, fragment);

/** What a console saw and where its connections stand: printed when a wait fails. */
async function diagnose(page, name) {
  const lines = (await page.locator("#log li").allTextContents()).slice(-40).map((l) => `    ${l.slice(0, 140)}`);
  const pcs = await page.evaluate(() =>
    [...(window.edgesignalConsole.manager?.peers ?? [])].map(([id, { pc }]) => ({
      id,
      signaling: pc.signalingState,
      connection: pc.connectionState,
      transceivers: pc.getTransceivers().map((t) => `${t.mid}:${t.receiver.track.kind}:${t.currentDirection}`),
    })),
  );
  console.log(`  ${name}'s console log:\n${lines.join("\n")}\n  ${name}'s connections: ${JSON.stringify(pcs)}`);
}

function token(sub, room) {
  return worker.token({ sub, rooms: [room], ttlSeconds: 3600 });
}

test("two consoles: call, answer, video both ways, data channel; a killed signaling socket resumes without dropping the call", { timeout: 120_000 }, async () => {
  const room = uniqueRoom("console");
  const a = await openConsole({ room, token: token("console-alice", room), name: "Alice" });
  await until(a, () => window.edgesignalConsole.metrics.connectMs != null, null, 10_000, "Alice connected");
  const b = await openConsole({ room, token: token("console-bob", room), name: "Bob" });
  await until(b, () => window.edgesignalConsole.metrics.connectMs != null, null, 10_000, "Bob connected");
  // The token never stays in the address bar.
  assert.equal(new URL(a.url()).hash, "");
  // Alice sees Bob by name, available, and calls him with the button a person would press.
  const callBob = a.getByRole("button", { name: "Call Bob" });
  await callBob.waitFor({ timeout: 10_000 });
  assert.equal(await a.locator("#peers li .status").textContent(), "available");
  await callBob.click();
  await b.getByRole("alertdialog").getByText("Alice is calling (video)").waitFor({ timeout: 10_000 });
  await b.getByRole("button", { name: "Answer" }).click();
  await b.getByRole("alertdialog").waitFor({ state: "hidden", timeout: 5_000 });
  assert.equal(await a.getByRole("alertdialog").isVisible(), false, "the caller never sees an incoming-call prompt");
  // Video both ways: each side's first remote frame, and the data channel open.
  const [sa, sb] = [await consoleState(a), await consoleState(b)];
  try {
    await until(a, (id) => window.edgesignalConsole.metrics.peers.get(id)?.firstVideoMs != null, sb.me, 20_000, "Alice sees Bob's video");
    await until(b, (id) => window.edgesignalConsole.metrics.peers.get(id)?.firstVideoMs != null, sa.me, 20_000, "Bob sees Alice's video");
  } catch (error) {
    await diagnose(a, "Alice");
    await diagnose(b, "Bob");
    throw error;
  }
  await a.getByRole("button", { name: "Send" }).and(a.locator(":enabled")).waitFor({ timeout: 10_000 });
  await a.getByLabel("Data channel").fill("hello Bob");
  await a.getByRole("button", { name: "Send" }).click();
  await b.locator("#chat li", { hasText: "hello Bob" }).waitFor({ timeout: 10_000 });
  // Peers show each other in a call; the stats table has a path and a round trip.
  await until(a, (id) => window.edgesignalConsole.metrics.peers.get(id)?.rtt != null, sb.me, 10_000, "stats collected");
  await b.locator("#peers li .status", { hasText: "in a call" }).waitFor({ timeout: 5_000 });
  const afterCall = await consoleState(a);
  const toBob = afterCall.peers[sb.me];
  assert.equal(toBob.state, "connected");
  assert.match(toBob.path, /^host ↔ host \(udp\)$/);
  assert.ok(toBob.bytesReceived > 0 && toBob.bytesSent > 0);
  await a.screenshot({ path: join(ARTIFACTS, "console-call.png") });
  // The event log shows the start of a long frame (a relayed SDP), and its tooltip all of it.
  const longRows = await b.locator("#log li").evaluateAll((rows) =>
    rows.map((li) => ({ body: li.querySelector(".body").textContent, title: li.title })).filter((row) => row.title.length > 300),
  );
  assert.ok(longRows.some((row) => row.title.includes('"type":"offer"')), "the relayed offer was logged");
  for (const { body, title } of longRows) assert.equal(body, `${title.slice(0, 300)}…`);
  console.log(
    `  console↔console: connect ${sa.connectMs.toFixed(1)} / ${sb.connectMs.toFixed(1)} ms; offer→answer ${(toBob.offerAnswerMs[0] ?? (await consoleState(b)).peers[sa.me].offerAnswerMs[0]).toFixed(1)} ms; ` +
      `connected after ${toBob.connectedMs.toFixed(0)} ms; first video frame after ${toBob.firstVideoMs.toFixed(0)} ms (from call accepted)`,
  );

  // Bob's signaling socket dies (as on a network change): the SDK resumes, the call stays up.
  await b.evaluate(() => window.edgesignalConsole.client.ws.close(4000, "network change"));
  await b.locator("#log li", { hasText: "the signaling connection is back" }).waitFor({ timeout: 15_000 });
  const bAfter = await consoleState(b);
  assert.equal(bAfter.me, sb.me, "the same peer id after the resume");
  assert.equal(bAfter.call?.state, "active", "still in the call");
  assert.equal(bAfter.peers[sa.me].state, "connected", "the media connection never dropped");
  await a.getByLabel("Data channel").fill("still there?");
  await a.getByRole("button", { name: "Send" }).click();
  await b.locator("#chat li", { hasText: "still there?" }).waitFor({ timeout: 10_000 });
  // Signaling after the resume works too: Alice hangs up, Bob's console ends the call.
  await a.getByRole("button", { name: "Hang up" }).click();
  await until(b, () => window.edgesignalConsole.call === null, null, 10_000, "Bob's call ended");
  assert.equal(await b.locator("#call-state").textContent(), "idle");
  assert.deepEqual([...a.errors, ...b.errors], []);
  await a.context().close();
  await b.context().close();
});

/** The Robot Agent in `room` (killed after the tests), once it has joined. */
async function startAgent(room) {
  const agent = await start(worker, room, token("robot", room));
  agents.push(agent);
  return agent;
}

test("the console calls the Robot Agent: it receives the offer and every candidate, answers, and echoes the data channel (seed 000 TC1–TC3)", { timeout: 120_000 }, async () => {
  const room = uniqueRoom("console-agent");
  const agent = await startAgent(room);
  const page = await openConsole({ room, token: token("console-carol", room), name: "Carol" });
  // TC1: connect from the console.
  const connectMs = await until(page, () => window.edgesignalConsole.metrics.connectMs, null, 10_000, "the console connected");
  // The agent shows up by name; call it.
  const callAgent = page.getByRole("button", { name: "Call Robot Agent" });
  await callAgent.waitFor({ timeout: 10_000 });
  await callAgent.click();
  await agent.waitFor((e) => e.event === "call_incoming", 10_000, "the agent got the call");
  // TC2/TC3: the console's offer reaches the agent, which answers.
  const offer = await agent.waitFor((e) => e.event === "signal" && e.direction === "in" && e.type === "offer", 10_000, "the agent received an offer");
  assert.equal(offer.peerId, (await consoleState(page)).me);
  await page
    .locator("#chat-input:enabled")
    .waitFor({ timeout: 15_000 })
    .catch(async (error) => {
      // What each side saw, to tell a signaling failure from a WebRTC one.
      console.log(`  agent events:\n${agent.events.slice(-40).map((e) => `    ${JSON.stringify(e)}`).join("\n")}`);
      console.log(`  console log:\n${(await page.locator("#log li").allTextContents()).slice(-40).map((l) => `    ${l.slice(0, 160)}`).join("\n")}`);
      throw error;
    });
  // Data channel: what the console sends comes back.
  for (const text of ["ping 1", "ping 2 ✓"]) {
    await page.getByLabel("Data channel").fill(text);
    await page.getByRole("button", { name: "Send" }).click();
    await page.locator("#chat li", { hasText: `Robot Agent${text}` }).waitFor({ timeout: 10_000 });
  }
  // The agent's test video plays in the console.
  const agentId = agent.joined.peerId;
  await until(page, (id) => window.edgesignalConsole.metrics.peers.get(id)?.firstVideoMs != null, agentId, 20_000, "the agent's video");
  // No candidate lost: once the console has gathered them all, the agent received every one.
  await until(page, (id) => window.edgesignalConsole.manager.peers.get(id)?.pc.iceGatheringState === "complete", agentId, 15_000, "gathering complete");
  const sent = (await consoleState(page)).peers[agentId].candidatesSent;
  assert.ok(sent > 0);
  const received = () => agentSignals(agent, "in", "candidate").length;
  await agent
    .waitFor(() => received() >= sent, 5_000, `all ${sent} candidates at the agent`)
    .catch(() => assert.fail(`the console sent ${sent} candidates, the agent received ${received()}`));
  assert.equal(received(), sent);
  await until(page, (id) => window.edgesignalConsole.metrics.peers.get(id)?.rtt != null, agentId, 10_000, "stats collected");
  const state = await consoleState(page);
  const toAgent = state.peers[agentId];
  assert.ok(toAgent.offerAnswerMs.length > 0, "the console offered and got an answer");
  assert.equal(agentSignals(agent, "out", "answer").length, 1, "the agent answered the one offer");
  assert.deepEqual(agent.events.filter((e) => e.event === "webrtc_error"), []);
  assert.equal(agent.events.filter((e) => e.event === "echo").length, 2);
  await page.screenshot({ path: join(ARTIFACTS, "console-agent.png") });
  console.log(
    `  console→agent: connect ${connectMs.toFixed(1)} ms; offer→answer ${toAgent.offerAnswerMs[0].toFixed(1)} ms; ` +
      `connected after ${toAgent.connectedMs.toFixed(0)} ms; first video frame after ${toAgent.firstVideoMs.toFixed(0)} ms; candidates ${sent} sent, ${received()} received`,
  );
  // Hanging up reaches the agent.
  await page.getByRole("button", { name: "Hang up" }).click();
  await agent.waitFor((e) => e.event === "call_ended", 10_000, "the agent saw the call end");
  assert.deepEqual(page.errors, []);
  await page.context().close();
  agent.kill("SIGTERM");
});

test("a bad token, or a token for another room, shows a readable error in the page", { timeout: 60_000 }, async () => {
  const room = uniqueRoom("console-bad");
  const page = await openConsole({ room, token: "not-a-jwt" });
  const alert = page.getByRole("alert");
  await alert.waitFor({ timeout: 10_000 });
  assert.match(await alert.textContent(), /^The server refused the token \(unauthorized\): .+\. Mint a fresh one with "node scripts\/mint-token\.mjs --rooms console-bad-[0-9a-f]+"\.$/);
  assert.equal(await page.locator("#status").textContent(), "Not connected");
  assert.equal(await page.getByRole("button", { name: "Connect" }).isEnabled(), true, "the form can be used again");
  await page.screenshot({ path: join(ARTIFACTS, "console-bad-token.png") });
  // A valid token for another room: forbidden, said so.
  await page.getByLabel("Token").fill(token("console-dave", "some-other-room"));
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByRole("alert").getByText(`This token may not enter room "${room}" (forbidden)`).waitFor({ timeout: 10_000 });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
