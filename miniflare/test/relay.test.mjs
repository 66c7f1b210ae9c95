// Scenarios 2, 3 and 5: offers, answers and candidates reach exactly their addressee, with `from`
// stamped by the server and `correlationId` echoed (or made by the server), in order, and never
// across rooms.
//
// v1.1: each relay carries the addressee's next `seq` as its last field. After `pair()`, A has
// seen seq 1 (joined) and 2 (peer_joined), B seq 1 (joined).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { RESUME_TOKEN, errorShape, expectedError, joinedShape, startWorker, uniqueRoom } from "../lib/harness.mjs";

let worker;
before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.dispose();
});

const SDP_OFFER = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
const SDP_ANSWER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:active\r\n";

/** A relay frame with a server-made correlationId: check it is a non-empty string, then pin it. */
function withServerCorrelationId(frame) {
  assert.equal(typeof frame.correlationId, "string", `server-made correlationId missing in ${JSON.stringify(frame)}`);
  assert.ok(frame.correlationId.length > 0, "server-made correlationId is empty");
  return { ...frame, correlationId: "<server-made>" };
}

test("offer and answer relay in both directions, from stamped, correlationId echoed or server-made", async () => {
  const room = uniqueRoom("relay");
  const { a, b, A, B } = await worker.pair(room);

  // A → B offer with a correlationId: echoed verbatim.
  a.send({ type: "offer", to: B, sdp: SDP_OFFER, correlationId: "offer-1" });
  assert.deepEqual(await b.next(), {
    type: "relay",
    inner: { type: "offer", roomId: room, from: A, to: B, sdp: SDP_OFFER },
    correlationId: "offer-1",
    seq: 2,
  });

  // B → A answer without one (and with the optional, correct `from`/`roomId`): server-made.
  b.send({ type: "answer", to: A, sdp: SDP_ANSWER, from: B, roomId: room });
  assert.deepEqual(withServerCorrelationId(await a.next()), {
    type: "relay",
    inner: { type: "answer", roomId: room, from: B, to: A, sdp: SDP_ANSWER },
    correlationId: "<server-made>",
    seq: 3,
  });

  // The other direction: B offers, A answers.
  b.send({ type: "offer", to: A, sdp: SDP_OFFER });
  assert.deepEqual(withServerCorrelationId(await a.next()), {
    type: "relay",
    inner: { type: "offer", roomId: room, from: B, to: A, sdp: SDP_OFFER },
    correlationId: "<server-made>",
    seq: 4,
  });
  const longId = "c".repeat(128); // the longest correlationId allowed
  a.send({ type: "answer", to: B, sdp: SDP_ANSWER, correlationId: longId, roomId: room });
  assert.deepEqual(await b.next(), {
    type: "relay",
    inner: { type: "answer", roomId: room, from: A, to: B, sdp: SDP_ANSWER },
    correlationId: longId,
    seq: 3,
  });

  // SDP text is relayed verbatim: non-ASCII, emoji, JSON-escaped characters and line separators.
  const unusual = 'v=0\r\ns=Café 🎉 \u2028 "quoted" \\ back\\slash\r\na=x:\t\u0000\r\n';
  a.send({ type: "offer", to: B, sdp: unusual, correlationId: "unicode" });
  assert.deepEqual(await b.next(), {
    type: "relay",
    inner: { type: "offer", roomId: room, from: A, to: B, sdp: unusual },
    correlationId: "unicode",
    seq: 4,
  });

  // Two server-made ids are not the same id.
  b.send({ type: "offer", to: A, sdp: "x" });
  b.send({ type: "offer", to: A, sdp: "y" });
  const [r1, r2] = await a.collect(2, "relay");
  assert.notEqual(r1.correlationId, r2.correlationId);
  assert.deepEqual([r1.seq, r2.seq], [5, 6]);

  await Promise.all([a.expectSilence(), b.expectSilence()]);
});

