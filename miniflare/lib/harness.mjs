// The one shared Miniflare set-up for the Node integration tests.
//
// `startWorker()` loads the *built* Worker (`build/index.js` + its wasm, made by
// `scripts/build.sh`) into Miniflare's workerd, on a real loopback port so that the `ws` client
// talks to it over real sockets and real WebSocket handshakes (subprotocol negotiation, close
// handshakes, `terminate()`), just as a deployed client would. Each call makes an independent
// instance with its own bindings and in-memory Durable Object storage.
//
// Every wait in here is event driven (a promise settled by a socket or log event, with a timeout
// that only turns a hang into a readable failure). The only timed waits are `expectSilence` and
// `expectNoLog`, which *are* the assertion "nothing else arrives within this window".

import { existsSync, readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { Miniflare } from "miniflare";
import WebSocket from "ws";
import { claimsFor, mint } from "./jwt.mjs";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BUILD_DIR = resolve(process.env.EDGESIGNAL_BUILD_DIR ?? join(REPO_ROOT, "build"));
export const DEFAULT_SECRET = "edgesignal-test-secret-0123456789abcdef";
const DEBUG = !!process.env.EDGESIGNAL_DEBUG;

/** Default time to wait for an expected event before failing with a readable message. */
export const DEFAULT_TIMEOUT_MS = 3000;
/** Default "nothing else arrives" window. Local delivery takes ~1 ms, so this is generous. */
export const DEFAULT_SILENCE_MS = 150;

/** A server-issued peer id: a 26-char ULID in Crockford base32 (no I, L, O, U). */
export const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** A fresh, valid room id (`^[A-Za-z0-9_-]{1,64}$`) so tests never share a room by accident. */
export function uniqueRoom(prefix = "room") {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/**
 * `compatibility_date` / `compatibility_flags` from the repository's wrangler.toml, so the tests
 * run the Worker under the same runtime semantics as `wrangler dev` and deploys.
 */
function wranglerCompat() {
  const path = join(REPO_ROOT, "wrangler.toml");
  const compat = { compatibilityDate: "2026-04-01", compatibilityFlags: [] };
  if (!existsSync(path)) return compat;
  const text = readFileSync(path, "utf8");
  const date = text.match(/^\s*compatibility_date\s*=\s*"([^"]+)"/m);
  if (date) compat.compatibilityDate = date[1];
  const flags = text.match(/^\s*compatibility_flags\s*=\s*\[([^\]]*)\]/m);
  if (flags) compat.compatibilityFlags = [...flags[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  return compat;
}

/** wrangler.toml's `[assets]` as Miniflare options: the directory and the Worker-first routes. */
function wranglerAssets(buildDir) {
  const text = readFileSync(join(REPO_ROOT, "wrangler.toml"), "utf8");
  const section = text.match(/^\[assets\]\n([\s\S]*?)(?=^\[)/m)?.[1] ?? "";
  const first = section.match(/^run_worker_first\s*=\s*\[([^\]]*)\]/m);
  const directory = join(buildDir, "assets");
  if (!existsSync(join(directory, "index.html"))) throw new Error(`${directory} has no console: build with \`bash scripts/build.sh\``);
  return {
    directory,
    routerConfig: {
      has_user_worker: true,
      static_routing: { user_worker: first ? [...first[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]) : [] },
    },
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Runtime log capture

/**
 * The runtime's stdout/stderr, line by line. The Worker prints one JSON object per console.log
 * line; those are parsed into `entry.json`, everything else (workerd warnings, panics) is kept as
 * raw text for failure messages.
 */
export class LogTap {
  constructor() {
    /** @type {{seq:number, stream:"stdout"|"stderr", raw:string, json:object|null}[]} */
    this.entries = [];
    this.listeners = new Set();
  }

  /** Wires Miniflare's `handleRuntimeStdio(stdout, stderr)` to this tap. */
  attach(stdout, stderr) {
    for (const [stream, name] of [[stdout, "stdout"], [stderr, "stderr"]]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on("line", (raw) => this.push(name, raw));
    }
  }

  push(stream, raw) {
    let json = null;
    const trimmed = raw.trim();
    if (trimmed.startsWith("{")) {
      try {
        json = JSON.parse(trimmed);
      } catch {
        json = null;
      }
    }
    const entry = { seq: this.entries.length, stream, raw, json };
    this.entries.push(entry);
    if (DEBUG) process.stderr.write(`[workerd ${stream}] ${raw}\n`);
    for (const listener of [...this.listeners]) listener(entry);
  }

  /** A cursor: pass it as `since` to only consider lines printed after this moment. */
  mark() {
    return this.entries.length;
  }

  /** JSON log objects (from `since` on) that match `predicate`. */
  find(predicate = () => true, { since = 0 } = {}) {
    return this.entries.slice(since).filter((e) => e.json && predicate(e.json)).map((e) => e.json);
  }

  /**
   * Resolves with the first JSON log object (printed at or after `since`) matching `predicate`;
   * already-printed lines count, so there is no race between an action and starting to wait.
   */
  waitForLog(predicate, timeoutMs = DEFAULT_TIMEOUT_MS, { since = 0 } = {}) {
    const found = this.entries.slice(since).find((e) => e.json && predicate(e.json));
    if (found) return Promise.resolve(found.json);
    return new Promise((resolvePromise, reject) => {
      const listener = (entry) => {
        if (entry.seq < since || !entry.json || !predicate(entry.json)) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolvePromise(entry.json);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line; lines since mark:\n${this.dump(since)}`));
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }

  /** Fails if a matching JSON log line exists since `since` or is printed within `ms`. */
  async expectNoLog(predicate, ms = DEFAULT_SILENCE_MS, { since = 0 } = {}) {
    const check = () => {
      const hits = this.find(predicate, { since });
      if (hits.length) throw new Error(`unexpected log line(s): ${hits.map((h) => JSON.stringify(h)).join("\n")}`);
    };
    check();
    await sleep(ms);
    check();
  }

  /** All raw lines (from `since` on), for failure messages. */
  dump(since = 0) {
    return this.entries.slice(since).map((e) => `  [${e.stream}] ${e.raw}`).join("\n") || "  (none)";
  }

  /** All raw text printed so far (both streams), e.g. to assert a secret never appears. */
  text() {
    return this.entries.map((e) => e.raw).join("\n");
  }
}

// ---------------------------------------------------------------------------------------------
// WebSocket client

/** Thrown by `connect` when the server refuses the handshake with a plain HTTP response. */
export class HandshakeRefused extends Error {
  constructor(status, headers, body) {
    super(`handshake refused with HTTP ${status}: ${body}`);
    this.status = status;
    this.headers = headers;
    this.body = body;
    try {
      this.json = JSON.parse(body);
    } catch {
      this.json = undefined;
    }
  }
}

function matcherFor(predicate) {
  if (predicate === undefined || predicate === null) return () => true;
  if (typeof predicate === "string") return (frame) => frame.data?.type === predicate;
  if (typeof predicate === "function") return (frame) => frame.data !== undefined && predicate(frame.data);
  throw new TypeError("predicate must be a frame type string or a function of the parsed frame");
}

function describeFrame(frame) {
  if (frame.binary) return `<binary ${frame.raw.length} bytes>`;
  return frame.raw.length > 300 ? `${frame.raw.slice(0, 300)}…(${frame.raw.length} chars)` : frame.raw;
}

/**
 * A test client around `ws`. Every frame the server sends lands in an inbox; `next()` takes the
 * first matching frame (waiting for it if needed) and leaves the others in order, so a test can
 * later assert with `expectSilence()` that nothing it did not expect arrived.
 */
export class Client {
  constructor(ws, { label = "client", startedAt = performance.now() } = {}) {
    this.ws = ws;
    this.label = label;
    this.startedAt = startedAt;
    /** @type {{raw:string|Buffer, binary:boolean, data:any, at:number}[]} */
    this.inbox = [];
    this.waiters = [];
    this.responseHeaders = {};
    this.closeInfo = null;
    this.closed = new Promise((resolveClosed) => {
      ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString("utf8") };
        for (const waiter of this.waiters.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(
            new Error(`${this.label}: socket closed (${code} ${this.closeInfo.reason}) while waiting for ${waiter.what}; inbox: ${this.describeInbox()}`),
          );
        }
        resolveClosed(this.closeInfo);
      });
    });
    ws.on("upgrade", (res) => {
      this.responseHeaders = res.headers;
    });
    ws.once("open", () => {
      // Diagnostics only (ws internals): when the server's close *frame* arrived, as opposed to
      // `closed`, which settles when the server also closed the TCP connection.
      ws._receiver?.once?.("conclude", (code, reason) => {
        this.closeFrame = { code, reason: Buffer.from(reason ?? "").toString("utf8"), atMs: performance.now() - this.startedAt };
        this.resolveCloseFrame?.(this.closeFrame);
      });
    });
    ws.on("message", (data, isBinary) => this.receive(data, isBinary));
    // Errors surface through `connect` (before open) or `closed` (after); never crash the runner.
    ws.on("error", (err) => {
      this.lastError = err;
    });
  }

  receive(data, isBinary) {
    const frame = { raw: isBinary ? Buffer.from(data) : data.toString("utf8"), binary: isBinary, data: undefined, at: performance.now() };
    if (!isBinary) {
      try {
        frame.data = JSON.parse(frame.raw);
      } catch {
        frame.data = undefined;
      }
    }
    const index = this.waiters.findIndex((w) => w.match(frame));
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      clearTimeout(waiter.timer);
      waiter.resolve(frame);
    } else {
      this.inbox.push(frame);
    }
  }

  describeInbox() {
    return this.inbox.length ? this.inbox.map(describeFrame).join(" | ") : "(empty)";
  }

  /** The `Sec-WebSocket-Protocol` the server chose ("" when none). */
  get protocol() {
    return this.ws.protocol;
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Resolves with the frame record `{raw, binary, data, at}` of the first frame matching
   * `predicate` (a frame `type`, a function of the parsed JSON, or nothing for "any frame",
   * binary and non-JSON included), taking it out of the inbox; non-matching frames stay there
   * in order. Rejects on timeout or when the socket closes first, listing the inbox.
   */
  nextFrame(predicate, timeoutMs = DEFAULT_TIMEOUT_MS) {
    const match = matcherFor(predicate);
    const what = typeof predicate === "string" ? `a "${predicate}" frame` : predicate ? "a matching frame" : "any frame";
    const index = this.inbox.findIndex(match);
    if (index >= 0) return Promise.resolve(this.inbox.splice(index, 1)[0]);
    if (this.closeInfo) {
      return Promise.reject(new Error(`${this.label}: socket already closed (${this.closeInfo.code}) before ${what}; inbox: ${this.describeInbox()}`));
    }
    return new Promise((resolveFrame, reject) => {
      const waiter = { match, resolve: resolveFrame, reject, what };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}; inbox: ${this.describeInbox()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Like `nextFrame`, resolving with the parsed JSON frame. */
  async next(predicate, timeoutMs = DEFAULT_TIMEOUT_MS) {
    return (await this.nextFrame(predicate, timeoutMs)).data;
  }

  /** Collects `count` frames matching `predicate`, in arrival order. */
  async collect(count, predicate, timeoutMs = DEFAULT_TIMEOUT_MS) {
    const frames = [];
    const deadline = performance.now() + timeoutMs;
    while (frames.length < count) {
      const left = Math.max(1, deadline - performance.now());
      try {
        frames.push(await this.next(predicate, left));
      } catch (err) {
        err.message = `${err.message} (after ${frames.length} of ${count} frames)`;
        throw err;
      }
    }
    return frames;
  }

  /**
   * Asserts that the inbox is empty and that no frame arrives within `ms`: the "nothing else
   * arrives" check. A close is not a frame and does not fail it.
   */
  async expectSilence(ms = DEFAULT_SILENCE_MS) {
    if (this.inbox.length) throw new Error(`${this.label}: expected silence, but the inbox holds: ${this.describeInbox()}`);
    await sleep(ms);
    if (this.inbox.length) throw new Error(`${this.label}: expected silence, but received: ${this.describeInbox()}`);
  }

  /**
   * `closed`, but failing after `ms` instead of hanging for ws's 30 s close timeout: a client
   * (a browser too) only reports the close once the server has also closed the connection.
   */
  async closedWithin(ms = DEFAULT_TIMEOUT_MS) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        const frame = this.closeFrame
          ? `the server's close frame (${this.closeFrame.code} ${JSON.stringify(this.closeFrame.reason)}) arrived after ${this.closeFrame.atMs.toFixed(0)} ms, but the server did not close the connection`
          : "no close frame from the server";
        reject(new Error(`${this.label}: not closed within ${ms} ms: ${frame}; inbox: ${this.describeInbox()}`));
      }, ms);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves `{code, reason}` when the server's close frame arrives (or the socket closed),
   * failing after `ms`. Use it for closes the server sends from another event than the socket's
   * own (4409 on resume, an alarm's 4401 or 4408): workerd sends the frame at once but may keep
   * the TCP connection open until the client gives up (../shared/TOOLCHAIN.md).
   */
  closeFrameWithin(ms = DEFAULT_TIMEOUT_MS) {
    const frame = this.closeFrame
      ? Promise.resolve(this.closeFrame)
      : new Promise((resolve) => {
          this.resolveCloseFrame = resolve;
          this.closed.then(resolve);
        });
    return withTimeout(
      frame.then(({ code, reason }) => ({ code, reason })),
      ms,
      `${this.label}'s close frame`,
    );
  }

  /** Sends a text frame: a string verbatim, anything else as JSON; a Buffer as a binary frame. */
  send(frame) {
    if (Buffer.isBuffer(frame) || frame instanceof Uint8Array) this.ws.send(frame, { binary: true });
    else this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Starts a close handshake; resolves with what the server answered `{code, reason}`. */
  close(code = 1000, reason = "") {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    return this.closed;
  }

  /** Drops the TCP connection without a close handshake (an abrupt disconnect). */
  terminate() {
    this.ws.terminate();
    return this.closed;
  }
}

// ---------------------------------------------------------------------------------------------
// The Worker under test

/**
 * @typedef {object} ConnectOptions
 * @property {string|null} [token]  the JWT; default: a valid token for exactly this room; `null`: none
 * @property {"header"|"protocol"|"query"} [placement="header"]
 * @property {string[]} [protocols]  explicit Sec-WebSocket-Protocol list (overrides placement's)
 * @property {Record<string,string>} [headers]
 * @property {string} [query]  extra raw query string (without `?`)
 * @property {string} [path]   raw path instead of `/ws/{room}`
 * @property {string} [label]
 * @property {number} [timeoutMs]
 */

export class Worker {
  constructor({ mf, url, logs, bindings }) {
    this.mf = mf;
    this.url = url;
    this.logs = logs;
    this.bindings = bindings;
    this.secret = bindings.JWT_SECRET;
    this.clients = new Set();
    this.subCounter = 0;
  }

  /** `ws://127.0.0.1:<port>` */
  get wsOrigin() {
    return `ws://${this.url.host}`;
  }

  /**
   * A valid HS256 token for this instance. Options: `sub`, `rooms`, `ttlSeconds`, `now`, `extra`
   * (claims merged last; `undefined` removes one), `alg`, `header`, `secret`.
   */
  token({ secret = this.secret, alg = "HS256", header, ...claimOptions } = {}) {
    return mint({ secret, alg, header, claims: claimsFor(claimOptions) });
  }

  /** See `LogTap.waitForLog`. */
  waitForLog(predicate, timeoutMs, options) {
    return this.logs.waitForLog(predicate, timeoutMs, options);
  }

  /**
   * Opens a WebSocket to `/ws/{room}` and resolves with a `Client` once the handshake completed
   * (101); rejects with `HandshakeRefused` when the server answered plain HTTP.
   * @param {string} room
   * @param {ConnectOptions} [options]
   */
  connect(room, { token, placement = "header", protocols, headers = {}, query, path, label = "client", timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    // A distinct `sub` per connection by default, as real users have: per-identity limits
    // (connect rate, connections per user) then bite only in the tests that share a token.
    if (token === undefined) token = this.token({ rooms: [room], sub: `user-${++this.subCounter}` });
    const params = [];
    const wsHeaders = { ...headers };
    let wsProtocols = protocols ?? [];
    if (token !== null) {
      if (placement === "header") wsHeaders.Authorization = `Bearer ${token}`;
      else if (placement === "protocol") wsProtocols = protocols ?? ["signal.v1", `bearer.${token}`];
      else if (placement === "query") params.push(`token=${encodeURIComponent(token)}`);
      else throw new Error(`unknown token placement ${placement}`);
    } else if (placement === "protocol" && !protocols) {
      wsProtocols = ["signal.v1"];
    }
    if (query) params.push(query);
    const target = `${this.wsOrigin}${path ?? `/ws/${room}`}${params.length ? `?${params.join("&")}` : ""}`;
    const startedAt = performance.now();
    const ws = new WebSocket(target, wsProtocols, { headers: wsHeaders, handshakeTimeout: timeoutMs });
    const client = new Client(ws, { label, startedAt });
    this.clients.add(client);
    client.closed.then(() => this.clients.delete(client));
    const opened = new Promise((resolveOpen, reject) => {
      ws.once("open", () => {
        client.openedAt = performance.now();
        resolveOpen(client);
      });
      ws.once("unexpected-response", (req, res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          this.clients.delete(client);
          // With an `unexpected-response` listener, ws leaves the request to us to abort.
          ws.terminate();
          reject(new HandshakeRefused(res.statusCode, res.headers, Buffer.concat(chunks).toString("utf8")));
        });
        res.on("error", reject);
      });
      ws.once("error", (err) => reject(err));
    });
    return withTimeout(opened, timeoutMs + 500, `${label} handshake on ${target}`);
  }

  /**
   * Connects and waits for the `joined` frame. Resolves `{ client, joined, ms }`, `ms` being the
   * time from starting the handshake to receiving `joined`.
   */
  async join(room, options = {}) {
    const client = await this.connect(room, options);
    // `joined` must be the very first frame, so take whatever comes first and check it.
    const frame = await client.nextFrame(undefined, options.timeoutMs);
    if (frame.data?.type !== "joined") {
      throw new Error(`${client.label}: expected "joined" as the first frame, got ${describeFrame(frame)}`);
    }
    return { client, joined: frame.data, ms: frame.at - client.startedAt };
  }

  /**
   * Two peers in `room`: A joins first, then B; A's `peer_joined` for B is consumed (and checked
   * by the caller if it cares). Resolves `{ a, b, A, B, joinedA, joinedB }` (`A`/`B` = peer ids).
   */
  async pair(room, options = {}) {
    const { client: a, joined: joinedA } = await this.join(room, { label: "A", ...options });
    const { client: b, joined: joinedB } = await this.join(room, { label: "B", ...options });
    await a.next((f) => f.type === "peer_joined" && f.peerId === joinedB.peerId);
    return { a, b, A: joinedA.peerId, B: joinedB.peerId, joinedA, joinedB };
  }

  /**
   * A plain HTTP request (no WebSocket upgrade unless the headers ask for one), over the real
   * port with `node:http` so no header is filtered. Resolves `{status, headers, text, json}`.
   */
  http(path, { method = "GET", headers = {}, body } = {}) {
    return new Promise((resolveRes, reject) => {
      // `agent: false`: a fresh connection per request. With keep-alive, a request can land on a
      // socket that workerd is closing (e.g. after an error response to an unread body) and
      // fail with ECONNRESET, which says nothing about the Worker.
      const req = httpRequest(new URL(path, this.url), { method, headers, agent: false }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolveRes({ status: res.statusCode, headers: res.headers, text, json });
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** Terminates every client still open, then stops workerd. */
  async dispose() {
    for (const client of this.clients) client.ws.terminate();
    await this.mf.dispose();
  }
}

/**
 * Starts the built Worker in Miniflare on a real loopback port.
 * @param {object} [options]
 * @param {Record<string,string|undefined>} [options.bindings]  merged over the defaults
 *   (`JWT_SECRET`, `LOG_SALT`); `undefined` removes one. `MAX_PEERS_PER_ROOM` and
 *   `MAX_FRAME_BYTES` are unset by default so the Worker's own defaults (8, 65536) are tested.
 * @param {object} [options.miniflare]  more Miniflare options (e.g. `serviceBindings`)
 * @param {boolean} [options.assets]  also serve the web console (build/assets) as wrangler.toml's
 *   `[assets]` does: the Worker first for its `run_worker_first` routes, the assets otherwise
 */
export async function startWorker({ bindings = {}, buildDir = BUILD_DIR, miniflare = {}, assets = false } = {}) {
  const BUILD_DIR = buildDir;
  const scriptPath = join(BUILD_DIR, "index.js");
  if (!existsSync(scriptPath)) {
    throw new Error(`${scriptPath} does not exist: build the Worker first with \`bash scripts/build.sh\``);
  }
  const merged = { JWT_SECRET: DEFAULT_SECRET, LOG_SALT: "edgesignal-test-salt", ...bindings };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
  const logs = new LogTap();
  const mf = new Miniflare({
    ...wranglerCompat(),
    modules: true,
    scriptPath,
    modulesRoot: BUILD_DIR,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    durableObjects: { ROOMS: { className: "Room", useSQLite: true } },
    bindings: merged,
    host: "127.0.0.1",
    port: 0,
    handleRuntimeStdio: (stdout, stderr) => logs.attach(stdout, stderr),
    ...(assets ? { assets: wranglerAssets(BUILD_DIR) } : {}),
    ...miniflare,
  });
  const url = await mf.ready;
  return new Worker({ mf, url, logs, bindings: merged });
}

// ---------------------------------------------------------------------------------------------
// Assertion helpers shared by the test files

/**
 * Checks an `error` frame: `{type:"error", code, message: <non-empty string>, correlationId?}`
 * and nothing else; `correlationId` must be present exactly when `expected.correlationId` is.
 */
export function errorShape(frame) {
  if (!frame || frame.type !== "error") return frame;
  const { message, ...rest } = frame;
  return { ...rest, message: typeof message === "string" && message.length > 0 ? "<string>" : message };
}

/** What `joinedShape` puts in place of a well-formed `resumeToken`. */
export const RESUME_TOKEN = "<resumeToken>";

/**
 * A `joined` frame with its opaque `resumeToken` checked (a string `<peerId>.<more>`) and
 * replaced by `RESUME_TOKEN`, and its `iceServers` checked for shape and left out, so the rest
 * can be compared exactly; a missing or malformed token is left as it is (and fails the
 * comparison). Anything but a `joined` frame is returned as is.
 */
export function joinedShape(frame) {
  if (!frame || frame.type !== "joined") return frame;
  const { peerId, resumeToken, iceServers, iceServersExpireAt, ...rest } = frame;
  const wellFormed =
    typeof resumeToken === "string" && typeof peerId === "string" && resumeToken.startsWith(`${peerId}.`) && resumeToken.length > peerId.length + 1;
  const shaped = { ...rest, peerId, resumeToken: wellFormed ? RESUME_TOKEN : resumeToken };
  // `iceServers` (v1.1 §5) are checked by the ICE tests; here only their shape: an array of
  // RTCIceServer. A malformed list is kept, so the comparison fails.
  const iceWellFormed =
    Array.isArray(iceServers) &&
    iceServers.every((s) => Array.isArray(s.urls) && s.urls.every((u) => typeof u === "string")) &&
    (iceServersExpireAt === undefined || Number.isInteger(iceServersExpireAt));
  if (!iceWellFormed) Object.assign(shaped, { iceServers, iceServersExpireAt });
  return shaped;
}

/** The expected `errorShape` for an error with `code` (and optional `correlationId`). */
export function expectedError(code, correlationId) {
  const frame = { type: "error", code, message: "<string>" };
  if (correlationId !== undefined) frame.correlationId = correlationId;
  return frame;
}
