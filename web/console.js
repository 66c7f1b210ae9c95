// The edgesignal web console: a room, its peers, calls with video and a data channel, built on
// @edgesignal/client. Served by the Worker itself (wrangler.toml `[assets]`); scripts/build.sh
// bundles this file with the SDK into build/assets/console.js.
//
// Open it with `#room=…&token=…[&name=…]` (scripts/dev.sh prints such a link): the fragment never
// reaches the server, the console connects at once and then clears it from the address bar.
//
// Every call participant gets one RTCPeerConnection from the SDK's PeerManager, the local
// camera's tracks, and a data channel `chat` negotiated out of band with id 0, which the headless
// agent (agent/) opens the same way. Of each pair of participants the earlier in the call's
// `participants` offers (docs/protocol.md §6f); the other adds its tracks when that offer arrives
// (the manager's `prepare`), so the first negotiation has no glare. Perfect negotiation with the
// server's roles covers any later renegotiation.

import { PeerManager, SignalingClient } from "../sdk/src/index.js";

const $ = (id) => document.getElementById(id);
const MAX_LOG = 400;
/** Characters of a log row's body shown in the row (the tooltip has the whole body). */
const MAX_LOG_TEXT = 300;

/** What the console measured, for people (the page) and for the browser tests. */
const metrics = {
  /** `connect()` called → `joined`, ms. */
  connectMs: null,
  /** peerId → {offerSentAt, offerAnswerMs[], lastExchange: {offerSentAt, answerReceivedAt},
   * startedAt, connectedMs, firstVideoMs, candidatesSent, candidatesReceived, state, rtt, path,
   * bytesSent, bytesReceived} (times: this page's `performance.now()`) */
  peers: new Map(),
  /** Messages received on data channels: {from, text}. */
  messages: [],
};

let client = null;
let manager = null;
/** The call we are in or about to be in: {callId, state: "ringing"|"incoming"|"active", from?, media?}. */
let call = null;
/** The camera (and microphone), while in a call; null for a data-only call. */
let local = null;
/** peerId → RTCDataChannel */
const channels = new Map();
let statsTimer = null;

// ------------------------------------------------------------------------------------------------
// Connecting

function wsBase() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

async function connect({ room, token, name }) {
  hideError();
  setStatus("connecting", `Connecting to ${room}…`);
  $("connect-btn").disabled = true;
  client = new SignalingClient({ url: wsBase(), room, token });
  manager = new PeerManager(client, { prepare: attachMedia });
  wireClient(client, manager);
  const started = performance.now();
  try {
    const joined = await client.connect();
    metrics.connectMs = performance.now() - started;
    $("connect-ms").textContent = `${metrics.connectMs.toFixed(0)} ms`;
    $("me").textContent = `${name || "you"} · ${short(joined.peerId)}`;
    $("me").title = joined.peerId;
    if (name) client.setMetadata({ name });
    $("leave-btn").disabled = false;
    logLine("info", "connected", `as ${joined.peerId} in ${room} after ${metrics.connectMs.toFixed(1)} ms`);
  } catch (error) {
    showError(readable(error, room));
    setStatus("error", "Not connected");
    logLine("error", "refused", readable(error, room));
    client.close();
    client = null;
    manager = null;
    $("connect-btn").disabled = false;
  }
}

/** A refusal, said so that a person knows what to do next. */
function readable(error, room) {
  const code = error?.code;
  const said = String(error?.message ?? error).replace(/^[a-z_]+: /, "");
  switch (code) {
    case "unauthorized":
      return `The server refused the token (unauthorized): ${said}. Mint a fresh one with "node scripts/mint-token.mjs --rooms ${room}".`;
    case "forbidden":
      return `This token may not enter room "${room}" (forbidden): ${said}.`;
    case "room_full":
      return `Room "${room}" is full: ${said}.`;
    case "rate_limited":
    case "connection_limit":
      return `Too many connections for this identity (${code}): ${said}.`;
    case "unavailable":
      return `The server cannot check tokens right now (unavailable): ${said}. Try again shortly.`;
    default:
      return `Could not connect: ${said}`;
  }
}

