// @edgesignal/client: the signaling half of an edgesignal client, without dependencies.
//
// What it does for you (docs/protocol.md):
// - connects to `/ws/{room}` with a token (or an async `getToken()`), offering `signal.v1` and
//   the token as `bearer.<token>` in the subprotocol list;
// - keeps the connection alive: a `ping` every `heartbeatMs` (a third of the server's
//   HEARTBEAT_TIMEOUT_MS by default), and a reconnect when nothing arrived for `deadAfterMs`;
// - acknowledges frames (`ack`, batched) and drops replayed duplicates by `seq`, so each server
//   frame reaches your handlers exactly once;
// - resumes after an abrupt disconnect (`resume.<resumeToken>` with a fresh token), with
//   jittered exponential backoff, and replays what was missed; frames you send while it is
//   reconnecting are queued and sent once it is back;
// - refreshes the token before it expires (on `warning token_expiring`, with `getToken()`);
// - stops on refusals that a retry cannot fix (4401 unauthorized, 4403 forbidden, 4429 banned,
//   4409 replaced) and reports them.
//
// Every server frame is dispatched as an event of its `type` (`joined`, `peer_joined`, `relay`,
// `call_incoming`, …) whose `detail` is the frame, after a `frame` event for any type (logging);
// plus `open`, `resumed`, `reconnecting`, `closed` and `error`. Works in browsers and Node 20+ (pass `WebSocket` from `ws` in Node).

const FATAL_CLOSES = new Map([
  [4401, "unauthorized"],
  [4403, "forbidden"],
  [4409, "replaced by a resumed session"],
  [4429, "rate limit abuse"],
]);

