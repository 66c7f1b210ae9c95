// @edgesignal/client against the built Worker in workerd (Miniflare), with `ws` as the
// WebSocket: join and relay, a socket killed mid-negotiation and resumed with zero frames lost
// or duplicated, frames sent while reconnecting, the call API, token refresh, fatal closes.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { startWorker, uniqueRoom } from "../../miniflare/lib/harness.mjs";
import { SignalingClient } from "../src/index.js";

const WebSocket = createRequire(import.meta.url)("../../miniflare/node_modules/ws");

let worker;
before(async () => {
  worker = await startWorker({ bindings: { TOKEN_EXPIRY_WARNING_MS: "3700000" } });
});
after(() => worker?.dispose());

function client(room, sub, extra = {}) {
  return new SignalingClient({
    url: `ws://${worker.url.host}`,
    room,
    getToken: async () => worker.token({ sub, rooms: [room], ttlSeconds: 3600 }),
    WebSocket,
    backoffMs: 20,
    ackDelayMs: 10,
    ...extra,
  });
}

/** Resolves with the next `type` event's frame. */
const next = (c, type, predicate = () => true) =>
  new Promise((resolve) => {
    const handler = (e) => {
      if (!predicate(e.detail)) return;
      c.removeEventListener(type, handler);
      resolve(e.detail);
    };
    c.addEventListener(type, handler);
  });

test("two clients join and relay; frames arrive once, acked", async () => {
  const room = uniqueRoom("sdk");
  const a = client(room, "sdk-a");
  const joinedA = await a.connect();
  const b = client(room, "sdk-b");
  const peerJoined = next(a, "peer_joined");
  const joinedB = await b.connect();
  assert.equal((await peerJoined).peerId, joinedB.peerId);
  assert.ok(joinedB.peers.some((p) => p.peerId === joinedA.peerId && p.polite === false));
  const relayed = next(a, "relay");
  b.offer(joinedA.peerId, "v=0 sdk");
  const relay = await relayed;
  assert.deepEqual([relay.inner.type, relay.inner.sdp, relay.inner.from], ["offer", "v=0 sdk", joinedB.peerId]);
  a.close();
  b.leave();
});

test("a socket killed mid-negotiation resumes: zero frames lost or duplicated", async () => {
  const room = uniqueRoom("sdk-resume");
  const a = client(room, "resume-a");
  const { peerId: A } = await a.connect();
  const b = client(room, "resume-b");
  const { peerId: B } = await b.connect();
  const got = [];
  a.addEventListener("relay", (e) => got.push(e.detail.inner.candidate.candidate));
  const resumed = next(a, "resumed");
  // B sends 60 candidates; A's socket dies after the 20th arrives.
  for (let i = 0; i < 60; i++) {
    if (i === 20) {
      while (got.length < 20) await next(a, "relay");
      a.ws.terminate();
    }
    b.candidate(A, { candidate: `candidate:${i}`, sdpMid: "0" });
  }
  const back = await resumed;
  assert.equal(back.peerId, A, "the same peer id");
  while (got.length < 60) await next(a, "relay");
  // A little more: a duplicate would show as a 61st.
  b.candidate(A, { candidate: "candidate:last", sdpMid: "0" });
  await next(a, "relay", (f) => f.inner.candidate.candidate === "candidate:last");
  assert.deepEqual(got.slice(0, 60), Array.from({ length: 60 }, (_, i) => `candidate:${i}`));
  assert.equal(got.length, 61);
  // A frame A sends right after its socket dies is queued and arrives after the resume.
  const offerToB = next(b, "relay");
  a.ws.terminate();
  a.offer(B, "v=0 sent while reconnecting");
  assert.equal((await offerToB).inner.sdp, "v=0 sent while reconnecting");
  a.leave();
  b.leave();
});

test("the call API: call, incoming, accept, hangup", async () => {
  const room = uniqueRoom("sdk-call");
  const a = client(room, "call-a");
  const b = client(room, "call-b");
  await a.connect();
  const { peerId: B } = await b.connect();
  const incoming = next(b, "call_incoming");
  const ringing = await a.call([B], { video: false });
  const inc = await incoming;
  assert.equal(inc.callId, ringing.callId);
  assert.deepEqual(inc.media, { audio: true, video: false });
  const accepted = next(a, "call_accepted");
  b.acceptCall(inc.callId);
  assert.equal((await accepted).peerId, B);
  const ended = next(b, "call_ended");
  a.hangup(ringing.callId);
  assert.equal((await ended).reason, "hangup");
  a.leave();
  b.leave();
});

test("the token is refreshed when the server warns it is expiring", async () => {
  const room = uniqueRoom("sdk-refresh");
  // The warning comes right after joined (the window is longer than the token's life).
  const a = client(room, "refresh-a");
  const refreshed = next(a, "refreshed");
  await a.connect();
  assert.ok((await refreshed).expiresAt > Date.now());
  a.leave();
});

test("a refused token is reported, not retried", async () => {
  const room = uniqueRoom("sdk-refused");
  const a = new SignalingClient({ url: `ws://${worker.url.host}`, room, token: "not-a-jwt", WebSocket, backoffMs: 10 });
  const reconnecting = [];
  a.addEventListener("reconnecting", (e) => reconnecting.push(e.detail));
  await assert.rejects(a.connect(), /unauthorized|4401/);
  await next(a, "closed");
  assert.equal(a.state, "closed");
  assert.deepEqual(reconnecting, []);
});

test("setMetadata: the answering `joined` is not a new session (no second `open`, seq goes on)", async () => {
  const room = uniqueRoom("sdk-metadata");
  const a = client(room, "meta-a");
  const b = client(room, "meta-b");
  const { peerId: A } = await a.connect();
  const { peerId: B } = await b.connect();
  const opens = [];
  a.addEventListener("open", (e) => opens.push(e.detail));
  const updated = next(b, "peer_updated");
  const answered = next(a, "joined");
  a.setMetadata({ name: "Alice" });
  assert.equal((await answered).peerId, A);
  assert.deepEqual((await updated).metadata, { name: "Alice" });
  assert.equal(b.peers.get(A).metadata.name, "Alice");
  assert.equal(a.state, "open");
  const seqBefore = a.seq;
  assert.ok(seqBefore > 0);
  // Frames after it are still delivered once, with seq counting on.
  const relayed = next(a, "relay");
  b.offer(A, "v=0 after-metadata");
  assert.equal((await relayed).inner.sdp, "v=0 after-metadata");
  assert.ok(a.seq > seqBefore);
  assert.deepEqual(opens, [], "no second `open`");
  assert.equal(a.peers.get(B).peerId, B);
  a.leave();
  b.leave();
});

test("the token and the resume token travel as subprotocols, never in the URL", async () => {
  const room = uniqueRoom("sdk-protocols");
  const opened = [];
  class Recording extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      opened.push({ url, protocols });
    }
  }
  const a = client(room, "protocols-a", { WebSocket: Recording });
  const joined = await a.connect();
  const resumed = next(a, "resumed");
  a.ws.terminate();
  assert.equal((await resumed).peerId, joined.peerId);
  assert.equal(opened.length, 2);
  for (const { url, protocols } of opened) {
    assert.equal(url, `ws://${worker.url.host}/ws/${room}`);
    assert.equal(protocols[0], "signal.v1");
    assert.match(protocols[1], /^bearer\.[\w-]+\.[\w-]+\.[\w-]+$/);
  }
  assert.equal(opened[0].protocols.length, 2);
  assert.equal(opened[1].protocols[2], `resume.${joined.resumeToken}`);
  a.leave();
});