function leave() {
  endCall("you left");
  client?.leave();
  client = null;
  manager = null;
  renderPeers();
  setStatus("idle", "Not connected");
  $("me").textContent = "–";
  $("leave-btn").disabled = true;
  $("connect-btn").disabled = false;
}

function wireClient(c, m) {
  c.addEventListener("frame", (e) => logFrame("in", e.detail));
  c.addEventListener("open", () => setStatus("open", `Connected · ${c.peers.size + 1} in room`));
  c.addEventListener("resumed", () => {
    setStatus("open", `Connected · ${c.peers.size + 1} in room`);
    logLine("info", "resumed", "the signaling connection is back; missed frames were replayed");
  });
  c.addEventListener("reconnecting", (e) => {
    setStatus("reconnecting", `Reconnecting (attempt ${e.detail.attempt})…`);
    logLine("warn", "reconnecting", `socket closed (${e.detail.code}); retrying in ${Math.round(e.detail.delayMs)} ms`);
  });
  c.addEventListener("error", (e) => {
    if (e.detail?.type === "error") return; // an error frame: already in the log as a frame
    if (c.state === "closed" && client === c) {
      showError(`Disconnected: ${e.detail?.message ?? e.detail}`);
      setStatus("error", "Disconnected");
    }
  });
  for (const type of ["joined", "peer_joined", "peer_updated", "peer_left", "peer_away", "peer_back"]) {
    c.addEventListener(type, renderPeers);
  }
  c.addEventListener("joined", () => setStatus("open", `Connected · ${c.peers.size + 1} in room`));
  c.addEventListener("peer_joined", () => setStatus("open", `Connected · ${c.peers.size + 1} in room`));
  c.addEventListener("peer_left", (e) => {
    setStatus("open", `Connected · ${c.peers.size + 1} in room`);
    dropPeer(e.detail.peerId);
  });
  c.addEventListener("call_ringing", (e) => {
    if (call?.state === "active") return; // more invitees for the running call
    call = { callId: e.detail.callId, state: "ringing" };
    renderCall();
  });
  c.addEventListener("call_incoming", (e) => {
    const { callId, from, media } = e.detail;
    call = { callId, state: "incoming", from, media };
    $("incoming-text").textContent = `${nameOf(from)} is calling${media?.video ? " (video)" : ""}`;
    $("incoming").hidden = false;
    $("answer-btn").focus();
    renderCall();
  });
  c.addEventListener("call_accepted", (e) => {
    const { callId, participants } = e.detail;
    if (!call || call.callId !== callId) return;
    call.state = "active";
    call.participants = participants;
    $("incoming").hidden = true;
    const mine = participants.indexOf(c.peerId);
    for (const [i, peerId] of participants.entries()) {
      if (i === mine || channels.has(peerId)) continue;
      timing(peerId).startedAt = performance.now();
      // We offer to those after us; those before us offer to us (attachMedia runs on their offer).
      if (i > mine) manager.connection(peerId, { callId });
    }
    renderCall();
  });
  c.addEventListener("call_rejected", (e) => logLine("warn", "call", `${nameOf(e.detail.peerId)} will not come: ${e.detail.reason}`));
  c.addEventListener("call_left", (e) => dropPeer(e.detail.peerId));
  c.addEventListener("call_ended", (e) => {
    if (call?.callId === e.detail.callId) endCall(e.detail.reason);
  });
  m.addEventListener("signal", (e) => onSignal(e.detail));
  m.addEventListener("track", (e) => onTrack(e.detail));
  m.addEventListener("connectionstatechange", (e) => {
    const t = timing(e.detail.peerId);
    t.state = e.detail.state;
    if (e.detail.state === "connected" && t.connectedMs == null) t.connectedMs = performance.now() - t.startedAt;
    renderStats();
  });
  m.addEventListener("error", (e) => logLine("error", "webrtc", `${nameOf(e.detail.peerId)}: ${e.detail.error}`));
}

// ------------------------------------------------------------------------------------------------
// Calls

