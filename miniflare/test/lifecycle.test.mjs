// Scenarios 8, 9 and 10: leaving and disconnecting, the runtime's ping/pong auto-response, and
// `join` as an idempotent re-announcement that can change a peer's public metadata.
//
// v1.1: every frame but `pong` and `error` carries the addressee's next `seq`. After `pair()`,
// A has seen seq 1 (joined) and 2 (peer_joined for B), B seq 1 (joined).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RESUME_TOKEN, errorShape, expectedError, joinedShape, startWorker, uniqueRoom } from "../lib/harness.mjs";

let worker;
/** The v1 departure semantics (RESUME_GRACE_MS=0: no `away`, peer_left at once), for the tests of it. */
let v1;
before(async () => {
  worker = await startWorker();
  v1 = await startWorker({ bindings: { RESUME_GRACE_MS: "0" } });
});
after(async () => {
  await worker?.dispose();
  await v1?.dispose();
});

/** A `joined` answer, as `joinedShape` shows it. */
function expectedJoined(room, peerId, peers, seq) {
  return { type: "joined", roomId: room, peerId, peers, resumed: false, resumeToken: RESUME_TOKEN, seq };
}

/** An entry of `joined.peers` for a peer that was there before the addressee (so it is impolite). */
function earlier(peerId, metadata = {}, status = "available") {
  return { peerId, metadata, status, polite: false };
}

/** An entry of `joined.peers` for a peer that came after the addressee (so it is polite). */
function later(peerId, metadata = {}, status = "available") {
  return { peerId, metadata, status, polite: true };
}

describe("leaving", () => {
  test("leave: the others get peer_left reason leave, the leaver is closed with 1000, a second leave is a no-op", async () => {
    const room = uniqueRoom("leave");
    const { a, b, A, B } = await worker.pair(room);
    // Both frames go out before the server can close: the second one must change nothing.
    a.send({ type: "leave", roomId: room });
    a.send({ type: "leave", roomId: room });
    assert.deepEqual(await b.next(), { type: "peer_left", roomId: room, peerId: A, reason: "leave", seq: 2 });
    const closed = await a.closedWithin();
    assert.equal(closed.code, 1000);
    assert.equal(a.inbox.length, 0, `the leaver got: ${a.describeInbox()}`);
    await b.expectSilence();

    // A newcomer sees only B.
    const { client: c, joined } = await worker.join(room, { label: "C" });
    assert.deepEqual(joined.peers, [earlier(B)]);
    assert.deepEqual(await b.next(), { type: "peer_joined", roomId: room, peerId: joined.peerId, metadata: {}, status: "available", polite: true, seq: 3 });
    await Promise.all([b.expectSilence(), c.expectSilence()]);
  });

  test("an abrupt disconnect: the others get peer_away reason disconnect, and the peer stays listed as away", async () => {
    const room = uniqueRoom("abrupt");
    const { a, b, A, B } = await worker.pair(room);
    await b.terminate();
    assert.deepEqual(await a.next(), { type: "peer_away", roomId: room, peerId: B, reason: "disconnect", seq: 3 });
    await a.expectSilence();
    assert.ok(A && a.isOpen);
    // Still a member for the grace: a newcomer sees it, away.
    const { client: c, joined } = await worker.join(room, { label: "C" });
    assert.deepEqual(joined.peers, [earlier(A), earlier(B, {}, "away")]);
    assert.equal((await a.next()).type, "peer_joined");
    await Promise.all([a.expectSilence(), c.expectSilence()]);
  });

  test("an abrupt disconnect with RESUME_GRACE_MS=0 (v1): the others get peer_left reason disconnect at once", async () => {
    const room = uniqueRoom("abrupt-v1");
    const { a, b, A, B } = await v1.pair(room);
    await b.terminate();
    assert.deepEqual(await a.next(), { type: "peer_left", roomId: room, peerId: B, reason: "disconnect", seq: 3 });
    await a.expectSilence();
    assert.ok(A && a.isOpen);
  });

  for (const code of [4000, 1000]) {
    test(`a close ${code} without leave: peer_away reason disconnect, and the server answers the close with ${code}`, async () => {
      const room = uniqueRoom(`close-${code}`);
      const { a, b, B } = await worker.pair(room);
      b.close(code, "bye");
      const closed = await b.closedWithin();
      assert.equal(closed.code, code);
      assert.deepEqual(await a.next(), { type: "peer_away", roomId: room, peerId: B, reason: "disconnect", seq: 3 });
      await a.expectSilence();
    });

    test(`a close ${code} without leave with RESUME_GRACE_MS=0 (v1): peer_left reason disconnect at once, the close answered with ${code}`, async () => {
      const room = uniqueRoom(`close-${code}-v1`);
      const { a, b, B } = await v1.pair(room);
      b.close(code, "bye");
      const closed = await b.closedWithin();
      assert.equal(closed.code, code);
      assert.deepEqual(await a.next(), { type: "peer_left", roomId: room, peerId: B, reason: "disconnect", seq: 3 });
      await a.expectSilence();
    });
  }

  test("the last peer leaving and a new one arriving: an empty room again", async () => {
    const room = uniqueRoom("empty");
    const { client: a } = await worker.join(room, { label: "A" });
    a.send({ type: "leave", roomId: room });
    assert.equal((await a.closedWithin()).code, 1000);
    const { client: b, joined } = await worker.join(room, { label: "B" });
    assert.deepEqual(joinedShape(joined), expectedJoined(room, joined.peerId, [], 1));
    await b.expectSilence();
  });
});

