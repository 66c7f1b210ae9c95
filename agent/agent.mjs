#!/usr/bin/env node
// The Robot Agent: a headless WebRTC peer for edgesignal rooms, in Node with @roamhq/wrtc
// (libwebrtc prebuilt for linux-x64, from the npm registry) and the project's own SDK.
//
//   node agent/agent.mjs --room lobby [--url ws://127.0.0.1:8787] [--token T] [--name "Robot Agent"]
//       [--video] [--json]
//
// It joins the room, answers every call at once, opens the data channel `chat` (negotiated, id 0,
// like the web console) and echoes every message it receives on any data channel, and with
// --video sends a test video track (a moving pattern, 320×240 at 15 fps). Without --token (or
// EDGESIGNAL_TOKEN) it mints a dev token with scripts/mint-token.mjs (the dev secret of .dev.vars),
// again before each reconnect. --json prints one JSON object per event on stdout for the browser
// tests and bench/console-agent.mjs (`at`: ms since the agent started; `epochMs`: the system
// clock, comparable across processes); otherwise a line of text. Stops on Ctrl-C, or on a
// refusal it cannot fix.

import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import wrtc from "@roamhq/wrtc";
import WebSocket from "ws";
import { PeerManager, SignalingClient } from "../sdk/src/index.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "ws://127.0.0.1:8787" },
    room: { type: "string", default: "lobby" },
    token: { type: "string", default: process.env.EDGESIGNAL_TOKEN },
    sub: { type: "string", default: "robot-agent" },
    name: { type: "string", default: "Robot Agent" },
    video: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

const started = performance.now();
/** System clock minus `performance.now()`, to a fraction of a millisecond (`Date.now()` counts
 * whole ones: the largest difference seen over a couple of its ticks). */
const wallOffset = (() => {
  let offset = -Infinity;
  for (const until = performance.now() + 3; performance.now() < until; ) offset = Math.max(offset, Date.now() - performance.now());
  return offset;
})();
function report(event, fields = {}) {
  const now = performance.now();
  const at = Math.round((now - started) * 10) / 10;
  // `epochMs`: the same moment on the system clock, to line events up with other processes'.
  if (args.json) console.log(JSON.stringify({ event, at, epochMs: now + wallOffset, ...fields }));
  else console.log(`[agent ${at.toFixed(0).padStart(6)} ms] ${event} ${Object.entries(fields).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")}`);
}

const getToken = args.token
  ? async () => args.token
  : async () => execFileSync(process.execPath, [join(ROOT, "scripts", "mint-token.mjs"), "--sub", args.sub, "--rooms", args.room], { encoding: "utf8" }).trim();

const client = new SignalingClient({ url: args.url, room: args.room, getToken, WebSocket });
// The agent is always the one called: it answers and never offers (no glare; wrtc's libwebrtc
// loses a data channel when an offer is rolled back). Each connection gets its tracks and the
// `chat` channel before the caller's offer is answered.
const manager = new PeerManager(client, { RTCPeerConnection: wrtc.RTCPeerConnection, initiate: false, prepare });
/** The pattern source, made once and shared by every call. */
let video = null;
/** peerId → the negotiated `chat` channel */
const chats = new Map();

client.addEventListener("open", (e) => {
  client.setMetadata({ name: args.name });
  report("joined", { peerId: e.detail.peerId, room: args.room, peers: e.detail.peers.length });
});
client.addEventListener("resumed", (e) => report("resumed", { peerId: e.detail.peerId }));
client.addEventListener("reconnecting", (e) => report("reconnecting", { code: e.detail.code, attempt: e.detail.attempt }));
client.addEventListener("error", (e) => report("error", { code: e.detail?.code ?? null, message: e.detail?.message ?? String(e.detail) }));
client.addEventListener("closed", (e) => {
  report("closed", { code: e.detail.code });
  if (client.state === "closed") process.exit(1);
});

client.addEventListener("call_incoming", (e) => {
  report("call_incoming", { callId: e.detail.callId, from: e.detail.from });
  client.acceptCall(e.detail.callId);
});
client.addEventListener("call_accepted", (e) => {
  report("call_accepted", { callId: e.detail.callId, participants: e.detail.participants });
  for (const peerId of e.detail.participants) if (peerId !== client.peerId) connect(peerId, e.detail.callId);
});
client.addEventListener("call_left", (e) => hangUpWith(e.detail.peerId, "call_left"));
client.addEventListener("call_ended", (e) => {
  report("call_ended", { callId: e.detail.callId, reason: e.detail.reason });
  for (const peerId of [...chats.keys()]) hangUpWith(peerId, "call_ended");
});
client.addEventListener("peer_left", (e) => hangUpWith(e.detail.peerId, "peer_left"));

manager.addEventListener("signal", (e) => report("signal", e.detail));
manager.addEventListener("connectionstatechange", (e) => report("connection", e.detail));
manager.addEventListener("error", (e) => report("webrtc_error", { peerId: e.detail.peerId, message: String(e.detail.error) }));
// Channels the other side opened in-band are echoed too.
manager.addEventListener("datachannel", (e) => echo(e.detail.peerId, e.detail.channel));

function connect(peerId, callId) {
  manager.connection(peerId, { callId });
}

function prepare(peerId, pc) {
  if (args.video) {
    video ??= patternSource();
    pc.addTrack(video.track, video.stream);
  }
  const chat = pc.createDataChannel("chat", { negotiated: true, id: 0 });
  chats.set(peerId, chat);
  echo(peerId, chat);
}

function echo(peerId, channel) {
  channel.onopen = () => report("channel_open", { peerId, label: channel.label });
  channel.onmessage = (m) => {
    channel.send(m.data);
    report("echo", { peerId, label: channel.label, bytes: typeof m.data === "string" ? m.data.length : m.data.byteLength });
  };
}

function hangUpWith(peerId, why) {
  if (!chats.has(peerId)) return;
  chats.get(peerId).close();
  chats.delete(peerId);
  manager.close(peerId);
  report("hung_up", { peerId, why });
}

/** A moving gradient as I420 frames: 320×240 at 15 fps. */
function patternSource() {
  const width = 320;
  const height = 240;
  const source = new wrtc.nonstandard.RTCVideoSource();
  const data = new Uint8ClampedArray(width * height * 1.5);
  data.fill(128, width * height); // grey chroma
  let frame = 0;
  const timer = setInterval(() => {
    frame += 1;
    for (let y = 0; y < height; y += 1) data.fill((y + frame * 4) & 0xff, y * width, (y + 1) * width);
    source.onFrame({ width, height, data });
  }, 1000 / 15);
  timer.unref();
  const track = source.createTrack();
  return { track, stream: new wrtc.MediaStream([track]) };
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    client.leave();
    for (const peerId of [...chats.keys()]) hangUpWith(peerId, "exit");
    setTimeout(() => process.exit(0), 50).unref();
  });
}

report("starting", { url: args.url, room: args.room, video: args.video });
await client.connect().catch((error) => {
  report("refused", { code: error.code ?? null, message: error.message });
  process.exit(1);
});
