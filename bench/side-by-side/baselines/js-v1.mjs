// Protocol v1 in plain JavaScript, written the straightforward way a competent Workers developer
// would: the yardstick for "what does edgesignal's Rust/wasm cost or save over plain JS?".
//
// - Entry Worker: route, HS256 JWT check with WebCrypto (`sub`, `exp`/`nbf` with 60 s leeway,
//   `rooms` ids and `prefix*` patterns), then forward the upgrade to `idFromName(room)`. Refusals
//   are plain HTTP 401/403 (the benchmark never exercises them).
// - Room Durable Object: hibernation API, the peer id as the socket's tag, the member record as
//   its attachment, nothing kept in memory. Each frame is `JSON.parse`d and validated in the
//   order of docs/protocol.md §4, and a relay is re-serialized with `JSON.stringify`.
// Not here (edgesignal has them; the benchmark does not exercise them): token placements other
// than `Authorization`/`?token=`, `iss`/`aud`, the subprotocol echo, ULID ids (UUIDs here).
//
// With `HEARTBEAT_ALARM=1` (the `js-v1-alarm` server of the side-by-side) it also does the one
// storage write that protocol v1.1 obliges every room to make, whatever it is written in: the
// alarm of its heartbeat sweep (v1.1 §3: a silent socket is closed even while the room
// hibernates, and only an alarm wakes a hibernated object), set when the room gets its first
// member and set again by the alarm while sockets remain, as edgesignal does. The sweep itself
// is left out (it runs 30 s after a room's first connect, outside the connect scenarios). So
// `js-v1-alarm` against `thin` is the floor of a v1.1 connect on this platform.
import { DurableObject } from "cloudflare:workers";

const ROOM_ID = /^[A-Za-z0-9_-]{1,64}$/;
const LEEWAY_S = 60;
const MAX_CORRELATION_ID_BYTES = 128;
const MAX_METADATA_BYTES = 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function httpError(status, code, message) {
  return Response.json({ error: { code, message } }, { status, headers: { "cache-control": "no-store" } });
}

// ---------------------------------------------------------------------------------------------
// HS256 JWT

/** One imported key per isolate: importKey is far dearer than verify. */
let hmac = { secret: null, key: null };
function hmacKey(secret) {
  if (hmac.secret !== secret) {
    const key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    hmac = { secret, key };
  }
  return hmac.key;
}

function base64urlBytes(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** The token's claims if it is a valid HS256 JWT for `secret` at `now` (seconds), else null. */
async function verifyJwt(token, secret, now) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  let header, claims, signature;
  try {
    header = JSON.parse(decoder.decode(base64urlBytes(parts[0])));
    claims = JSON.parse(decoder.decode(base64urlBytes(parts[1])));
    signature = base64urlBytes(parts[2]);
  } catch {
    return null;
  }
  if (header?.alg !== "HS256" || !claims || typeof claims !== "object") return null;
  const signed = encoder.encode(`${parts[0]}.${parts[1]}`);
  if (!(await crypto.subtle.verify("HMAC", await hmacKey(secret), signature, signed))) return null;
  if (typeof claims.sub !== "string" || claims.sub === "") return null;
  if (typeof claims.exp !== "number" || now > claims.exp + LEEWAY_S) return null;
  if (claims.nbf !== undefined && (typeof claims.nbf !== "number" || claims.nbf - LEEWAY_S > now)) return null;
  return claims;
}

function roomsAllow(rooms, room) {
  if (!Array.isArray(rooms)) return false;
  return rooms.some((p) => typeof p === "string" && (p.endsWith("*") ? room.startsWith(p.slice(0, -1)) : p === room));
}

// ---------------------------------------------------------------------------------------------
// Entry Worker

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return Response.json({ status: "ok" });
    const match = /^\/ws\/([^/]*)$/.exec(url.pathname);
    if (!match) return httpError(404, "not_found", "no such route");
    if (request.method !== "GET") return httpError(405, "method_not_allowed", "use GET");
    const room = match[1];
    if (!ROOM_ID.test(room)) return httpError(400, "bad_request", "invalid room id");

    const bearer = /^bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
    const token = bearer ?? url.searchParams.get("token");
    const claims = token ? await verifyJwt(token, env.JWT_SECRET, Math.floor(Date.now() / 1000)) : null;
    if (!claims) return httpError(401, "unauthorized", "missing or invalid token");
    if (!roomsAllow(claims.rooms, room)) return httpError(403, "forbidden", "the token does not cover this room");
    if (!/(^|,)\s*websocket\s*(,|$)/i.test(request.headers.get("upgrade") ?? "")) {
      return httpError(426, "upgrade_required", "send Upgrade: websocket");
    }
    // Only our own headers reach the room: the client's token stays here.
    const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
    return stub.fetch(`${url.origin}/ws/${room}`, { headers: { upgrade: "websocket", "x-user": claims.sub } });
  },
};

