// Scenario 6: every malformed or refused frame gets its `error` frame, the connection stays
// open, and the other peer receives nothing because of it.
//
// After each bad frame, A sends a valid offer to B. Frames from one sender to one addressee keep
// their order, so if B's very next frame is that offer, the bad frame delivered nothing to B:
// an event-driven proof, no sleep. It also proves that the error spent none of B's sequence
// numbers: B's relays count on 2, 3, … from its `joined` (seq 1), one per probe (`ctx.seqB`).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { errorShape, expectedError, startWorker, uniqueRoom } from "../lib/harness.mjs";

const OTHER_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

/**
 * Sends `frame` from A, expects exactly `expected` back at A, then proves with a valid relay that
 * A's connection still works and B got nothing from the bad frame.
 */
async function refusedWithoutSideEffects(ctx, frame, expected, probeId) {
  const { a, b, A, B, room } = ctx;
  a.send(frame);
  // `errorShape` keeps every field but `message`, so an `error` carrying a `seq` fails here.
  assert.deepEqual(errorShape(await a.next()), expected);
  assert.ok(a.isOpen, `A was closed: ${JSON.stringify(a.closeInfo)}`);
  a.send({ type: "offer", to: B, sdp: "v=0 probe", correlationId: probeId });
  assert.deepEqual(await b.next(), {
    type: "relay",
    inner: { type: "offer", roomId: room, from: A, to: B, sdp: "v=0 probe" },
    correlationId: probeId,
    seq: ++ctx.seqB,
  });
  assert.equal(a.inbox.length, 0, `A got more than the error: ${a.describeInbox()}`);
}

describe("bad frames with the default limits", () => {
  let worker;
  let ctx;
  before(async () => {
    worker = await startWorker();
    const room = uniqueRoom("errors");
    ctx = { room, ...(await worker.pair(room)), seqB: 1 };
  });
  after(async () => {
    await worker?.dispose();
  });

  /** name → (ctx) => [frame to send, expected error shape] */
  const cases = {
    "spoofed from (an unknown id)": ({ B }) => [{ type: "offer", to: B, from: OTHER_ULID, sdp: "x", correlationId: "spoof-1" }, expectedError("forbidden_sender", "spoof-1")],
    "spoofed from (the addressee's own id)": ({ B }) => [{ type: "answer", to: B, from: B, sdp: "x", correlationId: "spoof-2" }, expectedError("forbidden_sender", "spoof-2")],
    "spoofed from on a candidate": ({ B }) => [{ type: "candidate", to: B, from: OTHER_ULID, candidate: null }, expectedError("forbidden_sender")],
    "wrong roomId": ({ B }) => [{ type: "offer", to: B, roomId: "some-other-room", sdp: "x", correlationId: "room-1" }, expectedError("room_mismatch", "room-1")],
    "oversize frame (65537 bytes), refused before parsing so no correlationId": ({ B }) => [paddedOffer(B, 65537, "big"), expectedError("too_large")],
    "oversize in UTF-8 bytes though not in UTF-16 units": ({ B }) => [JSON.stringify({ type: "offer", to: B, sdp: "é".repeat(33_000), correlationId: "utf8" }), expectedError("too_large")],
    "invalid JSON": () => ['{"type":"offer",', expectedError("bad_request")],
    "empty text frame": () => ["", expectedError("bad_request")],
    "binary frame": () => [Buffer.from([0x00, 0x01, 0xfe, 0xff]), expectedError("bad_request")],
    "binary frame holding valid JSON": ({ B }) => [Buffer.from(JSON.stringify({ type: "offer", to: B, sdp: "x" })), expectedError("bad_request")],
    "unknown type": () => [{ type: "hello", correlationId: "u-1" }, expectedError("unknown_type", "u-1")],
    // v1.1's `ack` and `refresh` are known types: malformed, they are bad_request.
    "ack without seq": () => [{ type: "ack", correlationId: "ack-0" }, expectedError("bad_request", "ack-0")],
    "ack beyond the last seq sent": () => [{ type: "ack", seq: 1000 }, expectedError("bad_request")],
    "refresh without token": () => [{ type: "refresh", correlationId: "r-0" }, expectedError("bad_request", "r-0")],
    "missing type": ({ B }) => [{ to: B, sdp: "x", correlationId: "t-0" }, expectedError("bad_request", "t-0")],
    "mistyped type": ({ B }) => [{ type: 7, to: B, sdp: "x", correlationId: "t-1" }, expectedError("bad_request", "t-1")],
    "offer without sdp": ({ B }) => [{ type: "offer", to: B, correlationId: "m-1" }, expectedError("bad_request", "m-1")],
    "answer without to": () => [{ type: "answer", sdp: "x", correlationId: "m-2" }, expectedError("bad_request", "m-2")],
    "candidate without candidate": ({ B }) => [{ type: "candidate", to: B, correlationId: "m-3" }, expectedError("bad_request", "m-3")],
    "sdp not a string": ({ B }) => [{ type: "offer", to: B, sdp: 42, correlationId: "w-1" }, expectedError("bad_request", "w-1")],
    "sdp an object": ({ B }) => [{ type: "answer", to: B, sdp: { type: "answer", sdp: "x" }, correlationId: "w-2" }, expectedError("bad_request", "w-2")],
    "to not a string": () => [{ type: "offer", to: 7, sdp: "x", correlationId: "w-3" }, expectedError("bad_request", "w-3")],
    "candidate a string": ({ B }) => [{ type: "candidate", to: B, candidate: "candidate:1 1 udp 1 192.0.2.1 1 typ host", correlationId: "w-4" }, expectedError("bad_request", "w-4")],
    "non-object JSON: array": () => ["[1,2]", expectedError("bad_request")],
    "non-object JSON: string": () => ['"offer"', expectedError("bad_request")],
    "non-object JSON: number": () => ["42", expectedError("bad_request")],
    "non-object JSON: null": () => ["null", expectedError("bad_request")],
    "relay to yourself": ({ A }) => [{ type: "offer", to: A, sdp: "x", correlationId: "self" }, expectedError("bad_request", "self")],
    "correlationId of 129 chars": ({ B }) => [{ type: "offer", to: B, sdp: "x", correlationId: "c".repeat(129) }, expectedError("bad_request")],
    "correlationId a number": ({ B }) => [{ type: "offer", to: B, sdp: "x", correlationId: 42 }, expectedError("bad_request")],
    "correlationId an object": ({ B }) => [{ type: "offer", to: B, sdp: "x", correlationId: { id: "x" } }, expectedError("bad_request")],
  };

  let probe = 0;
  for (const [name, build] of Object.entries(cases)) {
    test(name, async () => {
      const [frame, expected] = build(ctx);
      await refusedWithoutSideEffects(ctx, frame, expected, `probe-${++probe}`);
    });
  }

  test("a frame of exactly 65536 bytes is still relayed", async () => {
    const { a, b, A, B, room } = ctx;
    const frame = paddedOffer(B, 65536, "edge");
    a.send(frame);
    const relay = await b.next();
    assert.deepEqual(relay, { type: "relay", inner: { type: "offer", roomId: room, from: A, to: B, sdp: JSON.parse(frame).sdp }, correlationId: "edge", seq: ++ctx.seqB });
  });

  test("nothing else reached either peer", async () => {
    await Promise.all([ctx.a.expectSilence(), ctx.b.expectSilence()]);
    assert.ok(ctx.a.isOpen && ctx.b.isOpen);
  });
});