test("real ICE gathering under the default limits: an offer and 96 candidates sent back to back arrive complete, in order, unthrottled", async () => {
  const room = uniqueRoom("candidates");
  const { a, b, A, B } = await worker.pair(room);

  // Sent back to back without waiting, as a browser with several interfaces and TURN servers
  // trickles them: the offer, then 96 candidates with an end-of-candidates `null` after every
  // 24th (one per ICE restart "generation"), 101 frames in all. That is within the default
  // candidate burst (100), so nothing is throttled and the sender hears nothing.
  const sent = [{ type: "offer", to: B, sdp: SDP_OFFER, correlationId: "o" }];
  for (let i = 0; i < 96; i++) {
    const candidate = {
      candidate: `candidate:${i} 1 udp 2122260223 192.0.2.${(i % 250) + 1} ${50000 + i} typ host generation ${Math.floor(i / 24)} ufrag abcd`,
      sdpMid: "0",
      sdpMLineIndex: 0,
      usernameFragment: "abcd",
    };
    sent.push({ type: "candidate", to: B, candidate, correlationId: `c${i}` });
    if (i % 24 === 23) sent.push({ type: "candidate", to: B, candidate: null, correlationId: `end${i}` });
  }
  assert.equal(sent.length, 101);
  const started = performance.now();
  for (const frame of sent) a.send(frame);

  const received = await b.collect(sent.length, undefined, 10_000);
  // Reported, not asserted: speed is the benchmark's business (bench/connect-relay.mjs).
  console.log(`relay: ${sent.length} frames A→B delivered in ${(performance.now() - started).toFixed(1)} ms (Miniflare Node API on loopback)`);
  assert.deepEqual(
    received.map((f) => f.correlationId),
    sent.map((f) => f.correlationId),
    "frames lost or reordered",
  );
  received.forEach((frame, i) => {
    const { to, correlationId, ...payload } = sent[i];
    assert.deepEqual(frame, { type: "relay", inner: { ...payload, roomId: room, from: A, to }, correlationId, seq: 2 + i });
  });

  // The answer still flows the other way afterwards.
  b.send({ type: "answer", to: A, sdp: SDP_ANSWER, correlationId: "a" });
  assert.deepEqual(await a.next(), {
    type: "relay",
    inner: { type: "answer", roomId: room, from: B, to: A, sdp: SDP_ANSWER },
    correlationId: "a",
    seq: 3,
  });
  await Promise.all([a.expectSilence(), b.expectSilence()]);
});

test("members hear peer_joined before any frame the newcomer sends", async () => {
  const room = uniqueRoom("newcomer");
  const { client: a, joined: joinedA } = await worker.join(room, { label: "A" });
  const c = await worker.connect(room, { label: "C" });
  // Offer the moment `joined` arrives, as a newcomer following the convention does.
  const joinedC = await c.next();
  assert.equal(joinedC.type, "joined");
  c.send({ type: "offer", to: joinedA.peerId, sdp: SDP_OFFER, correlationId: "fast" });
  // The newcomer is the impolite side, the one that offers; A learns it is the polite one.
  assert.deepEqual(joinedShape(joinedC), {
    type: "joined",
    roomId: room,
    peerId: joinedC.peerId,
    peers: [{ peerId: joinedA.peerId, metadata: {}, status: "available", polite: false }],
    resumed: false,
    resumeToken: RESUME_TOKEN,
    seq: 1,
  });
  assert.deepEqual(await a.next(), { type: "peer_joined", roomId: room, peerId: joinedC.peerId, metadata: {}, status: "available", polite: true, seq: 2 });
  assert.deepEqual(await a.next(), {
    type: "relay",
    inner: { type: "offer", roomId: room, from: joinedC.peerId, to: joinedA.peerId, sdp: SDP_OFFER },
    correlationId: "fast",
    seq: 3,
  });
  await Promise.all([a.expectSilence(), c.expectSilence()]);
});

