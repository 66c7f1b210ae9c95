// Abuse control (protocol v1.1 §2) against the real Worker in workerd, with real sockets: what a
// flooding client sees, that the others are unaffected, strikes ending in 4429 and a ban that
// holds across the room object's eviction, per-identity connect limits, and configuration.
//
// Rates are the defaults unless a test says otherwise (20/s, burst 100 for both kinds).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HandshakeRefused, errorShape, expectedError, startWorker, uniqueRoom } from "../lib/harness.mjs";

/** Longer than workerd's ~10 s idle eviction, with margin (as in hibernation.test.mjs). */
const IDLE_MS = Number(process.env.EDGESIGNAL_IDLE_MS ?? 12_000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let worker;
before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.dispose();
});

function candidateFrame(to, i) {
  return { type: "candidate", to, candidate: { candidate: `candidate:${i} 1 udp 2122260223 192.0.2.1 ${10000 + i} typ host`, sdpMid: "0" }, correlationId: `c${i}` };
}

/** Frames of `client` of type `type`, taken out of its inbox. */
function takeAll(client, type) {
  const taken = client.inbox.filter((f) => f.data?.type === type);
  client.inbox = client.inbox.filter((f) => f.data?.type !== type);
  return taken;
}

test("a burst of 1000 candidates: the receiver gets the burst, the sender throttled warnings that add up; offer and answer still pass", async () => {
  const { a, b, A, B } = await worker.pair(uniqueRoom("flood"));
  const started = performance.now();
  for (let i = 0; i < 1000; i++) a.send(candidateFrame(B, i));
  // The first warning comes with the first dropped candidate.
  const first = await a.next("warning");
  assert.equal(first.code, "throttled");
  assert.equal(first.dropped, 1);
  assert.ok(first.retryAfterMs > 0 && first.retryAfterMs <= 50, JSON.stringify(first));
  // A warning is sequenced: A's next after joined (1) and B's peer_joined (2).
  assert.equal(first.seq, 3);
  // An offer and an answer right after the flood are relayed at once: their own budget.
  a.send({ type: "offer", to: B, sdp: "v=0 after flood", correlationId: "offer" });
  const offer = await b.next((f) => f.correlationId === "offer");
  b.send({ type: "answer", to: A, sdp: "v=0 answer", correlationId: "answer" });
  const answerRelay = await a.next((f) => f.correlationId === "answer");
  assert.equal(answerRelay.inner.sdp, "v=0 answer");
  assert.equal(offer.inner.sdp, "v=0 after flood");
  const floodMs = performance.now() - started;

  // Wait out the notice interval (a time-based rule: nothing to wait on but the clock), then one
  // more candidate: it passes, and the warning owed for the silent drops comes first.
  await sleep(1100);
  a.send(candidateFrame(B, 1000));
  const last = await b.next((f) => f.correlationId === "c1000");
  assert.equal(last.type, "relay");
  const owed = await a.next("warning");
  assert.equal(owed.code, "throttled");
  assert.equal(owed.retryAfterMs, 0);
  // Every frame A got was sequenced (no errors), so their seqs run 3, 4, … without a gap, in
  // arrival order, whatever the mix of warnings and B's answer.
  const answerSeq = answerRelay.seq;
  const aSeqs = [first.seq, answerSeq, owed.seq, ...a.inbox.map((f) => f.data.seq)].sort((x, y) => x - y);
  assert.deepEqual(aSeqs, aSeqs.map((_, i) => 3 + i), `A's seqs: ${aSeqs}`);

  const delivered = takeAll(b, "relay").length;
  const warnings = [first, owed, ...takeAll(a, "warning").map((f) => f.data)];
  const dropped = warnings.reduce((sum, w) => sum + w.dropped, 0);
  const elapsedS = (performance.now() - started) / 1000;
  console.log(`flood: 1000 candidates sent in ${floodMs.toFixed(0)} ms, ${delivered} delivered, ${dropped} dropped, ${warnings.length} warnings in ${elapsedS.toFixed(1)} s`);
  assert.equal(delivered + dropped, 1000, "every candidate is either delivered or told as dropped");
  assert.ok(delivered >= 100 && delivered <= 100 + Math.ceil(20 * (floodMs / 1000)) + 1, `delivered ${delivered}: at most the burst plus the refill`);
  assert.ok(warnings.length <= 2 + Math.floor(elapsedS), `${warnings.length} warnings: about one per second`);
  // No error frames: candidates are warned about, never refused with an error.
  assert.equal(takeAll(a, "error").length, 0);
  await Promise.all([a.expectSilence(), b.expectSilence()]);
});

