// Calls and ICE servers (protocol v1.1 §5–§6) against the built Worker in workerd, with real
// sockets: the seed-004 flow, decline, busy, ring timeout, cancel, hangup, a group of three with
// one leaving, the maximum duration, a participant's grace ending mid-call, a ring timeout that
// fires after the room object was evicted, refusals; then `iceServers` in `joined`, ephemeral
// TURN REST credentials checked with HMAC-SHA1, their renewal, and `GET /ice-servers`.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { errorShape, expectedError, startWorker, uniqueRoom } from "../lib/harness.mjs";

const RING_MS = 1500;
const MAX_CALL_MS = 2500;
const GRACE_MS = 1500;
const SKIP_IDLE = process.env.EDGESIGNAL_SKIP_HIBERNATION === "1";

let worker;
before(async () => {
  worker = await startWorker({
    bindings: {
      CALL_RING_TIMEOUT_MS: String(RING_MS),
      MAX_CALL_DURATION_MS: String(MAX_CALL_MS),
      RESUME_GRACE_MS: String(GRACE_MS),
    },
  });
});
after(() => worker?.dispose());

/** `n` peers in a fresh room, their first frames consumed: `{ room, peers: [{client, id}] }`. */
async function roomOf(n, w = worker) {
  const room = uniqueRoom("call");
  const peers = [];
  for (let i = 0; i < n; i++) {
    const { client, joined } = await w.join(room, { label: `P${i}` });
    peers.push({ client, id: joined.peerId });
  }
  // Drain peer_joined notices so each test starts from silence.
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) await peers[i].client.next((f) => f.type === "peer_joined" && f.peerId === peers[j].id);
  }
  return { room, peers };
}

const call = (type, fields = {}) => ({ type, ...fields });
const nextCall = (client, type) => client.next((f) => f.type === type);

