// Protocol v1.1 §3–§4 against the real Worker in workerd, with real sockets: heartbeats (4408),
// away and peer_left after the grace, seq and ack, resume by query and by subprotocol with
// in-order replay and original seq, 4409 for a replaced socket, foreign tokens, replay_gap,
// roles, token expiry (4401) and refresh. The eviction tests (idle until workerd evicts the room,
// proven by a `room_wake` log line) run concurrently at the end; EDGESIGNAL_SKIP_HIBERNATION=1
// skips them.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, uniqueRoom } from "../lib/harness.mjs";

const SKIP_IDLE = process.env.EDGESIGNAL_SKIP_HIBERNATION ? "EDGESIGNAL_SKIP_HIBERNATION is set" : false;
/** Longer than workerd's ~10 s idle eviction, with margin. */
const IDLE_MS = Number(process.env.EDGESIGNAL_IDLE_MS ?? 12_000);
const MAX_IDLE_PERIODS = 3;
/** The room's flush alarm runs ~2 s after the last client event, and eviction follows ~10 s of
 * idleness after that: a little more than IDLE_MS. */
const EVICT_IDLE_MS = IDLE_MS + 2_000;
const idle = (ms) => new Promise((r) => setTimeout(r, ms));

/** Short timings so that the rules can be watched happen. */
const FAST = { HEARTBEAT_TIMEOUT_MS: "3000", RESUME_GRACE_MS: "2500", TOKEN_EXPIRY_WARNING_MS: "60000" };

let worker;
before(async () => {
  worker = await startWorker({ bindings: FAST });
});
after(async () => {
  await worker?.dispose();
});

/** Two users with their own tokens in `room`; A joined first. Both acknowledge what they got. */
async function pair(w, room) {
  const tokens = { a: w.token({ rooms: [room], sub: `alice-${room}` }), b: w.token({ rooms: [room], sub: `bob-${room}` }) };
  const { client: a, joined: ja } = await w.join(room, { token: tokens.a, label: "A" });
  const { client: b, joined: jb } = await w.join(room, { token: tokens.b, label: "B" });
  const pj = await a.next("peer_joined");
  a.send({ type: "ack", seq: pj.seq });
  b.send({ type: "ack", seq: jb.seq });
  // A ping the runtime does not catch (not byte-exact) is answered by the room: once its pong
  // is back, the acks before it were handled.
  for (const c of [a, b]) c.send({ type: "ping", sync: true });
  await a.next("pong");
  await b.next("pong");
  return { a, b, A: ja.peerId, B: jb.peerId, ja, jb, tokens };
}

/** Resumes `token`'s peer with the JWT `jwt`, by query (default) or subprotocol. */
function resume(w, room, jwt, token, { by = "query", label = "A2" } = {}) {
  if (by === "query") return w.join(room, { token: jwt, query: `resume=${encodeURIComponent(token)}`, label });
  return w.join(room, { token: null, placement: "protocol", protocols: ["signal.v1", `bearer.${jwt}`, `resume.${token}`], label });
}

/** Pings with the exact text (answered by the runtime) every `ms` until stopped. */
function keepAlive(client, ms = 800) {
  const timer = setInterval(() => client.isOpen && client.send('{"type":"ping"}'), ms);
  return () => clearInterval(timer);
}

test("a silent socket is closed 4408 within the timeout and a half; a pinging one stays; the other hears peer_away timeout", async () => {
  const room = uniqueRoom("heartbeat");
  const { a, b, B } = await pair(worker, room);
  const stop = keepAlive(a);
  try {
    const started = performance.now();
    const closed = await b.closeFrameWithin(3000 * 1.5 + 2000);
    const after = performance.now() - started;
    assert.equal(closed.code, 4408);
    assert.equal(closed.reason, "heartbeat timeout");
    assert.ok(after >= 3000 - 100 && after <= 3000 * 1.5 + 1000, `closed after ${after.toFixed(0)} ms`);
    const away = await a.next("peer_away");
    assert.deepEqual(away, { type: "peer_away", roomId: room, peerId: B, reason: "timeout", seq: away.seq });
    // After the grace: peer_left with the same reason. A stayed open all along.
    const left = await a.next("peer_left", 5000);
    assert.equal(left.reason, "timeout");
    assert.ok(a.isOpen);
  } finally {
    stop();
  }
});