export class SignalingClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url  the Worker's origin, e.g. `wss://signal.example.com`
   * @param {string} options.room
   * @param {string} [options.token]
   * @param {() => Promise<string>} [options.getToken]  called for every (re)connect and refresh
   * @param {typeof WebSocket} [options.WebSocket]
   * @param {number} [options.heartbeatMs=20000]
   * @param {number} [options.deadAfterMs]  default 3 × heartbeatMs
   * @param {number} [options.ackDelayMs=50]
   * @param {number} [options.backoffMs=250]  first retry; doubles up to `maxBackoffMs`, jittered
   * @param {number} [options.maxBackoffMs=10000]
   * @param {number} [options.maxAttempts=Infinity]
   */
  constructor(options) {
    super();
    if (!options?.url || !options?.room) throw new TypeError("SignalingClient: url and room are required");
    if (!options.token && !options.getToken) throw new TypeError("SignalingClient: token or getToken is required");
    this.options = {
      heartbeatMs: 20_000,
      ackDelayMs: 50,
      backoffMs: 250,
      maxBackoffMs: 10_000,
      maxAttempts: Infinity,
      ...options,
    };
    this.options.deadAfterMs ??= this.options.heartbeatMs * 3;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new TypeError("SignalingClient: no WebSocket; pass one (e.g. from `ws`)");
    this.peerId = null;
    this.resumeToken = null;
    this.iceServers = [];
    this.peers = new Map();
    /** The highest `seq` handled: frames at or below it are replays and dropped. */
    this.seq = 0;
    this.acked = 0;
    this.queue = [];
    this.state = "idle";
    this.attempts = 0;
    this.timers = {};
  }

  /** Connects; resolves with the first `joined` frame. */
  async connect() {
    if (this.state !== "idle" && this.state !== "closed") throw new Error(`already ${this.state}`);
    this.state = "connecting";
    const joined = new Promise((resolve, reject) => {
      const onJoined = (e) => {
        this.removeEventListener("error", onError);
        resolve(e.detail);
      };
      const onError = (e) => {
        this.removeEventListener("joined", onJoined);
        const detail = e.detail;
        if (detail instanceof Error) return reject(detail);
        // A refused upgrade: the server's `error` frame (code and message), then its close.
        const error = new Error(`${detail?.code ?? "error"}: ${detail?.message ?? "connection failed"}`);
        error.code = detail?.code;
        reject(error);
      };
      this.addEventListener("joined", onJoined, { once: true });
      this.addEventListener("error", onError, { once: true });
    });
    await this.#open();
    return joined;
  }

  /** Leaves the room (others get `peer_left`) and closes for good. */
  leave() {
    this.#sendNow({ type: "leave", roomId: this.options.room });
    this.#stop("left");
  }

  /** Closes for good without `leave` (others see `peer_away`, then `peer_left`). */
  close() {
    this.#stop("closed");
    this.ws?.close(1000);
  }

  /** Replaces your metadata (e.g. `{name}`): others get `peer_updated`, you get `joined` again. */
  setMetadata(metadata) {
    this.send({ type: "join", roomId: this.options.room, metadata });
  }

  /** Sends a frame now, or once reconnected. */
  send(frame) {
    // A socket that is closing drops what it is given (browsers and `ws` alike): queue instead.
    if (this.state === "open" && this.ws?.readyState === 1) this.#sendNow(frame);
    else this.queue.push(frame);
  }

  offer(to, sdp, callId) {
    this.send(withCall({ type: "offer", to, sdp }, callId));
  }

  answer(to, sdp, callId) {
    this.send(withCall({ type: "answer", to, sdp }, callId));
  }

  /** `candidate` is an RTCIceCandidateInit (or null for end-of-candidates). */
  candidate(to, candidate, callId) {
    this.send(withCall({ type: "candidate", to, candidate: candidate?.toJSON ? candidate.toJSON() : candidate }, callId));
  }

  /**
   * Calls `peers` (an array of peer ids); resolves with the `call_ringing` frame.
   * @param {string[]} peers
   * @param {{audio?: boolean, video?: boolean}} [media]
   */
  call(peers, media) {
    const ringing = this.#next("call_ringing");
    this.send({ type: "call_initiate", to: peers, ...(media ? { media } : {}) });
    return ringing;
  }

  /** Invites more peers into a call you are in. */
  invite(callId, peers) {
    this.send({ type: "call_initiate", to: peers, callId });
  }

  acceptCall(callId) {
    this.send({ type: "call_answer", callId });
  }

  rejectCall(callId, reason = "declined") {
    this.send({ type: "call_reject", callId, reason });
  }

  hangup(callId) {
    this.send({ type: "call_hangup", callId });
  }

  /** Resolves with the next frame of `type` (and matching `predicate`). */
  #next(type, predicate = () => true) {
    return new Promise((resolve) => {
      const handler = (e) => {
        if (!predicate(e.detail)) return;
        this.removeEventListener(type, handler);
        resolve(e.detail);
      };
      this.addEventListener(type, handler);
    });
  }

  async #token() {
    return this.options.getToken ? await this.options.getToken() : this.options.token;
  }

  async #open() {
    const token = await this.#token();
    if (this.state === "closed" || this.state === "left") return;
    // The token and the resume token ride in the subprotocol list, not the URL (URLs end up in
    // logs and browser history; docs/protocol.md §1).
    const protocols = ["signal.v1", `bearer.${token}`];
    if (this.resumeToken) protocols.push(`resume.${this.resumeToken}`);
    const url = `${this.options.url.replace(/\/$/, "")}/ws/${encodeURIComponent(this.options.room)}`;
    const ws = new this.WebSocket(url, protocols);
    this.ws = ws;
    ws.onopen = () => this.#alive();
    ws.onmessage = (e) => this.#onMessage(ws, typeof e.data === "string" ? e.data : String(e.data));
    ws.onclose = (e) => this.#onClose(ws, e.code, e.reason);
    ws.onerror = () => {};
  }

  #onMessage(ws, text) {
    if (ws !== this.ws) return;
    this.#alive();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    // Dedupe by `seq`: a resume replays every frame after the last `ack`, some of which may have
    // been handled already. `joined` is not replayed and comes before the replay with a higher
    // `seq`, so it never moves the mark.
    if (typeof frame.seq === "number" && frame.type !== "joined") {
      if (frame.seq <= this.seq) return; // a replay we already handled
      this.seq = frame.seq;
      this.#scheduleAck();
    }
    this.#emit("frame", frame);
    switch (frame.type) {
      case "joined": {
        if (this.state === "open" && frame.peerId === this.peerId) {
          // The answer to our own `join` (new metadata) on this socket: the session goes on.
          this.peers = new Map((frame.peers ?? []).map((p) => [p.peerId, p]));
          break;
        }
        const resumed = frame.resumed && this.peerId === frame.peerId;
        this.peerId = frame.peerId;
        this.resumeToken = frame.resumeToken;
        this.iceServers = frame.iceServers ?? [];
        this.peers = new Map((frame.peers ?? []).map((p) => [p.peerId, p]));
        if (!resumed) {
          // A fresh session (first connect, or a resume that was refused): `seq` starts again.
          this.seq = frame.seq ?? 0;
          this.acked = 0;
        }
        this.state = "open";
        this.attempts = 0;
        for (const queued of this.queue.splice(0)) this.#sendNow(queued);
        this.#emit(resumed ? "resumed" : "open", frame);
        break;
      }
      case "peer_joined":
        this.peers.set(frame.peerId, { peerId: frame.peerId, metadata: frame.metadata, status: frame.status, polite: frame.polite });
        break;
      case "peer_updated":
        this.peers.set(frame.peerId, { ...this.peers.get(frame.peerId), metadata: frame.metadata, status: frame.status });
        break;
      case "peer_left":
        this.peers.delete(frame.peerId);
        break;
      case "ice_servers":
        this.iceServers = frame.iceServers;
        break;
      case "warning":
        if (frame.code === "token_expiring" && this.options.getToken) this.#refresh();
        break;
      default:
        break;
    }
    this.#emit(frame.type, frame);
  }

  async #refresh() {
    try {
      this.send({ type: "refresh", token: await this.options.getToken() });
    } catch (err) {
      this.#emit("error", err);
    }
  }

  #onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    clearTimeout(this.timers.dead);
    clearInterval(this.timers.ping);
    this.timers.ping = null;
    if (this.state === "closed" || this.state === "left") {
      this.#emit("closed", { code, reason });
      return;
    }
    const fatal = FATAL_CLOSES.get(code) ?? (code === 1000 && reason === "leave" ? "left" : null);
    if (fatal) {
      this.state = "closed";
      this.#emit("error", { code, reason: fatal, message: `closed ${code} (${fatal})` });
      this.#emit("closed", { code, reason });
      return;
    }
    this.#reconnect(code);
  }

  #reconnect(code) {
    this.state = "reconnecting";
    this.attempts += 1;
    if (this.attempts > this.options.maxAttempts) {
      this.state = "closed";
      this.#emit("error", { code, message: "gave up reconnecting" });
      this.#emit("closed", { code });
      return;
    }
    const base = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (this.attempts - 1));
    const delay = base / 2 + Math.random() * (base / 2); // jitter: many clients do not retry in step
    this.#emit("reconnecting", { code, attempt: this.attempts, delayMs: delay });
    this.timers.retry = setTimeout(() => this.#open().catch((err) => this.#emit("error", err)), delay);
  }

  /** Something arrived: the connection is alive. Pings keep it so, silence ends it. */
  #alive() {
    clearTimeout(this.timers.dead);
    this.timers.dead = setTimeout(() => this.ws?.close(4000, "silent"), this.options.deadAfterMs);
    if (!this.timers.ping) {
      this.timers.ping = setInterval(() => this.state === "open" && this.ws?.send('{"type":"ping"}'), this.options.heartbeatMs);
    }
  }

  #scheduleAck() {
    if (this.timers.ack) return;
    this.timers.ack = setTimeout(() => {
      this.timers.ack = null;
      if (this.state === "open" && this.seq > this.acked) {
        this.acked = this.seq;
        this.#sendNow({ type: "ack", seq: this.seq });
      }
    }, this.options.ackDelayMs);
  }

  #sendNow(frame) {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      this.queue.push(frame);
    }
  }

  #stop(state) {
    this.state = state;
    for (const timer of Object.values(this.timers)) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this.timers = {};
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function withCall(frame, callId) {
  return callId ? { ...frame, callId } : frame;
}

export { PeerManager } from "./peers.js";