describe("with MAX_FRAME_BYTES = 1024", () => {
  let worker;
  let ctx;
  before(async () => {
    worker = await startWorker({ bindings: { MAX_FRAME_BYTES: "1024" } });
    const room = uniqueRoom("small");
    ctx = { room, ...(await worker.pair(room)), seqB: 1 };
  });
  after(async () => {
    await worker?.dispose();
  });

  test("1025 bytes is too_large, 1024 bytes is relayed", async () => {
    const { b, A, B, room } = ctx;
    await refusedWithoutSideEffects(ctx, paddedOffer(B, 1025, "over"), expectedError("too_large"), "probe-small");
    const frame = paddedOffer(B, 1024, "at");
    ctx.a.send(frame);
    assert.deepEqual(await b.next(), { type: "relay", inner: { type: "offer", roomId: room, from: A, to: B, sdp: JSON.parse(frame).sdp }, correlationId: "at", seq: ++ctx.seqB });
  });

  test("an oversize join is too_large and changes nothing", async () => {
    const { a, b, room, A } = ctx;
    a.send({ type: "join", roomId: room, metadata: { name: "x".repeat(1100) }, correlationId: "j" });
    assert.deepEqual(errorShape(await a.next()), expectedError("too_large"));
    a.send({ type: "join", roomId: room });
    const joined = await a.next();
    assert.equal(joined.type, "joined");
    assert.equal(joined.peerId, A);
    // A's joined (1) and B's peer_joined (2) came before; the refused join spent nothing.
    assert.equal(joined.seq, 3);
    await Promise.all([a.expectSilence(), b.expectSilence()]);
  });
});

/** A valid offer to `to` whose serialized text is exactly `bytes` bytes of UTF-8 (ASCII). */
function paddedOffer(to, bytes, correlationId) {
  const base = JSON.stringify({ type: "offer", to, sdp: "", correlationId });
  const pad = bytes - Buffer.byteLength(base);
  if (pad < 0) throw new Error("frame too small to pad");
  const text = JSON.stringify({ type: "offer", to, sdp: "v".repeat(pad), correlationId });
  assert.equal(Buffer.byteLength(text), bytes);
  return text;
}