test("away: frames for it are accepted and kept; resume by query replays them in order with their original seq; peer_back", async () => {
  const room = uniqueRoom("resume-query");
  const { a, b, A, ja, tokens } = await pair(worker, room);
  const stopB = keepAlive(b);
  try {
    await a.terminate();
    assert.deepEqual(await b.next("peer_away"), { type: "peer_away", roomId: room, peerId: A, reason: "disconnect", seq: 2 });
    b.send({ type: "offer", to: A, sdp: "v=0 kept-1", correlationId: "k1" });
    b.send({ type: "candidate", to: A, candidate: { candidate: "kept-2", sdpMid: "0" } });
    b.send({ type: "candidate", to: A, candidate: null });
    await b.expectSilence(200); // accepted: no target_not_found
    const { client: a2, joined } = await resume(worker, room, tokens.a, ja.resumeToken);
    assert.equal(joined.peerId, A);
    assert.equal(joined.resumed, true);
    assert.notEqual(joined.resumeToken, ja.resumeToken);
    // A had acked 1 (joined) and 2 (peer_joined); the three relays are 3, 4, 5; joined is 6.
    assert.equal(joined.seq, 6);
    const replay = await a2.collect(3, "relay");
    assert.deepEqual(replay.map((f) => f.seq), [3, 4, 5]);
    assert.equal(replay[0].inner.sdp, "v=0 kept-1");
    assert.equal(replay[0].correlationId, "k1");
    assert.equal(replay[1].inner.candidate.candidate, "kept-2");
    assert.equal(replay[2].inner.candidate, null);
    assert.deepEqual(await b.next("peer_back"), { type: "peer_back", roomId: room, peerId: A, seq: 3 });
    // New frames continue the sequence.
    b.send({ type: "offer", to: A, sdp: "v=0 new" });
    assert.equal((await a2.next("relay")).seq, 7);
    await a2.expectSilence();
  } finally {
    stopB();
  }
});

test("acked frames are not replayed; resume by subprotocol; the resume token is never echoed", async () => {
  const room = uniqueRoom("resume-proto");
  const { a, b, A, ja, tokens } = await pair(worker, room);
  for (const sdp of ["one", "two", "three"]) b.send({ type: "offer", to: A, sdp });
  const got = await a.collect(3, "relay");
  a.send({ type: "ack", seq: got[1].seq }); // "one", "two" processed
  await a.expectSilence(100); // acks are never answered
  const { client: a2, joined } = await resume(worker, room, tokens.a, ja.resumeToken, { by: "protocol" });
  assert.equal(a2.protocol, "signal.v1");
  assert.equal(joined.resumed, true);
  assert.equal(joined.peerId, A);
  const replay = await a2.next("relay");
  assert.deepEqual([replay.inner.sdp, replay.seq], ["three", got[2].seq]);
  // The old socket was still open: closed 4409, and B heard nothing of it.
  const old = await a.closeFrameWithin(3000);
  assert.deepEqual(old, { code: 4409, reason: "replaced by a resumed session" });
  await b.expectSilence(300);
  // The replaced socket's close did not touch the new one: it still relays.
  assert.ok(a2.isOpen);
  b.send({ type: "offer", to: A, sdp: "still here" });
  assert.equal((await a2.next("relay")).inner.sdp, "still here");
  await a2.expectSilence();
  a2.close();
});

test("an ack beyond the last seq is bad_request; a thousand acks at once are never rate-limited", async () => {
  const room = uniqueRoom("ack");
  const { a, b, A } = await pair(worker, room);
  a.send({ type: "ack", seq: 999, correlationId: "too-far" });
  const err = await a.next("error");
  assert.equal(err.code, "bad_request");
  assert.equal(err.correlationId, "too-far");
  assert.equal(err.seq, undefined);
  for (let i = 0; i < 1000; i++) a.send({ type: "ack", seq: 2 });
  b.send({ type: "offer", to: A, sdp: "after acks" });
  const relay = await a.next("relay");
  assert.equal(relay.inner.sdp, "after acks");
  await a.expectSilence(); // no rate_limited
});

