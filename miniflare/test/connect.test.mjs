// Scenario 1: a client connects with its token in each of the three placements and gets `joined`
// as its first frame; a second client sees the first in `joined.peers`, the first hears
// `peer_joined`. Connect→joined times are printed, not asserted (speed belongs in a benchmark).
//
// v1.1: every server frame to a joined peer (but `pong` and `error`) carries `seq` as its last
// field, `joined` being seq 1; `joined` has `resumed` and an opaque `resumeToken`; each listed
// peer has `status` and `polite` (the newcomer is impolite toward everyone already there), and
// `peer_joined` tells the earlier members they are the polite side.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { RESUME_TOKEN, ULID_RE, joinedShape, startWorker, uniqueRoom } from "../lib/harness.mjs";

let worker;
before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.dispose();
});

for (const placement of ["header", "protocol", "query"]) {
  test(`joins with the token in the ${placement} and gets joined first`, async () => {
    const room = uniqueRoom(`connect-${placement}`);
    const first = await worker.join(room, { placement, label: "A" });
    console.log(`connect→joined, token in ${placement}, Miniflare Node API on loopback: ${first.ms.toFixed(1)} ms`);
    const A = first.joined.peerId;
    assert.match(A, ULID_RE);
    assert.deepEqual(joinedShape(first.joined), { type: "joined", roomId: room, peerId: A, peers: [], resumed: false, resumeToken: RESUME_TOKEN, seq: 1 });
    assert.equal(Object.keys(first.joined).at(-1), "seq", "seq is the last field");

    if (placement === "protocol") {
      // The server picks `signal.v1` and never echoes the `bearer.<jwt>` entry.
      assert.equal(first.client.protocol, "signal.v1");
      assert.equal(first.client.responseHeaders["sec-websocket-protocol"], "signal.v1");
    } else {
      // No subprotocol offered, none answered (ws would have failed the handshake otherwise).
      assert.equal(first.client.protocol, "");
    }

    // Same token (same `sub`) again: a fresh, different peer id, never chosen by the client.
    const second = await worker.join(room, { placement, label: "B" });
    const B = second.joined.peerId;
    assert.match(B, ULID_RE);
    assert.notEqual(B, A);
    assert.deepEqual(joinedShape(second.joined), {
      type: "joined",
      roomId: room,
      peerId: B,
      peers: [{ peerId: A, metadata: {}, status: "available", polite: false }],
      resumed: false,
      resumeToken: RESUME_TOKEN,
      seq: 1,
    });
    assert.notEqual(second.joined.resumeToken, first.joined.resumeToken);
    const peerJoined = await first.client.next();
    assert.deepEqual(peerJoined, { type: "peer_joined", roomId: room, peerId: B, metadata: {}, status: "available", polite: true, seq: 2 });
    assert.equal(Object.keys(peerJoined).at(-1), "seq", "seq is the last field");

    await Promise.all([first.client.expectSilence(), second.client.expectSilence()]);
    assert.ok(first.client.isOpen && second.client.isOpen);
  });
}

test("peers are listed oldest first in joined", async () => {
  const room = uniqueRoom("order");
  const ids = [];
  const clients = [];
  for (const label of ["A", "B", "C", "D"]) {
    const { client, joined } = await worker.join(room, { label });
    // The newcomer is the impolite side toward every earlier peer.
    assert.deepEqual(
      joined.peers,
      ids.map((peerId) => ({ peerId, metadata: {}, status: "available", polite: false })),
    );
    assert.equal(joined.seq, 1);
    // Each earlier member's frames count on from its own joined (seq 1): the k-th newcomer
    // after it is its seq k + 1.
    for (const [i, earlier] of clients.entries()) {
      const seq = 1 + (clients.length - i);
      assert.deepEqual(await earlier.next(), { type: "peer_joined", roomId: room, peerId: joined.peerId, metadata: {}, status: "available", polite: true, seq });
    }
    ids.push(joined.peerId);
    clients.push(client);
  }
  await Promise.all(clients.map((c) => c.expectSilence()));
});