describe("calls", () => {
  test("seed 004: initiate → incoming → answer → accepted, then offer/answer/candidate carry the callId", async () => {
    const { room, peers: [a, b, c] } = await roomOf(3);
    const started = performance.now();
    a.client.send(call("call_initiate", { to: [b.id], media: { audio: true, video: false } }));
    const ringing = await nextCall(a.client, "call_ringing");
    assert.deepEqual(ringing.to, [b.id]);
    const incoming = await nextCall(b.client, "call_incoming");
    assert.equal(incoming.callId, ringing.callId);
    assert.equal(incoming.from, a.id);
    assert.deepEqual(incoming.media, { audio: true, video: false });
    assert.deepEqual(incoming.participants, [a.id]);
    // Everyone sees both peers in_call.
    for (const id of [a.id, b.id]) {
      const update = await c.client.next((f) => f.type === "peer_updated" && f.peerId === id);
      assert.equal(update.status, "in_call");
    }
    b.client.send(call("call_answer", { callId: incoming.callId }));
    for (const p of [a, b]) {
      const accepted = await nextCall(p.client, "call_accepted");
      assert.deepEqual(accepted.participants, [a.id, b.id]);
      assert.equal(accepted.peerId, b.id);
    }
    console.log(`  call_initiate → call_accepted: ${(performance.now() - started).toFixed(1)} ms`);
    // The earlier participant (A) offers; callId travels untouched.
    a.client.send({ type: "offer", to: b.id, sdp: "v=0 offer", callId: incoming.callId });
    const offer = await b.client.next((f) => f.type === "relay");
    assert.equal(offer.inner.callId, incoming.callId);
    b.client.send({ type: "answer", to: a.id, sdp: "v=0 answer", callId: incoming.callId });
    assert.equal((await a.client.next((f) => f.type === "relay")).inner.callId, incoming.callId);
    // A latecomer sees who is in a call in joined.peers.
    const { client: d, joined } = await worker.join(room, { label: "late" });
    const status = Object.fromEntries(joined.peers.map((p) => [p.peerId, p.status]));
    assert.deepEqual([status[a.id], status[b.id], status[c.id]], ["in_call", "in_call", "available"]);
    await d.close();
    a.client.send(call("call_hangup", { callId: incoming.callId }));
    const ended = await nextCall(b.client, "call_ended");
    assert.equal(ended.reason, "hangup");
  });

  test("decline: the caller hears call_rejected declined and call_ended rejected", async () => {
    const { peers: [a, b] } = await roomOf(2);
    a.client.send(call("call_initiate", { to: [b.id] }));
    const { callId } = await nextCall(b.client, "call_incoming");
    b.client.send(call("call_reject", { callId }));
    assert.equal((await nextCall(a.client, "call_rejected")).reason, "declined");
    assert.equal((await nextCall(a.client, "call_ended")).reason, "rejected");
  });

  test("busy: an invitee in another call is answered at once, and never rings", async () => {
    const { peers: [a, b, c] } = await roomOf(3);
    a.client.send(call("call_initiate", { to: [b.id] }));
    await nextCall(b.client, "call_incoming");
    c.client.send(call("call_initiate", { to: [a.id] }));
    const rejected = await nextCall(c.client, "call_rejected");
    assert.deepEqual([rejected.peerId, rejected.reason], [a.id, "busy"]);
    assert.equal((await nextCall(c.client, "call_ended")).reason, "busy");
    // A marker after it on A's socket (frames to one socket keep their order): nothing rang.
    c.client.send({ type: "offer", to: a.id, sdp: "marker" });
    await a.client.next((f) => f.type === "relay");
    assert.ok(!a.client.inbox.some((f) => f.data?.type === "call_incoming"), a.client.describeInbox());
  });

  test("ring timeout: the invitee gets no_answer, the caller call_rejected and call_ended no_answer", async () => {
    const { peers: [a, b] } = await roomOf(2);
    a.client.send(call("call_initiate", { to: [b.id] }));
    await nextCall(b.client, "call_incoming");
    assert.equal((await b.client.next((f) => f.type === "call_ended", RING_MS + 3000)).reason, "no_answer");
    assert.equal((await nextCall(a.client, "call_rejected")).reason, "no_answer");
    assert.equal((await nextCall(a.client, "call_ended")).reason, "no_answer");
  });

  test("cancel: the caller hangs up while ringing; the invitee hears cancelled", async () => {
    const { peers: [a, b] } = await roomOf(2);
    a.client.send(call("call_initiate", { to: [b.id] }));
    const { callId } = await nextCall(b.client, "call_incoming");
    a.client.send(call("call_hangup", { callId }));
    assert.equal((await nextCall(b.client, "call_ended")).reason, "cancelled");
  });

  test("a group of three: one leaves (call_left), then one more (call_ended hangup)", async () => {
    const { peers: [a, b, c] } = await roomOf(3);
    a.client.send(call("call_initiate", { to: [b.id, c.id] }));
    const { callId } = await nextCall(b.client, "call_incoming");
    await nextCall(c.client, "call_incoming");
    // One after the other: two sockets' answers sent at once reach the room in either order.
    b.client.send(call("call_answer", { callId }));
    await a.client.next((f) => f.type === "call_accepted" && f.peerId === b.id);
    c.client.send(call("call_answer", { callId }));
    const last = await c.client.next((f) => f.type === "call_accepted" && f.peerId === c.id);
    assert.deepEqual(last.participants, [a.id, b.id, c.id]);
    c.client.send(call("call_hangup", { callId }));
    for (const p of [a, b]) {
      const left = await p.client.next((f) => f.type === "call_left");
      assert.deepEqual([left.peerId, left.reason], [c.id, "hangup"]);
    }
    b.client.send(call("call_hangup", { callId }));
    assert.equal((await a.client.next((f) => f.type === "call_ended")).reason, "hangup");
  });

  test("max duration: the call ends for everyone", async () => {
    const { peers: [a, b] } = await roomOf(2);
    a.client.send(call("call_initiate", { to: [b.id] }));
    const { callId } = await nextCall(b.client, "call_incoming");
    b.client.send(call("call_answer", { callId }));
    for (const p of [a, b]) {
      const ended = await p.client.next((f) => f.type === "call_ended", MAX_CALL_MS + 3000);
      assert.equal(ended.reason, "max_duration");
    }
  });

  test("a participant whose grace ends mid-call counts as hung up (disconnect); away, it stays in", async () => {
    const { peers: [a, b] } = await roomOf(2);
    a.client.send(call("call_initiate", { to: [b.id] }));
    const { callId } = await nextCall(b.client, "call_incoming");
    b.client.send(call("call_answer", { callId }));
    await nextCall(a.client, "call_accepted");
    b.client.ws.terminate();
    const away = await a.client.next((f) => f.type === "peer_away");
    assert.equal(away.peerId, b.id);
    const ended = await a.client.next((f) => f.type === "call_ended", GRACE_MS + 3000);
    assert.equal(ended.reason, "disconnect");
    const left = await a.client.next((f) => f.type === "peer_left");
    assert.equal(left.peerId, b.id);
  });

  test("refusals: call_not_found and invalid_state leave the call unchanged", async () => {
    const { peers: [a, b] } = await roomOf(2);
    a.client.send(call("call_answer", { callId: "nope", correlationId: "c1" }));
    assert.deepEqual(errorShape(await a.client.next("error")), expectedError("call_not_found", "c1"));
    a.client.send(call("call_initiate", { to: [a.id], correlationId: "c2" }));
    assert.deepEqual(errorShape(await a.client.next("error")), expectedError("invalid_state", "c2"));
    a.client.send(call("call_initiate", { to: [b.id] }));
    const { callId } = await nextCall(b.client, "call_incoming");
    a.client.send(call("call_answer", { callId, correlationId: "c3" }));
    assert.deepEqual(errorShape(await a.client.next("error")), expectedError("invalid_state", "c3"));
    b.client.send(call("call_initiate", { to: [a.id], correlationId: "c4" }));
    assert.deepEqual(errorShape(await b.client.next("error")), expectedError("invalid_state", "c4"));
    // Still ringing: B can answer.
    b.client.send(call("call_answer", { callId }));
    assert.equal((await nextCall(a.client, "call_accepted")).peerId, b.id);
  });
});

