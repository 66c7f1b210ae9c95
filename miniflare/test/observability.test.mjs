// Observability (docs/observability.md) against the built Worker in workerd: a scripted session
// (connect, join, offer, answer, candidates, a throttled flood, away, resume, a call, hangup,
// leave) read back from the log stream, with the data points as the Worker writes them to its
// Analytics Engine binding (echoed as `metric` lines at LOG_LEVEL=debug); and what must never
// appear in any line: a token, an SDP, a candidate, a plain `sub`.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, uniqueRoom } from "../lib/harness.mjs";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SUB_A = "alice-plain-sub@example.com";
const SUB_B = "bob-plain-sub@example.com";
const SDP = "v=0 o=- SECRET-SDP-TEXT";
const CANDIDATE = "candidate:SECRET-CANDIDATE-TEXT 1 udp 2122260223 192.0.2.1 5000 typ host";

let worker;
before(async () => {
  worker = await startWorker({
    bindings: { LOG_LEVEL: "debug", RATE_CANDIDATE_PER_S: "1", RATE_CANDIDATE_BURST: "5" },
    miniflare: { analyticsEngineDatasets: { METRICS: { dataset: "edgesignal_test" } } },
  });
});
after(() => worker?.dispose());

test("a scripted session logs the documented events and writes the documented points", async () => {
  const room = uniqueRoom("observe");
  const mark = worker.logs.mark();
  const tokenA = worker.token({ sub: SUB_A, rooms: [room] });
  const tokenB = worker.token({ sub: SUB_B, rooms: [room] });
  const { client: a, joined: ja } = await worker.join(room, {
    token: tokenA,
    headers: { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` },
  });
  const { client: b, joined: jb } = await worker.join(room, { token: tokenB });
  await a.next((f) => f.type === "peer_joined");
  // Negotiation.
  b.send({ type: "offer", to: ja.peerId, sdp: SDP });
  await a.next((f) => f.type === "relay");
  a.send({ type: "answer", to: jb.peerId, sdp: SDP });
  await b.next((f) => f.type === "relay");
  // A candidate flood over a burst of 5: throttled, counted, never a line each at info.
  for (let i = 0; i < 20; i++) a.send({ type: "candidate", to: jb.peerId, candidate: { candidate: CANDIDATE } });
  await a.next((f) => f.type === "warning" && f.code === "throttled");
  // Away and resume.
  b.ws.terminate();
  await a.next((f) => f.type === "peer_away");
  const { client: b2 } = await worker.join(room, { token: tokenB, query: `resume=${jb.resumeToken}` });
  await a.next((f) => f.type === "peer_back");
  // A call, then hangup, then leave.
  a.send({ type: "call_initiate", to: [jb.peerId] });
  const { callId } = await b2.next((f) => f.type === "call_incoming");
  b2.send({ type: "call_answer", callId });
  await a.next((f) => f.type === "call_accepted");
  a.send({ type: "call_hangup", callId });
  await b2.next((f) => f.type === "call_ended");
  b2.send({ type: "leave", roomId: room });
  await a.next((f) => f.type === "peer_left");
  // The counts go out once the room has been quiet for 2 s.
  // (drops come last in that flush)
  await worker.waitForLog((l) => l.event === "metric" && l.room === room && l.metric === "drops", 6000, { since: mark });

  const lines = worker.logs.find((l) => l.room === room || l.event?.startsWith("ws."), { since: mark });
  const events = lines
    .filter((l) => !["metric", "room_wake", "room_alarm", "storage_write"].includes(l.event))
    .map((l) => (l.event === "call.event" ? `call.event:${l.outcome}` : l.event));
  assert.deepEqual(
    events.filter((e) => !e.startsWith("ws.")),
    [
      "room.join",
      "room.join",
      "relay.offer",
      "relay.answer",
      ...Array(5).fill("relay.candidate"),
      "room.away",
      "room.resume",
      "call.event:started",
      "call.event:accepted",
      "call.event:left:hangup",
      "call.event:ended:hangup",
      "room.leave",
    ],
  );
  assert.deepEqual(
    events.filter((e) => e.startsWith("ws.")),
    ["ws.connect", "ws.auth_success", "ws.connect", "ws.auth_success", "ws.connect", "ws.auth_success"],
  );
  // The traceparent's trace id is in every line about A's connection.
  const aLines = lines.filter((l) => l.peer === ja.peerId);
  assert.ok(aLines.length > 3 && aLines.every((l) => l.trace === TRACE), JSON.stringify(aLines[0]));
  assert.ok(lines.some((l) => l.event === "ws.auth_success" && l.trace === TRACE));

  const points = lines.filter((l) => l.event === "metric").map((l) => (l.detail ? `${l.metric}[${l.detail}]` : l.metric));
  for (const expected of [
    "connections",
    "room_members",
    "negotiation_ms",
    "calls[started]",
    "calls[accepted]",
    "call_setup_ms",
    "calls[ended:hangup]",
    "connection_duration_ms[leave]",
    "messages[offer]",
    "messages[answer]",
    "messages[candidate]",
    "drops[throttled]",
  ]) {
    assert.ok(points.includes(expected), `missing ${expected} in ${points.join(", ")}`);
  }
  const candidates = lines.find((l) => l.event === "metric" && l.metric === "messages" && l.detail === "candidate");
  assert.equal(candidates.value, 5, "the 5 candidates that went through, in one point");
  const drops = lines.find((l) => l.event === "metric" && l.metric === "drops");
  assert.equal(drops.value, 15);
  assert.equal(drops.user, lines.find((l) => l.peer === ja.peerId).user, "drops name the salted user");

  // Nothing secret in any line of the whole run.
  const text = worker.logs.text();
  for (const secret of [tokenA, tokenB, SDP, "SECRET-SDP-TEXT", "SECRET-CANDIDATE-TEXT", SUB_A, SUB_B]) {
    assert.ok(!text.includes(secret), `logged: ${secret.slice(0, 30)}`);
  }
  await a.close();
});

test("at the default level a relayed frame costs no line", async () => {
  const w = await startWorker();
  try {
    const room = uniqueRoom("quiet");
    const { a, b, B } = await w.pair(room);
    const mark = w.logs.mark();
    for (let i = 0; i < 10; i++) a.send({ type: "candidate", to: B, candidate: {} });
    await b.collect(10, (f) => f.type === "relay");
    await w.logs.expectNoLog((l) => l.event?.startsWith("relay.") || l.event === "metric", 150, { since: mark });
  } finally {
    await w.dispose();
  }
});

test("at the default level an admitted connect costs one line, the room's room.join", async () => {
  const w = await startWorker();
  try {
    const room = uniqueRoom("quiet-connect");
    const trace = "0af7651916cd43dd8448eb211c80319c";
    // The first connect wakes the room (room_wake); the second joins a room that is awake.
    await w.join(room, { token: w.token({ sub: "quiet-a", rooms: [room] }) });
    const mark = w.logs.mark();
    const { joined } = await w.join(room, {
      token: w.token({ sub: "quiet-b", rooms: [room] }),
      headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` },
    });
    await w.logs.waitForLog((l) => l.event === "room.join" && l.peer === joined.peerId, 3000, { since: mark });
    await w.logs.expectNoLog((l) => l.event?.startsWith("ws."), 150, { since: mark });
    const lines = w.logs.find((l) => l.trace === trace, { since: mark }).map((l) => l.event);
    assert.deepEqual(lines, ["room.join"]);
  } finally {
    await w.dispose();
  }
});