async function getMedia() {
  for (const constraints of [{ audio: true, video: { width: 640, height: 480 } }, { video: { width: 640, height: 480 } }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch {
      // try the next, then data only
    }
  }
  logLine("warn", "media", "no camera or microphone: the call carries the data channel only");
  return null;
}

async function startCall(peerId) {
  if (!client || call) return;
  call = { callId: null, state: "ringing" };
  renderCall();
  local ??= await getMedia();
  showLocal();
  const ringing = await client.call([peerId], { audio: !!local?.getAudioTracks().length, video: !!local?.getVideoTracks().length });
  call.callId = ringing.callId;
  logLine("info", "call", `ringing ${ringing.to.map(nameOf).join(", ")}`);
}

async function answer() {
  if (call?.state !== "incoming") return;
  $("incoming").hidden = true;
  local ??= await getMedia();
  showLocal();
  client.acceptCall(call.callId);
}

function decline() {
  if (call?.state !== "incoming") return;
  client.rejectCall(call.callId, "declined");
  call = null;
  $("incoming").hidden = true;
  renderCall();
}

function hangup() {
  if (!call) return;
  if (call.callId) client?.hangup(call.callId);
  endCall("hangup");
}

/** A new connection (ours, or made for a participant's offer): our tracks and the chat channel. */
function attachMedia(peerId, pc) {
  if (call?.state !== "active" || !call.participants.includes(peerId) || channels.has(peerId)) return;
  if (local) for (const track of local.getTracks()) pc.addTrack(track, local);
  const channel = pc.createDataChannel("chat", { negotiated: true, id: 0 });
  channels.set(peerId, channel);
  channel.onopen = () => {
    logLine("info", "data", `channel to ${nameOf(peerId)} open`);
    renderCall();
  };
  channel.onmessage = (m) => {
    const text = typeof m.data === "string" ? m.data : `(${m.data.byteLength ?? m.data.size} bytes)`;
    metrics.messages.push({ from: peerId, text });
    chatLine(nameOf(peerId), text);
  };
  channel.onclose = () => renderCall();
  startStats();
  renderStats();
}

function dropPeer(peerId) {
  const channel = channels.get(peerId);
  if (channel) {
    channel.close();
    channels.delete(peerId);
  }
  manager?.close(peerId);
  $(`tile-${peerId}`)?.remove();
  const t = metrics.peers.get(peerId);
  if (t) t.state = "closed";
  renderStats();
  renderCall();
}

function endCall(reason) {
  if (!call && !local) return;
  if (call) logLine("info", "call", `ended: ${reason}`);
  for (const peerId of [...channels.keys()]) dropPeer(peerId);
  for (const track of local?.getTracks() ?? []) track.stop();
  local = null;
  $("tile-local").hidden = true;
  $("local-video").srcObject = null;
  $("incoming").hidden = true;
  call = null;
  clearInterval(statsTimer);
  statsTimer = null;
  renderCall();
}

function showLocal() {
  if (!local?.getVideoTracks().length) return;
  $("local-video").srcObject = local;
  $("tile-local").hidden = false;
}

function onTrack({ peerId, track, streams }) {
  if (track.kind !== "video") return;
  let tile = $(`tile-${peerId}`);
  if (!tile) {
    tile = document.createElement("figure");
    tile.className = "tile";
    tile.id = `tile-${peerId}`;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement("figcaption");
    caption.textContent = nameOf(peerId);
    tile.append(video, caption);
    $("tiles").append(tile);
  }
  const video = tile.querySelector("video");
  video.srcObject = streams[0] ?? new MediaStream([track]);
  const t = timing(peerId);
  const first = () => {
    if (t.firstVideoMs == null) t.firstVideoMs = performance.now() - t.startedAt;
    renderStats();
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(first);
  else video.addEventListener("resize", first, { once: true });
  video.play().catch(() => {});
}

function onSignal({ peerId, direction, type }) {
  const t = timing(peerId);
  if (direction === "out" && type === "offer") t.offerSentAt = performance.now();
  if (direction === "in" && type === "answer" && t.offerSentAt != null) {
    const now = performance.now();
    t.offerAnswerMs.push(now - t.offerSentAt);
    t.lastExchange = { offerSentAt: t.offerSentAt, answerReceivedAt: now };
    t.offerSentAt = null;
  }
  if (type === "candidate") t[direction === "out" ? "candidatesSent" : "candidatesReceived"] += 1;
  if (type !== "candidate") logLine("info", `${type} ${direction === "out" ? "→" : "←"}`, nameOf(peerId));
  renderStats();
}

function sendChat(text) {
  let sent = 0;
  for (const channel of channels.values()) {
    if (channel.readyState === "open") {
      channel.send(text);
      sent += 1;
    }
  }
  if (sent) chatLine("You", text);
  return sent;
}

// ------------------------------------------------------------------------------------------------
// Stats (getStats: the selected candidate pair's RTT, path and bytes)

function startStats() {
  statsTimer ??= setInterval(collectStats, 1000);
}

async function collectStats() {
  for (const [peerId, peer] of manager?.peers ?? []) {
    const report = await peer.pc.getStats().catch(() => null);
    if (!report) continue;
    let pair = null;
    for (const s of report.values()) {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    }
    if (!pair) for (const s of report.values()) if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    if (!pair) continue;
    const t = timing(peerId);
    const localCandidate = report.get(pair.localCandidateId);
    const remoteCandidate = report.get(pair.remoteCandidateId);
    t.rtt = pair.currentRoundTripTime;
    t.path = `${localCandidate?.candidateType ?? "?"} ↔ ${remoteCandidate?.candidateType ?? "?"} (${localCandidate?.protocol ?? "?"})`;
    t.bytesSent = pair.bytesSent;
    t.bytesReceived = pair.bytesReceived;
  }
  renderStats();
}

// ------------------------------------------------------------------------------------------------
// Rendering

function timing(peerId) {
  let t = metrics.peers.get(peerId);
  if (!t) {
    t = { startedAt: performance.now(), offerSentAt: null, offerAnswerMs: [], lastExchange: null, connectedMs: null, firstVideoMs: null, candidatesSent: 0, candidatesReceived: 0, state: "new", rtt: null, path: null, bytesSent: 0, bytesReceived: 0 };
    metrics.peers.set(peerId, t);
  }
  return t;
}

function short(peerId) {
  return peerId ? `…${peerId.slice(-6)}` : "";
}

function nameOf(peerId) {
  const name = client?.peers.get(peerId)?.metadata?.name;
  return typeof name === "string" && name ? name : `peer ${short(peerId)}`;
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

const STATUS_TEXT = { available: "available", in_call: "in a call", away: "away" };

function renderPeers() {
  const list = $("peers");
  list.replaceChildren();
  const peers = client ? [...client.peers.values()] : [];
  $("peer-count").textContent = String(peers.length);
  $("no-peers").hidden = peers.length > 0 || !client;
  $("not-connected").hidden = !!client;
  for (const peer of peers) {
    const li = document.createElement("li");
    li.dataset.peerId = peer.peerId;
    const who = document.createElement("span");
    who.className = "who";
    const strong = document.createElement("strong");
    strong.textContent = nameOf(peer.peerId);
    const code = document.createElement("code");
    code.textContent = peer.peerId;
    who.append(strong, code);
    const status = document.createElement("span");
    status.className = "status";
    status.dataset.status = peer.status;
    status.textContent = STATUS_TEXT[peer.status] ?? peer.status;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Call";
    button.setAttribute("aria-label", `Call ${nameOf(peer.peerId)}`);
    button.disabled = !!call || peer.status !== "available";
    button.addEventListener("click", () => startCall(peer.peerId));
    li.append(who, status, button);
    list.append(li);
  }
}

function renderCall() {
  const state = call?.state ?? "idle";
  $("call-state").textContent = state === "active" ? `in a call with ${channels.size}` : state;
  $("call-state").dataset.state = state;
  $("hangup-btn").disabled = !call || state === "incoming";
  $("call-hint").hidden = !!call;
  const open = [...channels.values()].some((c) => c.readyState === "open");
  $("chat-input").disabled = !open;
  $("chat-send").disabled = !open;
  renderPeers();
}

function ms(value) {
  return value == null ? "–" : `${value.toFixed(0)} ms`;
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

function renderStats() {
  const body = $("stats").tBodies[0];
  body.replaceChildren();
  $("no-stats").hidden = metrics.peers.size > 0;
  $("stats").hidden = metrics.peers.size === 0;
  for (const [peerId, t] of metrics.peers) {
    const row = body.insertRow();
    row.dataset.peerId = peerId;
    const cells = [
      nameOf(peerId),
      t.state,
      t.offerAnswerMs.length ? ms(t.offerAnswerMs[t.offerAnswerMs.length - 1]) : "–",
      ms(t.connectedMs),
      ms(t.firstVideoMs),
      t.rtt == null ? "–" : `${(t.rtt * 1000).toFixed(1)} ms`,
      t.path ?? "–",
      `${bytes(t.bytesSent)} / ${bytes(t.bytesReceived)}`,
    ];
    for (const [i, text] of cells.entries()) {
      const cell = row.insertCell();
      cell.textContent = text;
      if (i >= 2 && i !== 6) cell.className = "num";
    }
  }
}

function clock() {
  return new Date().toISOString().slice(11, 23);
}

/** Rows not yet in the log: they go in once per animation frame, so that logging a frame costs
 * the socket's message handler (and the signaling behind it) no layout. */
const pendingLog = [];

function appendLog(li) {
  pendingLog.push(li);
  if (pendingLog.length > MAX_LOG) pendingLog.shift();
  if (pendingLog.length === 1) requestAnimationFrame(flushLog);
}

function flushLog() {
  const log = $("log");
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(...pendingLog.splice(0));
  while (log.children.length > MAX_LOG) log.firstElementChild.remove();
  if (stick) log.scrollTop = log.scrollHeight;
}

function logRow(level, dir, kind, body) {
  const li = document.createElement("li");
  li.dataset.level = level;
  for (const [cls, text] of [["t", clock()], ["dir", dir], ["kind", kind], ["body", body]]) {
    const span = document.createElement("span");
    span.className = cls;
    // A whole SDP is kilobytes on one line: the row shows its start, the tooltip all of it.
    span.textContent = text.length > MAX_LOG_TEXT ? `${text.slice(0, MAX_LOG_TEXT)}…` : text;
    if (cls === "dir") span.dataset.dir = dir === "←" ? "in" : dir === "→" ? "out" : "";
    li.append(span);
  }
  li.title = body;
  appendLog(li);
}

function logFrame(direction, frame) {
  if (frame.type === "pong") return;
  const { type, ...rest } = frame;
  const level = type === "error" ? "error" : type === "warning" ? "warn" : "info";
  logRow(level, direction === "in" ? "←" : "→", type, JSON.stringify(rest));
}

function logLine(level, kind, text) {
  logRow(level, "·", kind, text);
}

function chatLine(from, text) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = from;
  li.append(who, document.createTextNode(text));
  $("chat").append(li);
  $("chat").scrollTop = $("chat").scrollHeight;
}

// ------------------------------------------------------------------------------------------------
// Start

function start() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  for (const field of ["room", "token", "name"]) {
    if (fragment.get(field)) $(field).value = fragment.get(field);
  }
  // The token stays in the form, not in the address bar (screen shares, bookmarks, history).
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  $("connect-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!e.target.reportValidity()) return;
    connect({ room: $("room").value.trim(), token: $("token").value.trim(), name: $("name").value.trim() });
  });
  $("leave-btn").addEventListener("click", leave);
  $("answer-btn").addEventListener("click", answer);
  $("decline-btn").addEventListener("click", decline);
  $("hangup-btn").addEventListener("click", hangup);
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (sendChat($("chat-input").value)) $("chat-input").value = "";
  });
  renderCall();
  if (fragment.get("token")) $("connect-form").requestSubmit();
}

// For the browser tests and for poking at from the devtools console.
window.edgesignalConsole = {
  metrics,
  get client() {
    return client;
  },
  get manager() {
    return manager;
  },
  get call() {
    return call;
  },
};

start();