// Both idle until workerd evicts the room (about 10 s without events), so they run side by side.
describe("deadlines across eviction", { skip: SKIP_IDLE && "EDGESIGNAL_SKIP_HIBERNATION=1", concurrency: true }, () => {
  test("a ring timeout fires after the room object was evicted", async () => {
    // A long ring, so the room sits idle until workerd evicts it; the alarm must then wake it
    // from storage.
    const w = await startWorker({ bindings: { CALL_RING_TIMEOUT_MS: "16000", HEARTBEAT_TIMEOUT_MS: "0" } });
    try {
      const { room, peers: [a, b] } = await roomOf(2, w);
      a.client.send(call("call_initiate", { to: [b.id] }));
      const { callId } = await nextCall(b.client, "call_incoming");
      const mark = w.logs.mark();
      const ended = await b.client.next((f) => f.type === "call_ended", 25_000);
      assert.deepEqual([ended.callId, ended.reason], [callId, "no_answer"]);
      // A room object logs room_wake when it is constructed: a wake after the call started
      // means the object was evicted and rebuilt (from storage) by the ring timeout's alarm.
      const wakes = w.logs.find((l) => l.event === "room_wake" && l.room === room, { since: mark });
      assert.ok(wakes.length >= 1, "the room was evicted and woken by the alarm");
      assert.equal((await nextCall(a.client, "call_ended")).reason, "no_answer");
    } finally {
      await w.dispose();
    }
  });

  test("fresh TURN credentials arrive a tenth of TURN_TTL_S before expiry, from an evicted room", async () => {
    const w = await startWorker({
      bindings: { TURN_SERVER: "turn:turn.example.test:3478", TURN_SECRET: "s", TURN_TTL_S: "60", HEARTBEAT_TIMEOUT_MS: "0" },
    });
    try {
      const room = uniqueRoom("ice-renew");
      const { client, joined } = await w.join(room);
      const mark = w.logs.mark();
      const renewed = await client.next((f) => f.type === "ice_servers", 60_000);
      assert.ok(renewed.iceServersExpireAt > joined.iceServersExpireAt);
      assert.ok(Date.now() >= joined.iceServersExpireAt - 6_000 - 1_000, "not before a tenth of the TTL before expiry");
      const turn = renewed.iceServers.find((s) => s.urls[0].startsWith("turn:"));
      assert.equal(turn.credential, createHmac("sha1", "s").update(turn.username).digest("base64"));
      const wakes = w.logs.find((l) => l.event === "room_wake" && l.room === room, { since: mark });
      assert.ok(wakes.length >= 1, "the room was evicted and woken by the alarm");
      await client.close();
    } finally {
      await w.dispose();
    }
  });
});