test("a relay to a peer of another room is target_not_found and never delivered", async () => {
  const room1 = uniqueRoom("cross-1");
  const room2 = uniqueRoom("cross-2");
  const { a, b, A } = await worker.pair(room1);
  const { client: x, joined: joinedX } = await worker.join(room2, { label: "X" });
  const X = joinedX.peerId;

  for (const type of ["offer", "answer"]) {
    a.send({ type, to: X, sdp: SDP_OFFER, correlationId: `cross-${type}` });
    assert.deepEqual(errorShape(await a.next()), expectedError("target_not_found", `cross-${type}`));
  }
  a.send({ type: "candidate", to: X, candidate: null, correlationId: "cross-candidate" });
  assert.deepEqual(errorShape(await a.next()), expectedError("target_not_found", "cross-candidate"));
  // Also with the sender claiming the other room: refused, not delivered. (Which check fires
  // first for a frame with two faults is not part of the contract, so either code is right.)
  a.send({ type: "offer", to: X, sdp: SDP_OFFER, roomId: room2, correlationId: "cross-room-claim" });
  const claim = errorShape(await a.next());
  assert.ok(["room_mismatch", "target_not_found"].includes(claim.code), JSON.stringify(claim));
  assert.deepEqual(claim, expectedError(claim.code, "cross-room-claim"));
  // And the other way round.
  x.send({ type: "offer", to: A, sdp: SDP_OFFER, correlationId: "back" });
  assert.deepEqual(errorShape(await x.next()), expectedError("target_not_found", "back"));

  await Promise.all([a.expectSilence(), b.expectSilence(), x.expectSilence()]);
});

test("a relay to an unknown or departed peer is target_not_found", async () => {
  // v1 departure semantics: with RESUME_GRACE_MS=0 an abrupt disconnect removes the peer at once.
  // (Under the default grace B would stay a member, away, and a relay to it would be kept for it.)
  const v1 = await startWorker({ bindings: { RESUME_GRACE_MS: "0" } });
  try {
    const room = uniqueRoom("gone");
    const { a, b, A, B } = await v1.pair(room);
    a.send({ type: "offer", to: "01ARZ3NDEKTSV4RRFFQ69G5FAV", sdp: SDP_OFFER, correlationId: "unknown" });
    assert.deepEqual(errorShape(await a.next()), expectedError("target_not_found", "unknown"));

    await b.terminate();
    assert.deepEqual(await a.next(), { type: "peer_left", roomId: room, peerId: B, reason: "disconnect", seq: 3 });
    a.send({ type: "answer", to: B, sdp: SDP_ANSWER, correlationId: "departed" });
    assert.deepEqual(errorShape(await a.next()), expectedError("target_not_found", "departed"));
    assert.ok(a.isOpen, `A's connection closed after an error: ${JSON.stringify(a.closeInfo)}`);
    assert.ok(A);
    await a.expectSilence();
  } finally {
    await v1.dispose();
  }
});

test("a candidate and an SDP reach the addressee as the exact JSON text the sender wrote", async () => {
  const { a, b, B } = await worker.pair(uniqueRoom("relay-exact"));
  // Keys out of order, spaces and escapes: the server splices the payload in, it never re-encodes.
  const candidate = `{ "sdpMid":"0",  "candidate":"candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host \\u00e9", "usernameFragment":null, "sdpMLineIndex":0 }`;
  a.send(`{"type":"candidate","to":"${B}","candidate":${candidate},"correlationId":"exact-1"}`);
  const frame = await b.nextFrame("relay");
  assert.ok(frame.raw.includes(`"candidate":${candidate},`), frame.raw);
  assert.ok(frame.raw.endsWith(`"correlationId":"exact-1","seq":2}`), `seq is the last field: ${frame.raw}`);
  assert.equal(frame.data.inner.candidate.candidate, "candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host é");
  const sdp = JSON.stringify(SDP_OFFER).replace("v=0", "v=0\\u0020");
  a.send(`{"type":"offer","sdp":${sdp},"to":"${B}"}`);
  const offer = await b.nextFrame("relay");
  assert.ok(offer.raw.includes(`"sdp":${sdp},`), offer.raw);
  assert.ok(offer.raw.endsWith(`,"seq":3}`), `seq is the last field: ${offer.raw}`);
  assert.equal(offer.data.inner.sdp, SDP_OFFER.replace("v=0", "v=0 "));
  await Promise.all([a.expectSilence(), b.expectSilence()]);
});
