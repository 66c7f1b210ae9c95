// Scenario 11: a room at MAX_PEERS_PER_ROOM refuses the next peer with one `room_full` frame and
// close 1013; its members hear nothing of it, and the seat frees up when a member goes.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { errorShape, expectedError, startWorker, uniqueRoom } from "../lib/harness.mjs";

let worker;
before(async () => {
  worker = await startWorker({ bindings: { MAX_PEERS_PER_ROOM: "2" } });
});
after(async () => {
  await worker?.dispose();
});

async function expectRoomFull(room, options = {}, w = worker) {
  const c = await w.connect(room, { label: "C", ...options });
  assert.deepEqual(errorShape(await c.next()), expectedError("room_full"));
  const closed = await c.closedWithin();
  assert.equal(closed.code, 1013);
  assert.equal(c.inbox.length, 0, `more frames after room_full: ${c.describeInbox()}`);
}

test("the third peer in a room of two gets room_full and close 1013; members hear nothing", async () => {
  const room = uniqueRoom("full");
  const { a, b, A, B } = await worker.pair(room);
  await expectRoomFull(room);
  await expectRoomFull(room, { placement: "protocol" });
  await Promise.all([a.expectSilence(), b.expectSilence()]);

  // The members still talk to each other.
  a.send({ type: "offer", to: B, sdp: "v=0", correlationId: "still" });
  // B's seq 2: the refused upgrades sent the members nothing, not even a sequence number.
  assert.deepEqual(await b.next(), { type: "relay", inner: { type: "offer", roomId: room, from: A, to: B, sdp: "v=0" }, correlationId: "still", seq: 2 });

  // Another room is not affected.
  const { client: x, joined } = await worker.join(uniqueRoom("other"), { label: "X" });
  assert.deepEqual(joined.peers, []);
  await x.close();
});

test("a seat frees up when a member leaves or disconnects", async () => {
  // The v1 departure semantics: with RESUME_GRACE_MS=0 an abrupt disconnect is a departure at
  // once (peer_left, seat freed). Under the default grace the peer would stay a member, "away",
  // keeping its seat for 30 s; that is the presence tests' subject.
  const v1 = await startWorker({ bindings: { MAX_PEERS_PER_ROOM: "2", RESUME_GRACE_MS: "0" } });
  try {
    const room = uniqueRoom("seat");
    const { a, b, A, B } = await v1.pair(room);
    await b.terminate();
    assert.deepEqual(await a.next(), { type: "peer_left", roomId: room, peerId: B, reason: "disconnect", seq: 3 });
    const { client: d, joined } = await v1.join(room, { label: "D" });
    assert.deepEqual(joined.peers, [{ peerId: A, metadata: {}, status: "available", polite: false }]);
    assert.equal((await a.next()).type, "peer_joined");
    await expectRoomFull(room, {}, v1);

    a.send({ type: "leave", roomId: room });
    assert.deepEqual(await d.next(), { type: "peer_left", roomId: room, peerId: A, reason: "leave", seq: 2 });
    const { client: e, joined: joinedE } = await v1.join(room, { label: "E" });
    assert.deepEqual(joinedE.peers, [{ peerId: joined.peerId, metadata: {}, status: "available", polite: false }]);
    assert.equal((await d.next()).type, "peer_joined");
    await Promise.all([d.expectSilence(), e.expectSilence()]);
  } finally {
    await v1.dispose();
  }
});
