// The thinnest Durable Object relay: the platform limit that the other two servers are measured
// against. No auth, no parsing, no validation: a frame is forwarded to the room's other sockets as
// the exact string it arrived as. It speaks just enough of protocol v1 (`joined` first, with
// `peerId` and `peers`; `peer_joined` to the others) that the same load generator drives it.
//
// Platform choices (the same as edgesignal's, so only the work per frame differs):
// - one Durable Object per room (`idFromName(room)`), sockets accepted with the hibernation API
//   (`ctx.acceptWebSocket`), the peer id as the socket's tag;
// - nothing in memory: the room is whatever `ctx.getWebSockets()` returns.
import { DurableObject } from "cloudflare:workers";

const ROUTE = /^\/ws\/([A-Za-z0-9_-]{1,64})$/;

export default {
  async fetch(request, env) {
    const room = ROUTE.exec(new URL(request.url).pathname)?.[1];
    if (!room) return new Response("not found", { status: 404 });
    return env.ROOMS.get(env.ROOMS.idFromName(room)).fetch(request);
  },
};

export class Room extends DurableObject {
  async fetch(request) {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("upgrade required", { status: 426 });
    }
    const { 0: client, 1: server } = new WebSocketPair();
    const peerId = crypto.randomUUID();
    const others = this.ctx.getWebSockets();
    this.ctx.acceptWebSocket(server, [peerId]);
    const peers = others.map((ws) => ({ peerId: this.ctx.getTags(ws)[0], metadata: {} }));
    server.send(JSON.stringify({ type: "joined", peerId, peers }));
    const note = JSON.stringify({ type: "peer_joined", peerId, metadata: {} });
    for (const ws of others) sendQuietly(ws, note);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(ws, message) {
    // workerd hands the handler the same object that getWebSockets() returns, so identity
    // tells the sender apart without reading its tag.
    for (const other of this.ctx.getWebSockets()) if (other !== ws) sendQuietly(other, message);
  }

  webSocketClose(ws, code) {
    // Reciprocate, so the client's close handshake completes (1005/1006 cannot be sent).
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
    } catch {
      // already closed by the runtime
    }
  }
}

/** A socket may be closing while its close event is still queued: a failed send is harmless. */
function sendQuietly(ws, text) {
  try {
    ws.send(text);
  } catch {
    // its webSocketClose takes care of it
  }
}