test("a foreign, garbled or another room's resume token is a fresh join and never disturbs the owner", async () => {
  const room = uniqueRoom("foreign");
  const { a, b, A, ja } = await pair(worker, room);
  const other = uniqueRoom("other");
  const { joined: jo } = await worker.join(other, { token: worker.token({ rooms: [other], sub: `alice-${room}` }) });
  const mallory = worker.token({ rooms: [room], sub: "mallory" });
  const attempts = [
    [mallory, ja.resumeToken],
    [worker.token({ rooms: [room], sub: `alice-${room}` }), `${A}.NOTTHESECRET0000000000000000000`],
    [worker.token({ rooms: [room], sub: `alice-${room}` }), jo.resumeToken],
    [worker.token({ rooms: [room], sub: `alice-${room}` }), "%%%garbage"],
  ];
  for (const [jwt, token] of attempts) {
    const { client, joined } = await resume(worker, room, jwt, token, { label: "intruder" });
    assert.equal(joined.resumed, false, token);
    assert.notEqual(joined.peerId, A);
    // The owner is still connected and sees only a newcomer.
    const pj = await a.next("peer_joined");
    assert.equal(pj.peerId, joined.peerId);
    assert.ok(a.isOpen);
    client.send({ type: "leave", roomId: room });
    await client.closedWithin(2000);
    await a.next("peer_left");
    await b.next("peer_joined");
    await b.next("peer_left");
  }
  await a.expectSilence();
});

test("after the grace the peer is gone for good: peer_left, target_not_found, and its token gives a fresh join", async () => {
  const room = uniqueRoom("grace");
  const { a, b, A, ja, tokens } = await pair(worker, room);
  const stop = keepAlive(b);
  try {
    await a.terminate();
    await b.next("peer_away");
    const left = await b.next("peer_left", 6000);
    assert.deepEqual(left, { type: "peer_left", roomId: room, peerId: A, reason: "disconnect", seq: left.seq });
    b.send({ type: "offer", to: A, sdp: "too late", correlationId: "late" });
    assert.equal((await b.next("error")).code, "target_not_found");
    const { joined } = await resume(worker, room, tokens.a, ja.resumeToken);
    assert.equal(joined.resumed, false);
    assert.notEqual(joined.peerId, A);
  } finally {
    stop();
  }
});

test("a buffer overflow is a replay_gap right after joined, naming the lost seq", async () => {
  const w = await startWorker({ bindings: { RESUME_BUFFER_FRAMES: "3", RESUME_GRACE_MS: "60000" } });
  try {
    const room = uniqueRoom("gap");
    const { a, b, A, ja, tokens } = await pair(w, room);
    await a.terminate();
    await b.next("peer_away");
    for (let i = 0; i < 6; i++) b.send({ type: "candidate", to: A, candidate: { candidate: `c${i}` } });
    await b.expectSilence(200);
    const { client: a2, joined } = await resume(w, room, tokens.a, ja.resumeToken);
    assert.equal(joined.seq, 9); // 3..=8 were the six candidates
    const gap = await a2.nextFrame();
    assert.deepEqual(gap.data, { type: "warning", code: "replay_gap", message: gap.data.message, from: 3, to: 5, seq: 10 });
    const replay = await a2.collect(3, "relay");
    assert.deepEqual(replay.map((f) => [f.seq, f.inner.candidate.candidate]), [[6, "c3"], [7, "c4"], [8, "c5"]]);
  } finally {
    await w.dispose();
  }
});

test("roles: the first member is polite, the newcomer is not, and a resume keeps them", async () => {
  const room = uniqueRoom("roles");
  const { a, B, ja, jb, tokens } = await pair(worker, room);
  assert.deepEqual(jb.peers.map((p) => p.polite), [false]);
  const { client: c, joined: jc } = await worker.join(room, { label: "C" });
  assert.deepEqual(jc.peers.map((p) => p.polite), [false, false]);
  assert.equal((await a.next("peer_joined")).polite, true);
  const { joined } = await resume(worker, room, tokens.a, ja.resumeToken);
  assert.deepEqual(joined.peers.map((p) => [p.peerId, p.polite]), [[B, true], [jc.peerId, true]]);
  c.close();
});

