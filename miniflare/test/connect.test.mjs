// Scenario 1: a client connects with its token in each of the three placements and gets `joined`
// as its first frame; a second client sees the first in `joined.peers`, the first hears
// `peer_joined`. Connect→joined times are printed, not asserted (speed belongs in a benchmark).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ULID_RE, startWorker, uniqueRoom } from "../lib/harness.mjs";

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
    assert.deepEqual(first.joined, { type: "joined", roomId: room, peerId: A, peers: [] });

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
    assert.deepEqual(second.joined, { type: "joined", roomId: room, peerId: B, peers: [{ peerId: A, metadata: {} }] });
    assert.deepEqual(await first.client.next(), { type: "peer_joined", roomId: room, peerId: B, metadata: {} });

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
    assert.deepEqual(
      joined.peers,
      ids.map((peerId) => ({ peerId, metadata: {} })),
    );
    for (const earlier of clients) {
      assert.deepEqual(await earlier.next(), { type: "peer_joined", roomId: room, peerId: joined.peerId, metadata: {} });
    }
    ids.push(joined.peerId);
    clients.push(client);
  }
  await Promise.all(clients.map((c) => c.expectSilence()));
});
