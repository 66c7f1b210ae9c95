// Scenario 12: the room survives hibernation. workerd evicts an idle Durable Object after about
// 10 s; its WebSockets, their tags and attachments stay open, and the next event re-runs the
// constructor (which logs `room_wake` with the number of sockets it rebuilt). Nothing may depend
// on memory: ids, metadata, join order and routing must all come back from the sockets.
//
// This is the one test with a deliberate idle period (the eviction has no event to wait on).
// Set EDGESIGNAL_SKIP_HIBERNATION=1 to skip it in a quick local loop.
//
// v1.1: the per-peer `seq` is part of what must survive: every frame counts on from the last one
// the peer got before the eviction.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, uniqueRoom } from "../lib/harness.mjs";

/** Longer than workerd's ~10 s idle eviction, with margin. */
const IDLE_MS = Number(process.env.EDGESIGNAL_IDLE_MS ?? 12_000);
const MAX_IDLE_PERIODS = 3;

let worker;
before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.dispose();
});

const idle = (ms) => new Promise((r) => setTimeout(r, ms));

test(
  "a hibernated room wakes from its sockets with ids, metadata, order and routing intact",
  { timeout: 30_000 + MAX_IDLE_PERIODS * (IDLE_MS + 5_000), skip: process.env.EDGESIGNAL_SKIP_HIBERNATION ? "EDGESIGNAL_SKIP_HIBERNATION is set" : false },
  async () => {
    const room = uniqueRoom("hibernate");
    const isWake = (line) => line.event === "room_wake";
    const metaA = { name: "alice" };
    const metaB = { name: "bob", muted: false };

    const { client: a, joined: joinedA } = await worker.join(room, { label: "A" });
    const A = joinedA.peerId;
    a.send({ type: "join", roomId: room, metadata: metaA });
    const rejoinedA = await a.next();
    assert.equal(rejoinedA.type, "joined");
    assert.equal(rejoinedA.seq, 2);
    const { client: b, joined: joinedB } = await worker.join(room, { label: "B" });
    const B = joinedB.peerId;
    assert.deepEqual(joinedB.peers, [{ peerId: A, metadata: metaA, status: "available", polite: false }]);
    assert.deepEqual(await a.next(), { type: "peer_joined", roomId: room, peerId: B, metadata: {}, status: "available", polite: true, seq: 3 });
    b.send({ type: "join", roomId: room, metadata: metaB });
    const rejoinedB = await b.next();
    assert.equal(rejoinedB.type, "joined");
    assert.equal(rejoinedB.seq, 2);
    assert.deepEqual(await a.next(), { type: "peer_updated", roomId: room, peerId: B, metadata: metaB, status: "available", seq: 4 });

    // The first construction happened for A's upgrade, before any socket existed.
    const firstWake = await worker.waitForLog(isWake);
    assert.equal(firstWake.level, "info");
    assert.equal(firstWake.room, room);
    assert.equal(firstWake.peers, 0);

    let wake = null;
    let seqB = 2;
    for (let period = 1; period <= MAX_IDLE_PERIODS && !wake; period++) {
      await idle(IDLE_MS);
      const mark = worker.logs.mark();

      // The runtime answers the exact ping itself: pong, and the object is not woken.
      a.send('{"type":"ping"}');
      assert.equal((await a.nextFrame()).raw, '{"type":"pong"}');
      await worker.logs.expectNoLog(isWake, 300, { since: mark });

      // A real frame wakes it (if it was evicted) and must still be routed by peer id.
      const correlationId = `after-idle-${period}`;
      a.send({ type: "offer", to: B, sdp: "v=0 after idle", correlationId });
      assert.deepEqual(await b.next(), {
        type: "relay",
        inner: { type: "offer", roomId: room, from: A, to: B, sdp: "v=0 after idle" },
        correlationId,
        seq: ++seqB,
      });
      // The constructor ran before the relay was sent, so its line is printed by now or very soon.
      wake = await worker.waitForLog(isWake, 1000, { since: mark }).catch(() => null);
      console.log(`idle period ${period} (${IDLE_MS} ms): ${wake ? `woke ${JSON.stringify(wake)}` : "no eviction yet"}`);
    }
    assert.ok(wake, `no room_wake after ${MAX_IDLE_PERIODS} idle periods: the object was never evicted?\n${worker.logs.dump()}`);
    assert.equal(wake.room, room);
    assert.equal(wake.peers, 2, `rebuilt ${wake.peers} sockets, expected A and B`);

    // A newcomer sees exactly A and B, oldest first, with the metadata set before hibernation.
    const { client: c, joined: joinedC } = await worker.join(room, { label: "C" });
    assert.deepEqual(joinedC.peers, [
      { peerId: A, metadata: metaA, status: "available", polite: false },
      { peerId: B, metadata: metaB, status: "available", polite: false },
    ]);
    for (const [member, seq] of [[a, 5], [b, ++seqB]]) {
      assert.deepEqual(await member.next(), { type: "peer_joined", roomId: room, peerId: joinedC.peerId, metadata: {}, status: "available", polite: true, seq });
    }

    // B's answer still reaches A, stamped with B's original id.
    b.send({ type: "answer", to: A, sdp: "v=0 answer", correlationId: "answer" });
    assert.deepEqual(await a.next(), {
      type: "relay",
      inner: { type: "answer", roomId: room, from: B, to: A, sdp: "v=0 answer" },
      correlationId: "answer",
      seq: 6,
    });
    await Promise.all([a.expectSilence(), b.expectSilence(), c.expectSilence()]);
  },
);