describe("ICE servers", () => {
  const SECRET = "turn-shared-secret";
  let w;
  before(async () => {
    w = await startWorker({
      bindings: {
        STUN_SERVERS: "stun:stun.example.test:3478",
        TURN_SERVER: "turn:turn.example.test:3478?transport=udp,turns:turn.example.test:5349",
        TURN_SECRET: SECRET,
        TURN_TTL_S: "60",
        HEARTBEAT_TIMEOUT_MS: "0",
      },
    });
  });
  after(() => w?.dispose());

  function checkTurn(servers, expireAt, user) {
    assert.deepEqual(servers[0], { urls: ["stun:stun.example.test:3478"] });
    const turn = servers[1];
    assert.deepEqual(turn.urls, ["turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:5349"]);
    const [expiry, who] = turn.username.split(":");
    assert.equal(Number(expiry) * 1000, expireAt);
    assert.ok(expireAt > Date.now() + 50_000 && expireAt <= Date.now() + 61_000, String(expireAt));
    if (user) assert.equal(who, user);
    assert.doesNotMatch(who, /user-/, "the plain sub never appears");
    assert.equal(turn.credential, createHmac("sha1", SECRET).update(turn.username).digest("base64"));
  }

  test("joined carries STUN and ephemeral TURN REST credentials", async () => {
    const room = uniqueRoom("ice");
    const { client, joined } = await w.join(room);
    checkTurn(joined.iceServers, joined.iceServersExpireAt);
    await client.close();
  });

  test("GET /ice-servers answers the same for a valid token, 401 without", async () => {
    const token = w.token({ sub: "ice-http", rooms: ["x"] });
    for (const [headers, path] of [[{ Authorization: `Bearer ${token}` }, "/ice-servers"], [{}, `/ice-servers?token=${token}`]]) {
      const res = await w.http(path, { headers });
      assert.equal(res.status, 200, res.text);
      checkTurn(res.json.iceServers, res.json.iceServersExpireAt);
    }
    const none = await w.http("/ice-servers");
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, "unauthorized");
    // The subprotocol placement is for upgrades only.
    const proto = await w.http("/ice-servers", { headers: { "Sec-WebSocket-Protocol": `signal.v1, bearer.${token}` } });
    assert.equal(proto.status, 401);
  });

  test("a TURN_SERVER without credentials is a clear 500", async () => {
    const bad = await startWorker({ bindings: { TURN_SERVER: "turn:turn.example.test:3478" } });
    try {
      const res = await bad.http("/ice-servers", { headers: { Authorization: `Bearer ${bad.token({ rooms: ["x"] })}` } });
      assert.equal(res.status, 500);
      assert.match(res.json.error.message, /TURN_SERVER/);
    } finally {
      await bad.dispose();
    }
  });
});