test("token lifetime: token_expiring right after joined, then error unauthorized and 4401 at exp + 60 s; others get peer_left leave", async () => {
  const room = uniqueRoom("expiry");
  const { client: b } = await worker.join(room, { label: "B" });
  const stop = keepAlive(b);
  try {
    // exp 57 s ago: still accepted (60 s leeway), its deadline ~3 s away.
    const jwt = worker.token({ rooms: [room], sub: "short-lived", ttlSeconds: -57 });
    const { client: a, joined } = await worker.join(room, { token: jwt, label: "A" });
    const warning = await a.next();
    assert.equal(warning.code, "token_expiring");
    assert.equal(warning.seq, joined.seq + 1);
    const exp = JSON.parse(Buffer.from(jwt.split(".")[1], "base64url")).exp;
    assert.equal(warning.expiresAt, (exp + 60) * 1000);
    const err = await a.next("error", 6000);
    assert.equal(err.code, "unauthorized");
    assert.deepEqual(await a.closeFrameWithin(2000), { code: 4401, reason: "token expired" });
    const left = await b.next((f) => f.type === "peer_left" && f.peerId === joined.peerId);
    assert.equal(left.reason, "leave");
  } finally {
    stop();
  }
});

test("a busy room sets no alarm for its flush; the in-memory timer stores what is unacknowledged once it is quiet", { timeout: 20_000 }, async () => {
  const w = await startWorker({ bindings: { LOG_LEVEL: "debug" } });
  try {
    const room = uniqueRoom("flushtimer");
    const { a, b, B } = await pair(w, room);
    const mark = w.logs.mark();
    // Busy for 5 s: a frame every 250 ms, never acknowledged by B.
    for (let i = 0; i < 20; i++) {
      a.send({ type: "candidate", to: B, candidate: { candidate: `c${i}` } });
      await b.next("relay");
      await idle(250);
    }
    const busy = (event) => w.logs.find((l) => l.event === event, { since: mark });
    assert.deepEqual(busy("room_alarm"), [], "no alarm while busy");
    assert.ok(busy("room_flush_timer").length >= 1, "the timer looked while busy");
    assert.ok(busy("room_flush_timer").every((l) => l.rowsWritten === 0), "and wrote nothing while busy");
    // Quiet: the timer flushes B's 20 frames (one statement, 20 rows) within about 2 s.
    const flushed = await w.waitForLog((l) => l.event === "room_flush_timer" && l.rowsWritten > 0, 4000, { since: mark });
    assert.ok(flushed.rowsWritten >= 20, JSON.stringify(flushed));
    assert.deepEqual(busy("room_alarm"), [], "nor for the flush itself");
  } finally {
    await w.dispose();
  }
});

test("refresh with a valid token for the same sub moves the deadline; a bad one changes nothing", async () => {
  const room = uniqueRoom("refresh");
  const sub = `refresher-${room}`;
  const jwt = worker.token({ rooms: [room], sub, ttlSeconds: -57 });
  const { client: a } = await worker.join(room, { token: jwt, label: "A" });
  const stop = keepAlive(a);
  try {
    await a.next((f) => f.code === "token_expiring");
    for (const bad of [worker.token({ rooms: [room], sub: "someone-else" }), worker.token({ rooms: ["not-this-room"], sub }), "x.y.z"]) {
      a.send({ type: "refresh", token: bad, correlationId: "r" });
      const err = await a.next("error");
      assert.deepEqual([err.code, err.correlationId], ["unauthorized", "r"]);
    }
    const fresh = worker.token({ rooms: [room], sub, ttlSeconds: 3600 });
    a.send({ type: "refresh", token: fresh });
    const refreshed = await a.next("refreshed");
    const exp = JSON.parse(Buffer.from(fresh.split(".")[1], "base64url")).exp;
    assert.equal(refreshed.expiresAt, (exp + 60) * 1000);
    // The old deadline (~3 s away) passes without a close (nor an error).
    await idle(4000);
    assert.ok(a.isOpen && !a.closeFrame);
    assert.deepEqual(a.inbox.filter((f) => f.data?.type !== "pong").map((f) => f.raw), []);
  } finally {
    stop();
  }
});