test("a message flood gets rate_limited with retryAfterMs, once; after that wait the next frame goes through", async () => {
  const { a, b, B } = await worker.pair(uniqueRoom("msgflood"));
  const started = performance.now();
  for (let i = 0; i < 130; i++) a.send({ type: "offer", to: B, sdp: `v=0 ${i}`, correlationId: `o${i}` });
  const error = await a.next("error");
  assert.deepEqual(errorShape({ ...error, retryAfterMs: undefined }), { ...expectedError("rate_limited", error.correlationId), retryAfterMs: undefined });
  assert.ok(error.retryAfterMs > 0 && error.retryAfterMs <= 50, JSON.stringify(error));
  const burst = await b.collect(100, "relay");
  assert.deepEqual(burst.map((f) => f.correlationId), [...Array(100).keys()].map((i) => `o${i}`), "the burst went through, in order");
  // retryAfterMs is the wait for the next frame when nothing else is sent meanwhile; the rest of
  // the flood was already on the wire when the error arrived, and each of its frames may take a
  // token that refilled. So first the flood ends (no refill relayed to B for a while), then the
  // wait the error asked for.
  for (let seen = -1; seen !== b.inbox.length; ) {
    seen = b.inbox.length;
    await sleep(250);
  }
  await sleep(error.retryAfterMs);
  a.send({ type: "offer", to: B, sdp: "v=0 later", correlationId: "later" });
  await b.next((f) => f.correlationId === "later");
  const floodS = (performance.now() - started) / 1000;
  // Besides the burst, only what refilled while the flood was read (20/s) went through, in order.
  const refilled = takeAll(b, "relay").map((f) => f.data.correlationId);
  assert.ok(refilled.length <= Math.ceil(20 * floodS), `${refilled.length} extra relays in ${floodS.toFixed(2)} s`);
  assert.deepEqual(refilled, [...refilled].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1))));
  // One error per second of flood at most: the other drops were silent.
  assert.ok(takeAll(a, "error").length <= Math.floor(floodS), "no amplification");
  await Promise.all([a.expectSilence(), b.expectSilence()]);
});

test("while one room floods, another room's relay latency stays within noise of an idle server", async () => {
  const quiet = await worker.pair(uniqueRoom("quiet"));
  async function latencies(n) {
    const samples = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      quiet.a.send({ type: "offer", to: quiet.B, sdp: "v=0", correlationId: `q${i}` });
      await quiet.b.next((f) => f.correlationId === `q${i}`);
      samples.push(performance.now() - t0);
      await sleep(20); // paced like a real call's signaling, and so that the flood runs throughout
    }
    samples.sort((x, y) => x - y);
    return { p50: samples[Math.floor(n / 2)], p95: samples[Math.floor(n * 0.95)] };
  }
  // 40 + 40 offers: within the quiet sender's own burst (100), so its limits never bite.
  const idle = await latencies(40);
  const flooder = await worker.pair(uniqueRoom("loud"));
  let flooding = true;
  let sent = 0;
  const flood = (async () => {
    // About 5,000 frames/s, 250 times the candidate rate: a flood, but one that a single local
    // workerd thread (which runs every room here, unlike the edge) can absorb alongside the
    // quiet room. Bounded: at most 20,000 frames or until the measurement ends.
    while (flooding && sent < 20_000) {
      for (let i = 0; i < 25; i++) flooder.a.send(candidateFrame(flooder.B, sent++));
      await sleep(5);
    }
  })();
  const loaded = await latencies(40);
  flooding = false;
  await flood;
  console.log(`relay latency in a quiet room: idle p50 ${idle.p50.toFixed(2)} ms p95 ${idle.p95.toFixed(2)} ms; while another room floods (${sent} frames): p50 ${loaded.p50.toFixed(2)} ms p95 ${loaded.p95.toFixed(2)} ms`);
  assert.ok(loaded.p50 < idle.p50 + 25, `flooded p50 ${loaded.p50} ms vs idle ${idle.p50} ms`);
  assert.equal(takeAll(quiet.a, "warning").length + takeAll(quiet.a, "error").length, 0, "the quiet room was never limited");
});

