#!/usr/bin/env node
// Two clients meet in a room and exchange an offer, an answer and ICE candidates through a
// running edgesignal (default ws://127.0.0.1:8787, as `scripts/dev.sh` serves it).
//
//   node scripts/demo.mjs [--url ws://127.0.0.1:8787] [--room demo]
//
// It authenticates the way a browser does, with the token in Sec-WebSocket-Protocol, using
// Node's built-in WebSocket (Node 22+, or Node 20 with --experimental-websocket, which this
// script re-launches itself with when needed).
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { mint, claimsFor } from "../miniflare/lib/jwt.mjs";
import { readFileSync, existsSync } from "node:fs";

if (typeof WebSocket === "undefined") {
  const r = spawnSync(process.execPath, ["--experimental-websocket", "--no-warnings", ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}

const { values } = parseArgs({ options: { url: { type: "string", default: "ws://127.0.0.1:8787" }, room: { type: "string", default: "demo" } } });
const file = [".dev.vars", ".dev.vars.example"].find((f) => existsSync(new URL(`../${f}`, import.meta.url)));
const secret = process.env.JWT_SECRET ?? readFileSync(new URL(`../${file}`, import.meta.url), "utf8").match(/^JWT_SECRET=(.*)$/m)[1].trim();

function connect(name) {
  const token = mint({ secret, claims: claimsFor({ sub: name, rooms: [values.room] }) });
  const ws = new WebSocket(`${values.url}/ws/${values.room}`, ["signal.v1", `bearer.${token}`]);
  const queue = [];
  const waiters = [];
  ws.addEventListener("message", (e) => {
    const frame = JSON.parse(e.data);
    console.log(`${name} <- ${e.data.length > 160 ? e.data.slice(0, 157) + "..." : e.data}`);
    const i = waiters.findIndex((w) => w.match(frame));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(frame);
    else queue.push(frame);
  });
  const next = (type) =>
    new Promise((resolve, reject) => {
      const i = queue.findIndex((f) => f.type === type);
      if (i >= 0) return resolve(queue.splice(i, 1)[0]);
      const timer = setTimeout(() => reject(new Error(`${name}: no ${type} within 5 s`)), 5000);
      waiters.push({ match: (f) => f.type === type, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  const send = (frame) => ws.send(JSON.stringify(frame));
  return { ws, next, send };
}

const alice = connect("alice");
const aliceJoined = await alice.next("joined");
const bob = connect("bob");
const bobJoined = await bob.next("joined");
await alice.next("peer_joined");
const [a, b] = [aliceJoined.peerId, bobJoined.peerId];
// The newcomer (bob, who sees alice in joined.peers) makes the offer.
bob.send({ type: "offer", to: a, sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n" });
bob.send({ type: "candidate", to: a, candidate: { candidate: "candidate:1 1 udp 2130706431 192.0.2.10 50000 typ host", sdpMid: "0", sdpMLineIndex: 0 } });
await alice.next("relay");
await alice.next("relay");
alice.send({ type: "answer", to: b, sdp: "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\n" });
alice.send({ type: "candidate", to: b, candidate: null });
await bob.next("relay");
await bob.next("relay");
bob.send({ type: "leave", roomId: values.room });
await alice.next("peer_left");
alice.ws.close(1000);
console.log("demo: offer, answer and candidates relayed both ways");