describe("ping", () => {
  test('exactly {"type":"ping"} is answered with exactly {"type":"pong"}', async () => {
    const room = uniqueRoom("ping");
    const { a, b } = await worker.pair(room);
    for (let i = 0; i < 3; i++) {
      a.send('{"type":"ping"}');
      const frame = await a.nextFrame();
      assert.equal(frame.binary, false);
      assert.equal(frame.raw, '{"type":"pong"}');
    }
    await Promise.all([a.expectSilence(), b.expectSilence()]);
  });
});

describe("join after joining", () => {
  test("a second join answers joined again without a second peer_joined", async () => {
    const room = uniqueRoom("rejoin");
    const { a, b, A, B, joinedA, joinedB } = await worker.pair(room);
    // Each answer is a new frame with the next seq, and the same resume token (nothing resumed).
    b.send({ type: "join", roomId: room });
    const again = await b.next();
    assert.deepEqual(joinedShape(again), expectedJoined(room, B, [earlier(A)], 2));
    assert.equal(again.resumeToken, joinedB.resumeToken);
    b.send({ type: "join", roomId: room, peerId: B });
    const third = await b.next();
    assert.deepEqual(joinedShape(third), expectedJoined(room, B, [earlier(A)], 3));
    assert.equal(third.resumeToken, joinedB.resumeToken);
    a.send({ type: "join", roomId: room, metadata: {} }); // same as the default: no update
    const answerA = await a.next();
    assert.deepEqual(joinedShape(answerA), expectedJoined(room, A, [later(B)], 3));
    assert.equal(answerA.resumeToken, joinedA.resumeToken);
    await Promise.all([a.expectSilence(), b.expectSilence()]);
  });

  test("new metadata reaches the others as peer_updated, later joiners see it in joined.peers", async () => {
    const room = uniqueRoom("metadata");
    const { a, b, A, B } = await worker.pair(room);
    const metaA = { name: "alice", camera: true };
    const metaB = { name: "bob", tags: ["viewer"], nested: { level: 2 } };

    a.send({ type: "join", roomId: room, metadata: metaA, correlationId: "meta-a" });
    assert.deepEqual(joinedShape(await a.next()), expectedJoined(room, A, [later(B)], 3));
    assert.deepEqual(await b.next(), { type: "peer_updated", roomId: room, peerId: A, metadata: metaA, status: "available", seq: 2 });

    b.send({ type: "join", roomId: room, metadata: metaB });
    assert.deepEqual(joinedShape(await b.next()), expectedJoined(room, B, [earlier(A, metaA)], 3));
    assert.deepEqual(await a.next(), { type: "peer_updated", roomId: room, peerId: B, metadata: metaB, status: "available", seq: 4 });

    // The same metadata again, and a join without metadata: joined, but nothing for the others.
    b.send({ type: "join", roomId: room, metadata: metaB });
    assert.deepEqual(joinedShape(await b.next()), expectedJoined(room, B, [earlier(A, metaA)], 4));
    b.send({ type: "join", roomId: room });
    assert.deepEqual(joinedShape(await b.next()), expectedJoined(room, B, [earlier(A, metaA)], 5));
    await Promise.all([a.expectSilence(), b.expectSilence()]);

    // A later joiner sees both, oldest first, with their current metadata.
    const { client: c, joined } = await worker.join(room, { label: "C" });
    assert.deepEqual(joined.peers, [earlier(A, metaA), earlier(B, metaB)]);
    for (const [member, seq] of [[a, 5], [b, 6]]) {
      assert.deepEqual(await member.next(), { type: "peer_joined", roomId: room, peerId: joined.peerId, metadata: {}, status: "available", polite: true, seq });
    }

    // Changing it back to {} is a change too.
    a.send({ type: "join", roomId: room, metadata: {} });
    assert.deepEqual(joinedShape(await a.next()), expectedJoined(room, A, [later(B, metaB), later(joined.peerId)], 6));
    for (const [member, seq] of [[b, 7], [c, 2]]) {
      assert.deepEqual(await member.next(), { type: "peer_updated", roomId: room, peerId: A, metadata: {}, status: "available", seq });
    }
    await Promise.all([a.expectSilence(), b.expectSilence(), c.expectSilence()]);
  });

  test("metadata of exactly 1024 serialized bytes is accepted, 1025 is too_large", async () => {
    const room = uniqueRoom("meta-size");
    const { a, b, A, B } = await worker.pair(room);
    const sized = (bytes) => {
      const pad = bytes - JSON.stringify({ p: "" }).length;
      return { p: "x".repeat(pad) };
    };
    assert.equal(JSON.stringify(sized(1024)).length, 1024);

    a.send({ type: "join", roomId: room, metadata: sized(1025), correlationId: "too-big" });
    assert.deepEqual(errorShape(await a.next()), expectedError("too_large", "too-big"));
    await b.expectSilence();

    a.send({ type: "join", roomId: room, metadata: sized(1024) });
    // The refused join spent no seq: A's joined answer is its seq 3, B's update its seq 2.
    assert.deepEqual(joinedShape(await a.next()), expectedJoined(room, A, [later(B)], 3));
    assert.deepEqual(await b.next(), { type: "peer_updated", roomId: room, peerId: A, metadata: sized(1024), status: "available", seq: 2 });
    await Promise.all([a.expectSilence(), b.expectSilence()]);
  });

  test("refused joins: wrong roomId, someone else's peerId, non-object metadata, no roomId", async () => {
    const room = uniqueRoom("join-errors");
    const { a, b, B } = await worker.pair(room);
    const cases = [
      [{ type: "join", roomId: "another-room", correlationId: "j1" }, expectedError("room_mismatch", "j1")],
      [{ type: "join", roomId: room, peerId: B, correlationId: "j2" }, expectedError("forbidden_sender", "j2")],
      [{ type: "join", roomId: room, metadata: ["not", "an", "object"], correlationId: "j3" }, expectedError("bad_request", "j3")],
      [{ type: "join", roomId: room, metadata: "alice", correlationId: "j4" }, expectedError("bad_request", "j4")],
      [{ type: "join", correlationId: "j6" }, expectedError("bad_request", "j6")],
    ];
    for (const [frame, expected] of cases) {
      a.send(frame);
      assert.deepEqual(errorShape(await a.next()), expected, JSON.stringify(frame));
    }
    assert.ok(a.isOpen);
    await Promise.all([a.expectSilence(), b.expectSilence()]);
  });

  test("metadata: null counts as absent and keeps the current metadata", async () => {
    // The protocol's convention for optional fields (like `"correlationId": null` in the golden
    // frames): null is the same as leaving the field out.
    const room = uniqueRoom("join-null");
    const { a, b, A, B } = await worker.pair(room);
    a.send({ type: "join", roomId: room, metadata: { name: "alice" } });
    assert.equal((await a.next()).type, "joined");
    assert.equal((await b.next()).type, "peer_updated");
    a.send({ type: "join", roomId: room, metadata: null, correlationId: "null-meta" });
    assert.deepEqual(joinedShape(await a.next()), expectedJoined(room, A, [later(B)], 4));
    await b.expectSilence();
    b.send({ type: "join", roomId: room });
    assert.deepEqual(joinedShape(await b.next()), expectedJoined(room, B, [earlier(A, { name: "alice" })], 3));
    await Promise.all([a.expectSilence(), b.expectSilence()]);
  });
});