test("per-identity limits: MAX_CONNECTIONS_PER_USER gets connection_limit and 1013, RATE_CONNECT_PER_MIN gets rate_limited, 4429 and retryAfterMs", async () => {
  const limited = await startWorker({ bindings: { MAX_CONNECTIONS_PER_USER: "2", RATE_CONNECT_PER_MIN: "3" } });
  try {
    const room = uniqueRoom("per-user");
    const token = limited.token({ rooms: [room], sub: "mallory" });
    const first = await limited.join(room, { token, label: "M1" });
    const second = await limited.join(room, { token, label: "M2" });
    await first.client.next("peer_joined");
    const third = await limited.connect(room, { token, label: "M3" });
    assert.deepEqual(errorShape(await third.next()), expectedError("connection_limit"));
    assert.equal((await third.closedWithin()).code, 1013);
    // Members heard nothing of the refused upgrade.
    await Promise.all([first.client.expectSilence(), second.client.expectSilence()]);

    // A seat frees up: a connection closed without `leave` leaves an away member, which keeps
    // its room seat for the grace (RESUME_GRACE_MS) but not a connection of its identity. But
    // the identity has used its 3 connects for this minute.
    const M1 = first.joined.peerId;
    const M2 = second.joined.peerId;
    await second.client.close();
    assert.deepEqual(await first.client.next(), { type: "peer_away", roomId: room, peerId: M2, reason: "disconnect", seq: 3 });
    const again = await limited.join(room, { token, label: "M4" });
    const M4 = again.joined.peerId;
    assert.deepEqual(again.joined.peers, [
      { peerId: M1, metadata: {}, status: "available", polite: false },
      { peerId: M2, metadata: {}, status: "away", polite: false },
    ]);
    await first.client.next("peer_joined");
    await again.client.close();
    assert.deepEqual(await first.client.next(), { type: "peer_away", roomId: room, peerId: M4, reason: "disconnect", seq: 5 });
    const refused = await limited.connect(room, { token, label: "M5" });
    const error = await refused.next();
    assert.deepEqual(errorShape({ ...error, retryAfterMs: undefined }), { ...expectedError("rate_limited"), retryAfterMs: undefined });
    assert.ok(error.retryAfterMs > 0 && error.retryAfterMs <= 20_000, JSON.stringify(error));
    assert.equal((await refused.closedWithin()).code, 4429);
    await first.client.expectSilence();
    // Another identity is admitted meanwhile; and mallory is admitted in another room.
    const other = await limited.join(room, { label: "O" });
    assert.deepEqual(other.joined.peers, [
      { peerId: M1, metadata: {}, status: "available", polite: false },
      { peerId: M2, metadata: {}, status: "away", polite: false },
      { peerId: M4, metadata: {}, status: "away", polite: false },
    ]);
    const elsewhere = uniqueRoom("per-user-2");
    await limited.join(elsewhere, { token: limited.token({ rooms: [elsewhere], sub: "mallory" }) });
  } finally {
    await limited.dispose();
  }
});