// ---------------------------------------------------------------------------------------------
// Room Durable Object

class Refusal extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const byteLength = (s) => encoder.encode(s).length;

/** A string field that may be absent (`undefined`/`null`); anything else is a bad_request. */
function optionalString(frame, name) {
  const v = frame[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new Refusal("bad_request", `field \`${name}\` must be a string`);
  return v;
}

function requiredString(frame, name) {
  const v = optionalString(frame, name);
  if (v === undefined) throw new Refusal("bad_request", `missing field \`${name}\``);
  return v;
}

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.maxPeers = Number(env.MAX_PEERS_PER_ROOM ?? 8);
    this.maxFrameBytes = Number(env.MAX_FRAME_BYTES ?? 65536);
    this.heartbeatAlarm = env.HEARTBEAT_ALARM === "1";
    this.alarmSet = false;
    // Answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('{"type":"ping"}', '{"type":"pong"}'));
  }

  /** Open sockets with their member records (attachments survive hibernation; memory does not). */
  members() {
    return this.ctx
      .getWebSockets()
      .filter((ws) => ws.readyState === WebSocket.OPEN)
      .map((ws) => ({ ws, me: ws.deserializeAttachment() }))
      .filter(({ me }) => me && !me.left);
  }

  broadcast(members, frame) {
    const text = JSON.stringify(frame);
    for (const { ws } of members) ws.send(text);
  }

  async fetch(request) {
    const roomId = new URL(request.url).pathname.slice("/ws/".length);
    const { 0: client, 1: server } = new WebSocketPair();
    const members = this.members();
    if (members.length >= this.maxPeers) {
      server.accept();
      server.send(JSON.stringify({ type: "error", code: "room_full", message: "the room is full" }));
      server.close(1013, "room_full");
      return new Response(null, { status: 101, webSocket: client });
    }
    const peerId = crypto.randomUUID();
    this.ctx.acceptWebSocket(server, [peerId]);
    if (this.heartbeatAlarm && !this.alarmSet) this.setHeartbeatAlarm();
    server.serializeAttachment({ peerId, roomId, user: request.headers.get("x-user"), metadata: {} });
    const peers = members.map(({ me }) => ({ peerId: me.peerId, metadata: me.metadata }));
    server.send(JSON.stringify({ type: "joined", roomId, peerId, peers }));
    this.broadcast(members, { type: "peer_joined", roomId, peerId, metadata: {} });
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Half of v1.1's default HEARTBEAT_TIMEOUT_MS, as edgesignal's sweep; not awaited (nor is its). */
  setHeartbeatAlarm() {
    this.alarmSet = true;
    this.ctx.storage.setAlarm(Date.now() + 30_000, { allowUnconfirmed: true });
  }

  alarm() {
    this.alarmSet = false;
    if (this.ctx.getWebSockets().length > 0) this.setHeartbeatAlarm();
  }

  webSocketMessage(ws, message) {
    const me = ws.deserializeAttachment();
    if (!me || me.left) return; // after `leave`, frames are dropped unanswered
    let correlationId;
    try {
      if (typeof message !== "string") throw new Refusal("bad_request", "binary frames are not accepted");
      // UTF-16 length × 3 bounds the UTF-8 length: encode only when it could be over.
      if (message.length * 3 > this.maxFrameBytes && byteLength(message) > this.maxFrameBytes) {
        throw new Refusal("too_large", `frame over ${this.maxFrameBytes} bytes`);
      }
      let frame;
      try {
        frame = JSON.parse(message);
      } catch {
        throw new Refusal("bad_request", "invalid JSON");
      }
      if (!isObject(frame)) throw new Refusal("bad_request", "a frame must be a JSON object");
      const cid = frame.correlationId;
      if (cid !== undefined && cid !== null) {
        if (typeof cid !== "string" || cid === "" || byteLength(cid) > MAX_CORRELATION_ID_BYTES) {
          throw new Refusal("bad_request", "invalid correlationId");
        }
        correlationId = cid;
      }
      switch (frame.type) {
        case "offer":
        case "answer":
        case "candidate":
          return this.relay(me, frame, correlationId);
        case "join":
          return this.join(ws, me, frame);
        case "leave":
          return this.leave(ws, me, frame);
        case "ping":
          return ws.send('{"type":"pong"}');
        default:
          if (typeof frame.type !== "string") throw new Refusal("bad_request", "missing field `type`");
          throw new Refusal("unknown_type", `unknown frame type \`${frame.type.slice(0, 64)}\``);
      }
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      const error = { type: "error", code: e.code, message: e.message };
      if (correlationId !== undefined) error.correlationId = correlationId;
      ws.send(JSON.stringify(error));
    }
  }

  relay(me, frame, correlationId) {
    const type = frame.type;
    let payload;
    if (type === "candidate") {
      if (frame.candidate === undefined) throw new Refusal("bad_request", "missing field `candidate`");
      if (frame.candidate !== null && !isObject(frame.candidate)) {
        throw new Refusal("bad_request", "field `candidate` must be an RTCIceCandidateInit object or null");
      }
      payload = { candidate: frame.candidate };
    } else {
      payload = { sdp: requiredString(frame, "sdp") };
    }
    const to = requiredString(frame, "to");
    const roomId = optionalString(frame, "roomId");
    const from = optionalString(frame, "from");
    if (from !== undefined && from !== me.peerId) throw new Refusal("forbidden_sender", "`from` is not you");
    if (roomId !== undefined && roomId !== me.roomId) throw new Refusal("room_mismatch", "`roomId` is not this room");
    if (to === me.peerId) throw new Refusal("bad_request", "`to` is yourself");
    const target = this.ctx.getWebSockets(to).find((s) => s.readyState === WebSocket.OPEN);
    if (!target) throw new Refusal("target_not_found", "no such peer in this room");
    const inner = { type, roomId: me.roomId, from: me.peerId, to, ...payload };
    target.send(JSON.stringify({ type: "relay", inner, correlationId: correlationId ?? crypto.randomUUID() }));
  }

  join(ws, me, frame) {
    if (requiredString(frame, "roomId") !== me.roomId) throw new Refusal("room_mismatch", "`roomId` is not this room");
    const peerId = optionalString(frame, "peerId");
    if (peerId !== undefined && peerId !== me.peerId) throw new Refusal("forbidden_sender", "`peerId` is not you");
    const metadata = frame.metadata;
    if (metadata !== undefined && metadata !== null) {
      if (!isObject(metadata)) throw new Refusal("bad_request", "field `metadata` must be a JSON object");
      if (byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES) throw new Refusal("too_large", "metadata over 1024 bytes");
    }
    const others = this.members().filter((m) => m.me.peerId !== me.peerId);
    if (metadata && JSON.stringify(metadata) !== JSON.stringify(me.metadata)) {
      me.metadata = metadata;
      ws.serializeAttachment(me);
      this.broadcast(others, { type: "peer_updated", roomId: me.roomId, peerId: me.peerId, metadata });
    }
    const peers = others.map((m) => ({ peerId: m.me.peerId, metadata: m.me.metadata }));
    ws.send(JSON.stringify({ type: "joined", roomId: me.roomId, peerId: me.peerId, peers }));
  }

  leave(ws, me, frame) {
    if (requiredString(frame, "roomId") !== me.roomId) throw new Refusal("room_mismatch", "`roomId` is not this room");
    this.departed(ws, me, "leave");
    ws.close(1000, "leave");
  }

  departed(ws, me, reason) {
    me.left = true;
    ws.serializeAttachment(me);
    const others = this.members().filter((m) => m.me.peerId !== me.peerId);
    this.broadcast(others, { type: "peer_left", roomId: me.roomId, peerId: me.peerId, reason });
  }

  webSocketClose(ws, code) {
    const me = ws.deserializeAttachment();
    if (me && !me.left) this.departed(ws, me, "disconnect");
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
    } catch {
      // already closed
    }
  }

  webSocketError(ws) {
    this.webSocketClose(ws, 1006);
  }
}