describe("across eviction (idle until workerd evicts the room)", { concurrency: true, skip: SKIP_IDLE }, () => {
  const TIMEOUT = 20_000 + MAX_IDLE_PERIODS * (EVICT_IDLE_MS + 5_000);

  /**
   * Idles until workerd has evicted the room: after each idle period `client` sends a ping that
   * only the room answers (not byte-exact, so the runtime does not), which wakes it; a
   * `room_wake` line for `room` then proves it had been evicted. Returns the wake line.
   */
  async function idleUntilEvicted(w, room, client) {
    for (let period = 1; period <= MAX_IDLE_PERIODS; period++) {
      await idle(EVICT_IDLE_MS);
      const mark = w.logs.mark();
      client.send({ type: "ping", poke: period });
      await client.next("pong");
      const wake = await w.waitForLog((l) => l.event === "room_wake" && l.room === room, 1500, { since: mark }).catch(() => null);
      if (wake) return wake;
    }
    throw new Error(`room ${room} was never evicted`);
  }

  test("the room evicted during the grace: resume replays every frame, with seq continuing", { timeout: TIMEOUT }, async () => {
    const w = await startWorker({ bindings: { RESUME_GRACE_MS: "120000", HEARTBEAT_TIMEOUT_MS: "0" } });
    try {
      const room = uniqueRoom("evict-away");
      const { a, b, A, ja, tokens } = await pair(w, room);
      await a.terminate();
      await b.next("peer_away");
      for (let i = 0; i < 5; i++) b.send({ type: "offer", to: A, sdp: `away-${i}` });
      await b.expectSilence(300);
      const wake = await idleUntilEvicted(w, room, b);
      assert.equal(wake.peers, 2, "rebuilt from B's socket and A's away row in storage");
      const { client: a2, joined } = await resume(w, room, tokens.a, ja.resumeToken);
      assert.equal(joined.resumed, true);
      assert.equal(joined.peerId, A);
      const replay = await a2.collect(5, "relay");
      assert.deepEqual(replay.map((f) => f.inner.sdp), ["away-0", "away-1", "away-2", "away-3", "away-4"]);
      assert.deepEqual(replay.map((f) => f.seq), [3, 4, 5, 6, 7]);
      assert.equal(joined.seq, 8);
      assert.equal((await b.next("peer_back")).peerId, A);
    } finally {
      await w.dispose();
    }
  });

  test("unacknowledged frames of a connected peer survive an eviction; a resume replaces the old socket (4409) and replays them", { timeout: TIMEOUT }, async () => {
    const w = await startWorker({ bindings: { HEARTBEAT_TIMEOUT_MS: "0" } });
    try {
      const room = uniqueRoom("evict-unacked");
      const { a, b, A, ja, tokens } = await pair(w, room);
      for (let i = 0; i < 3; i++) b.send({ type: "offer", to: A, sdp: `unacked-${i}` });
      const got = await a.collect(3, "relay"); // delivered, but A never acknowledges them
      await idleUntilEvicted(w, room, b);
      const resumed = await resume(w, room, tokens.a, ja.resumeToken);
      assert.equal((await a.closeFrameWithin(3000)).code, 4409);
      const replay = await resumed.client.collect(3, "relay");
      assert.deepEqual(replay.map((f) => [f.seq, f.inner.sdp]), got.map((f) => [f.seq, f.inner.sdp]));
      await b.expectSilence(300);
    } finally {
      await w.dispose();
    }
  });

  test("the grace ends on time after an eviction: the alarm wakes the room for peer_left", { timeout: TIMEOUT }, async () => {
    const w = await startWorker({ bindings: { RESUME_GRACE_MS: "25000", HEARTBEAT_TIMEOUT_MS: "0" } });
    try {
      const room = uniqueRoom("evict-grace");
      const { a, b, A } = await pair(w, room);
      await a.terminate();
      await b.next("peer_away");
      const awayAt = performance.now();
      const mark = w.logs.mark();
      // Nothing happens in the room until the grace ends: the alarm wakes the evicted object.
      const left = await b.next("peer_left", 40_000);
      const after = performance.now() - awayAt;
      assert.equal(left.peerId, A);
      assert.ok(after >= 25_000 - 200 && after < 33_000, `peer_left after ${after.toFixed(0)} ms`);
      const wake = w.logs.find((l) => l.event === "room_wake" && l.room === room, { since: mark });
      assert.ok(wake.length >= 1, "the room was evicted during the grace and woken by its alarm");
    } finally {
      await w.dispose();
    }
  });

  test("heartbeats across an eviction: the silent socket is closed 4408, the pinging one stays", { timeout: TIMEOUT + 30_000 }, async () => {
    // 30 s: with a shorter timeout the sweep alarm would keep the room from ever being evicted.
    const T = 30_000;
    const w = await startWorker({ bindings: { HEARTBEAT_TIMEOUT_MS: String(T) } });
    try {
      const room = uniqueRoom("evict-heartbeat");
      const { a, b, B } = await pair(w, room);
      const joinedAt = performance.now();
      const stop = keepAlive(a, T / 3); // answered by the runtime: never wakes the room
      try {
        const mark = w.logs.mark();
        const closed = await b.closeFrameWithin(T * 1.5 + 5_000);
        const after = performance.now() - joinedAt;
        assert.equal(closed.code, 4408);
        assert.ok(after >= T - 500 && after <= T * 1.5 + 2_000, `closed after ${after.toFixed(0)} ms`);
        const wakes = w.logs.find((l) => l.event === "room_wake" && l.room === room, { since: mark });
        assert.ok(wakes.length >= 1, "the room was evicted while the sockets were quiet, and its alarm woke it");
        assert.equal((await a.next("peer_away")).peerId, B);
        assert.ok(a.isOpen && !a.closeFrame, "the pinging socket stays");
      } finally {
        stop();
      }
    } finally {
      await w.dispose();
    }
  });

  test("token deadlines across an eviction: the warning and the 4401 come on time from an evicted room", { timeout: TIMEOUT + 30_000 }, async () => {
    const w = await startWorker({ bindings: { HEARTBEAT_TIMEOUT_MS: "0", TOKEN_EXPIRY_WARNING_MS: "6000" } });
    try {
      const room = uniqueRoom("evict-token");
      // exp 34 s ago: accepted (60 s leeway); deadline ~26 s away, warning ~20 s away.
      const jwt = w.token({ rooms: [room], sub: `short-${room}`, ttlSeconds: -34 });
      const exp = JSON.parse(Buffer.from(jwt.split(".")[1], "base64url")).exp;
      const { client: a } = await w.join(room, { token: jwt, label: "A" });
      const { client: b, joined: jb } = await w.join(room, { label: "B" });
      await a.next("peer_joined");
      const mark = w.logs.mark();
      const warning = await a.next((f) => f.code === "token_expiring", 40_000);
      assert.equal(warning.expiresAt, (exp + 60) * 1000);
      assert.ok(Date.now() >= warning.expiresAt - 6000 - 1000, "not before the warning time");
      const wakes = w.logs.find((l) => l.event === "room_wake" && l.room === room, { since: mark });
      assert.ok(wakes.length >= 1, "the room was evicted before the warning, and its alarm woke it");
      assert.equal((await a.next("error", 10_000)).code, "unauthorized");
      assert.equal((await a.closeFrameWithin(2000)).code, 4401);
      assert.ok(Date.now() >= warning.expiresAt - 1000);
      assert.equal((await b.next("peer_left")).reason, "leave");
      assert.ok(jb.peerId);
    } finally {
      await w.dispose();
    }
  });

  test("an idle room with pinging members wakes at most once per half heartbeat timeout", { timeout: TIMEOUT }, async () => {
    const T = 6000;
    // debug: an alarm that finds nothing to do logs its room_alarm line at debug only.
    const w = await startWorker({ bindings: { HEARTBEAT_TIMEOUT_MS: String(T), LOG_LEVEL: "debug" } });
    try {
      const room = uniqueRoom("wakeups");
      const { a, b } = await pair(w, room);
      const stops = [keepAlive(a, T / 3), keepAlive(b, T / 3)];
      const mark = w.logs.mark();
      const windowMs = 24_000;
      await idle(windowMs);
      stops.forEach((s) => s());
      assert.ok(a.isOpen && b.isOpen, "pinging sockets stay open");
      const alarms = w.logs.find((l) => l.event === "room_alarm", { since: mark }).length;
      const bound = windowMs / (T / 2) + 1;
      const perHourAtDefault = (alarms / windowMs) * 3_600_000 * (T / 60_000);
      console.log(`# idle room, 2 members pinging every T/3: ${alarms} alarms in ${windowMs / 1000} s at T=${T} ms (bound ${bound}); scaled to the default 60 s timeout: ${perHourAtDefault.toFixed(0)} wake-ups per hour`);
      assert.ok(alarms <= bound, `${alarms} alarms > ${bound}`);
      assert.ok(alarms >= 1, "the sweep runs");
    } finally {
      await w.dispose();
    }
  });
});