test(
  "strikes close the connection with 4429; the identity stays banned after the room is evicted, others are admitted, and it may return after RATE_BAN_S",
  { timeout: 90_000, skip: process.env.EDGESIGNAL_SKIP_HIBERNATION ? "EDGESIGNAL_SKIP_HIBERNATION is set" : false },
  async () => {
    // Two strikes ban for 25 s: long enough to outlast an eviction, short enough to wait out.
    const strict = await startWorker({ bindings: { RATE_ABUSE_STRIKES: "2", RATE_BAN_S: "25" } });
    try {
      const room = uniqueRoom("ban");
      const token = strict.token({ rooms: [room], sub: "flooder" });
      const { client: bad, joined } = await strict.join(room, { token, label: "BAD" });
      const { client: good, joined: goodJoined } = await strict.join(room, { label: "GOOD" });
      await bad.next("peer_joined");
      const flood = () => {
        for (let i = 0; i < 120; i++) bad.send({ type: "offer", to: goodJoined.peerId, sdp: `v=0 ${i}` });
      };
      flood(); // strike 1: frames dropped in this second
      assert.equal((await bad.next("error")).code, "rate_limited");
      await sleep(1100);
      flood(); // strike 2, in another second: the ban
      const banned = await bad.next((f) => f.type === "error" && f.retryAfterMs > 20_000);
      assert.equal(banned.code, "rate_limited");
      assert.equal((await bad.closedWithin()).code, 4429);
      // A banned peer is gone at once (it could not resume): peer_left, never peer_away.
      const left = await good.next("peer_left");
      assert.equal(left.peerId, joined.peerId);
      assert.equal(left.reason, "disconnect");
      assert.equal(good.inbox.filter((f) => f.data?.type === "peer_away").length, 0, "no peer_away for a banned peer");
      const bannedAt = performance.now();

      const expectBanned = async (label) => {
        const c = await strict.connect(room, { token, label });
        const error = await c.next();
        assert.equal(error.code, "rate_limited", JSON.stringify(error));
        assert.ok(error.retryAfterMs > 0, JSON.stringify(error));
        assert.equal((await c.closedWithin()).code, 4429);
        return error.retryAfterMs;
      };
      await expectBanned("BAD2");

      // Idle until workerd evicts the room object; the next upgrade wakes it (room_wake).
      const isWake = (line) => line.event === "room_wake" && line.room === room;
      let woke = false;
      for (let period = 0; period < 3 && !woke; period++) {
        await sleep(IDLE_MS);
        const mark = strict.logs.mark();
        const retryAfterMs = await expectBanned(`BAD-after-idle-${period}`);
        woke = strict.logs.find(isWake, { since: mark }).length > 0;
        if (woke) {
          console.log(`ban: still refused after eviction (${((performance.now() - bannedAt) / 1000).toFixed(1)} s into the ban; retryAfterMs ${retryAfterMs})`);
          // Another identity is admitted in the woken room, and the member kept its place.
          const { joined: other } = await strict.join(room, { label: "OTHER" });
          assert.deepEqual(other.peers.map((p) => p.peerId), [goodJoined.peerId]);
          await good.next("peer_joined");
          // Wait out the rest of the ban, then the identity is admitted again.
          await sleep(retryAfterMs + 100);
          const back = await strict.join(room, { token, label: "BACK" });
          assert.equal(back.joined.peers.length, 2);
        }
      }
      assert.ok(woke, "the room object was never evicted; no room_wake after the idle periods");
    } finally {
      await strict.dispose();
    }
  },
);

test("a rate var that does not parse is a clear 500 internal, never a silent default", async () => {
  for (const [name, value] of [["RATE_MSG_PER_S", "fast"], ["RATE_BAN_S", "-1"], ["MAX_CONNECTIONS_PER_USER", "0"]]) {
    const broken = await startWorker({ bindings: { [name]: value } });
    try {
      await assert.rejects(broken.connect(uniqueRoom("cfg")), (err) => {
        assert.ok(err instanceof HandshakeRefused, String(err));
        assert.equal(err.status, 500);
        assert.equal(err.json?.error?.code, "internal");
        assert.match(err.json.error.message, new RegExp(name));
        return true;
      });
    } finally {
      await broken.dispose();
    }
  }
});

test(
  "strikes and connect buckets are durable: both still count after the room objects are evicted",
  { timeout: 90_000, skip: process.env.EDGESIGNAL_SKIP_HIBERNATION ? "EDGESIGNAL_SKIP_HIBERNATION is set" : false },
  async () => {
    // Three strikes ban; one connect a minute, so no number of idle periods this test may wait
    // for an eviction (at most three, about 40 s) refills it: the refusal after the eviction can
    // only come from storage. RESUME_GRACE_MS=0: the hopper's closed connections depart
    // at once (v1 semantics, peer_left), so no away member or grace deadline outlives them in
    // the idle periods; this test is about the limits' storage, not presence.
    const durable = await startWorker({ bindings: { RATE_ABUSE_STRIKES: "3", RATE_CONNECT_PER_MIN: "1", RESUME_GRACE_MS: "0" } });
    try {
      // Room 1: an identity collects two strikes, then goes quiet (stays connected).
      const strikeRoom = uniqueRoom("strikes");
      const strikerToken = durable.token({ rooms: [strikeRoom], sub: "striker" });
      const { client: striker } = await durable.join(strikeRoom, { token: strikerToken, label: "S" });
      const { client: targetClient, joined: target } = await durable.join(strikeRoom, { label: "T" });
      await striker.next("peer_joined");
      const flood = () => {
        for (let i = 0; i < 120; i++) striker.send({ type: "offer", to: target.peerId, sdp: `v=0 ${i}` });
      };
      flood();
      assert.equal((await striker.next("error")).code, "rate_limited");
      await sleep(1100);
      flood();
      await striker.next("error");
      assert.ok(striker.isOpen, "two strikes of three: still connected");

      // Room 2: an identity spends its connect of the minute.
      const connectRoom = uniqueRoom("connects");
      const hopperToken = durable.token({ rooms: [connectRoom], sub: "hopper" });
      const { client: keeper } = await durable.join(connectRoom, { label: "K" });
      const { client: hop } = await durable.join(connectRoom, { token: hopperToken, label: "H" });
      await keeper.next("peer_joined");
      await hop.close();
      assert.equal((await keeper.next("peer_left")).reason, "disconnect");
      const over = await durable.connect(connectRoom, { token: hopperToken, label: "H-over" });
      assert.equal((await over.next()).code, "rate_limited");
      await over.closedWithin();

      // Both objects idle until workerd evicts them (one shared idle period). A harmless frame
      // in each room then wakes it, and its `room_wake` proves it was rebuilt from its sockets
      // and its storage; only then are the limits checked.
      const wokeIn = (room, mark) => durable.logs.find((line) => line.event === "room_wake" && line.room === room, { since: mark }).length > 0;
      const evicted = { [strikeRoom]: false, [connectRoom]: false };
      for (let period = 0; period < 3 && !(evicted[strikeRoom] && evicted[connectRoom]); period++) {
        await sleep(IDLE_MS);
        const mark = durable.logs.mark();
        targetClient.send({ type: "join", roomId: strikeRoom });
        keeper.send({ type: "join", roomId: connectRoom });
        await Promise.all([targetClient.next("joined"), keeper.next("joined")]);
        for (const room of [strikeRoom, connectRoom]) evicted[room] ||= wokeIn(room, mark);
      }
      assert.ok(evicted[strikeRoom] && evicted[connectRoom], `not both evicted: ${JSON.stringify(evicted)}`);
      // Room 2 after its eviction: the identity is still over its connect rate.
      const again = await durable.connect(connectRoom, { token: hopperToken, label: "H-after" });
      const refusal = await again.next();
      assert.equal(refusal.code, "rate_limited", JSON.stringify(refusal));
      assert.ok(refusal.retryAfterMs > 0);
      await again.closedWithin();
      // Room 1 after its eviction: a flood in a third second is the third strike, so the ban.
      flood();
      const banned = await striker.next((f) => f.type === "error" && f.retryAfterMs > 10_000);
      assert.equal(banned.code, "rate_limited");
      assert.equal((await striker.closedWithin()).code, 4429);
      await keeper.expectSilence();
    } finally {
      await durable.dispose();
    }
  },
);
