// Trust (issue 8): tokens from an identity provider (ES256, EdDSA, RS256; pinned keys and a JWKS
// fetched from a real local server), the room policy (a real local backend and a service
// binding), and the origin allow-list, all against the built Worker in workerd.
//
// The JWKS and policy servers are plain node:http servers on loopback, started here; they count
// every request, so "the cache is used" is a number the test reads, not a belief.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { errorShape, expectedError, startWorker, uniqueRoom } from "../lib/harness.mjs";
import { base64url, claimsFor, mint } from "../lib/jwt.mjs";

const CLOSE = { unauthorized: 4401, forbidden: 4403, unavailable: 1013 };
const STATUS = { unauthorized: 401, forbidden: 403, unavailable: 503 };
const SALT = "edgesignal-trust-test-salt";

// ---------------------------------------------------------------------------------------------
// Keys and tokens (node:crypto only)

/** A key pair for `alg` with `kid`: `{ alg, kid, privateKey, jwk }` (`jwk` public, with kid/alg/use). */
function keyPair(alg, kid, { bits = 2048 } = {}) {
  const { privateKey, publicKey } =
    alg === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" })
    : alg === "EdDSA" ? generateKeyPairSync("ed25519")
    : generateKeyPairSync("rsa", { modulusLength: bits });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" };
  return { alg, kid, privateKey, jwk };
}

/** A compact JWS over `claims` signed by `key` (header `{alg, kid}` merged with `header`). */
function signed(key, claims, header = {}) {
  const input = `${base64url({ alg: key.alg, kid: key.kid, typ: "JWT", ...header })}.${base64url(claims)}`;
  const data = Buffer.from(input);
  const signature =
    key.alg === "ES256" ? cryptoSign("sha256", data, { key: key.privateKey, dsaEncoding: "ieee-p1363" })
    : key.alg === "EdDSA" ? cryptoSign(null, data, key.privateKey)
    : cryptoSign("sha256", data, key.privateKey);
  return `${input}.${signature.toString("base64url")}`;
}

let subs = 0;
function claimsInto(room, extra = {}) {
  return claimsFor({ sub: `trust-user-${++subs}`, rooms: [room], ...extra });
}

function jwksOf(...keys) {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

// ---------------------------------------------------------------------------------------------
// Local servers

/** An HTTP server on loopback answering with `handler(req, body)` → `{status, headers, body}`. */
async function localServer(handler) {
  const server = { requests: [], handler };
  server.http = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      server.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const answer = await server.handler(req, body);
      if (answer === null) return; // never answers (a hung backend)
      res.writeHead(answer.status ?? 200, { "content-type": "application/json", ...(answer.headers ?? {}) });
      res.end(answer.body ?? "");
    });
  });
  await new Promise((resolve) => server.http.listen(0, "127.0.0.1", resolve));
  server.url = `http://127.0.0.1:${server.http.address().port}`;
  server.stop = () =>
    new Promise((resolve) => {
      server.http.closeAllConnections?.();
      server.http.close(resolve);
    });
  return server;
}

// ---------------------------------------------------------------------------------------------
// Expectations

const wokenRooms = new Map(); // worker → rooms that must never wake

async function expectRefused(w, room, token, code, options = {}) {
  if (!wokenRooms.has(w)) wokenRooms.set(w, new Set());
  wokenRooms.get(w).add(room);
  const client = await w.connect(room, { token, ...options });
  const frame = await client.next();
  assert.deepEqual(errorShape(frame), expectedError(code), JSON.stringify(frame));
  const closed = await client.closedWithin();
  assert.equal(closed.code, CLOSE[code], JSON.stringify(closed));
  // The same request as plain HTTP: the status of the code.
  const headers = { Authorization: `Bearer ${token}`, ...(options.headers ?? {}) };
  const res = await w.http(`/ws/${room}`, { headers });
  assert.equal(res.status, STATUS[code], res.text);
  assert.equal(res.json?.error?.code, code, res.text);
  return frame;
}

async function expectJoined(w, room, token, options = {}) {
  const { client, joined } = await w.join(room, { token, ...options });
  assert.equal(joined.roomId, room);
  return client;
}

async function expectNoRoomWoke(w) {
  const rooms = wokenRooms.get(w) ?? new Set();
  assert.ok(rooms.size > 0);
  await w.logs.expectNoLog((line) => line.event === "room_wake" && rooms.has(line.room));
}

// ---------------------------------------------------------------------------------------------

describe("pinned public keys (JWT_PUBLIC_KEYS), checked by WebCrypto", () => {
  const es = keyPair("ES256", "es-1");
  const ed = keyPair("EdDSA", "ed-1");
  const rs = keyPair("RS256", "rs-1");
  const stranger = { es: keyPair("ES256", "es-1"), ed: keyPair("EdDSA", "ed-1"), rs: keyPair("RS256", "rs-1") };
  let w;
  before(async () => {
    w = await startWorker({ bindings: { JWT_SECRET: undefined, LOG_SALT: SALT, JWT_PUBLIC_KEYS: jwksOf(es, ed, rs) } });
  });
  after(() => w?.dispose());

  for (const [alg, key, other] of [["ES256", es, stranger.es], ["EdDSA", ed, stranger.ed], ["RS256", rs, stranger.rs]]) {
    test(`${alg}: a token signed by the pinned key joins; the same kid signed by another key is unauthorized`, async () => {
      const room = uniqueRoom(`pin-${alg}`);
      const client = await expectJoined(w, room, signed(key, claimsInto(room)));
      await expectRefused(w, uniqueRoom(`pin-${alg}-bad`), signed(other, claimsInto(room)), "unauthorized");
      await client.close();
    });
  }

  test("a key verifies only its own algorithm: an EdDSA signature under the ES256 key's kid, and HS256 with the public key as secret", async () => {
    const room = uniqueRoom("confusion");
    const edUnderEsKid = signed({ ...ed, kid: "es-1" }, claimsInto(room));
    await expectRefused(w, room, edUnderEsKid, "unauthorized");
    for (const secret of [JSON.stringify(es.jwk), JSON.stringify(rs.jwk), rs.jwk.n]) {
      const hs = mint({ secret, header: { kid: "rs-1" }, claims: claimsInto(room) });
      await expectRefused(w, room, hs, "unauthorized");
    }
  });

  test("refresh in the room checks an ES256 token with WebCrypto too", async () => {
    const room = uniqueRoom("pin-refresh");
    const sub = `refresher-${room}`;
    const client = await expectJoined(w, room, signed(es, claimsFor({ sub, rooms: [room], ttlSeconds: 120 })));
    const exp = Math.floor(Date.now() / 1000) + 3600;
    client.send({ type: "refresh", token: signed(stranger.es, claimsFor({ sub, rooms: [room], extra: { exp } })), correlationId: "bad" });
    assert.deepEqual(errorShape(await client.next("error")), expectedError("unauthorized", "bad"));
    client.send({ type: "refresh", token: signed(ed, claimsFor({ sub, rooms: [room], extra: { exp } })) });
    const refreshed = await client.next("refreshed");
    assert.equal(refreshed.expiresAt, (exp + 60) * 1000);
    await client.close();
  });

  test("HS256 tokens are refused when no JWT_SECRET is set", async () => {
    const room = uniqueRoom("no-secret");
    await expectRefused(w, room, mint({ secret: "edgesignal-test-secret-0123456789abcdef", claims: claimsInto(room) }), "unauthorized");
  });

  test("refused tokens never woke a room", () => expectNoRoomWoke(w));
});

describe("a 1024-bit RSA key in JWT_PUBLIC_KEYS is refused at load", () => {
  test("every upgrade is a 500 naming the setting, and no room wakes", async () => {
    const weak = keyPair("RS256", "weak", { bits: 1024 });
    const w = await startWorker({ bindings: { JWT_PUBLIC_KEYS: jwksOf(weak) } });
    try {
      const room = uniqueRoom("weak");
      const res = await w.http(`/ws/${room}`, { headers: { Authorization: `Bearer ${signed(weak, claimsInto(room))}` } });
      assert.equal(res.status, 500, res.text);
      assert.match(res.json.error.message, /JWT_PUBLIC_KEYS.*2048/);
    } finally {
      await w.dispose();
    }
  });
});

describe("keys from JWKS_URL, fetched from a local provider", () => {
  const k1 = keyPair("ES256", "k1");
  const k2 = keyPair("RS256", "k2");
  const k3 = keyPair("EdDSA", "k3");
  let provider;
  let w;
  before(async () => {
    provider = await localServer(() => ({ headers: { "cache-control": "max-age=600" }, body: provider.jwks }));
    provider.jwks = jwksOf(k1);
    w = await startWorker({ bindings: { JWKS_URL: `${provider.url}/.well-known/jwks.json` } });
  });
  after(async () => {
    await w?.dispose();
    await provider?.stop();
  });

  test("the set is fetched once and then served from the cache; HS256 still works without it", async () => {
    const room = uniqueRoom("jwks");
    const clients = [];
    for (let i = 0; i < 5; i++) clients.push(await expectJoined(w, room, signed(k1, claimsInto(room))));
    assert.equal(provider.requests.length, 1, "one fetch for five upgrades");
    assert.equal(provider.requests[0].url, "/.well-known/jwks.json");
    clients.push(await expectJoined(w, room, w.token({ rooms: [room], sub: "hs-user" })));
    assert.equal(provider.requests.length, 1);
    await Promise.all(clients.map((c) => c.close()));
  });

  test("a key published by a rotation is picked up at once; another unknown kid within 30 s is not refetched", async () => {
    const room = uniqueRoom("rotation");
    await expectJoined(w, room, signed(k1, claimsInto(room))).then((c) => c.close());
    const before = provider.requests.length;
    provider.jwks = jwksOf(k1, k2);
    const client = await expectJoined(w, room, signed(k2, claimsInto(room)));
    assert.equal(provider.requests.length, before + 1, "one refetch for the unknown kid");
    provider.jwks = jwksOf(k1, k2, k3);
    await expectRefused(w, uniqueRoom("rotation-too-soon"), signed(k3, claimsInto(room)), "unauthorized");
    assert.equal(provider.requests.length, before + 1, "no second refetch within 30 s");
    await client.close();
  });

  test("refused tokens never woke a room", () => expectNoRoomWoke(w));
});

describe("a cold isolate and an unknown kid", () => {
  test("one fetch, not a fetch and a refetch: the set just fetched is already the newest", async () => {
    const k1 = keyPair("ES256", "k1");
    const provider = await localServer(() => ({ body: jwksOf(k1) }));
    const w = await startWorker({ bindings: { JWKS_URL: `${provider.url}/jwks` } });
    try {
      const room = uniqueRoom("cold-kid");
      const client = await w.connect(room, { token: signed(keyPair("ES256", "absent"), claimsInto(room)) });
      assert.deepEqual(errorShape(await client.next()), expectedError("unauthorized"));
      assert.equal(provider.requests.length, 1);
      // The next unknown kid may refetch (once per 30 s): the first load did not use that up.
      await expectRefused(w, uniqueRoom("cold-kid-2"), signed(keyPair("ES256", "other"), claimsInto(room)), "unauthorized");
      assert.equal(provider.requests.length, 2);
    } finally {
      await w.dispose();
      await provider.stop();
    }
  });
});

describe("the Cache API carries the set to a new isolate", () => {
  test("a second workerd sharing the cache starts warm: no fetch from the provider", async () => {
    const k1 = keyPair("ES256", "k1");
    const provider = await localServer(() => ({ headers: { "cache-control": "max-age=600" }, body: jwksOf(k1) }));
    const cachePersist = mkdtempSync(join(tmpdir(), "edgesignal-cache-"));
    const start = () => startWorker({ bindings: { JWKS_URL: `${provider.url}/jwks` }, miniflare: { cachePersist } });
    const first = await start();
    try {
      const room = uniqueRoom("warm");
      await expectJoined(first, room, signed(k1, claimsInto(room))).then((c) => c.close());
      assert.equal(provider.requests.length, 1);
    } finally {
      await first.dispose();
    }
    const second = await start();
    try {
      const room = uniqueRoom("warm-2");
      await expectJoined(second, room, signed(k1, claimsInto(room))).then((c) => c.close());
      assert.equal(provider.requests.length, 1, "the new isolate read the set from the Cache API");
    } finally {
      await second.dispose();
      await provider.stop();
      rmSync(cachePersist, { recursive: true, force: true });
    }
  });
});

describe("when the provider is down", () => {
  test("the last good set stays in use, an unknown kid is refused", async () => {
    const k1 = keyPair("ES256", "k1");
    const provider = await localServer(() => ({ body: jwksOf(k1) }));
    const w = await startWorker({ bindings: { JWKS_URL: `${provider.url}/jwks` } });
    try {
      const room = uniqueRoom("down");
      await expectJoined(w, room, signed(k1, claimsInto(room))).then((c) => c.close());
      await provider.stop();
      // The unknown kid triggers a refetch, which fails: refused, and the old set stays.
      await expectRefused(w, uniqueRoom("down-unknown"), signed(keyPair("ES256", "k9"), claimsInto(room)), "unauthorized");
      await w.waitForLog((l) => l.event === "jwks_fetch_failed");
      await expectJoined(w, room, signed(k1, claimsInto(room))).then((c) => c.close());
    } finally {
      await w.dispose();
      await provider.stop().catch(() => {});
    }
  });

  test("with no set ever fetched, a token that needs one is unavailable (1013 / 503); HS256 is unaffected", async () => {
    const closed = await localServer(() => ({ body: "" }));
    await closed.stop(); // a port that was just free: connection refused
    const w = await startWorker({ bindings: { JWKS_URL: `${closed.url}/jwks` } });
    try {
      const room = uniqueRoom("unreachable");
      const frame = await expectRefused(w, room, signed(keyPair("ES256", "k1"), claimsInto(room)), "unavailable");
      assert.match(frame.message, /try again later/);
      await expectJoined(w, uniqueRoom("unreachable-hs"), undefined).then((c) => c.close());
      await expectNoRoomWoke(w);
    } finally {
      await w.dispose();
    }
  });

  test("a provider answering 500 or HTML is a failed fetch, not a key set", async () => {
    const provider = await localServer((req) => (req.url === "/500" ? { status: 500, body: "{}" } : { body: "<html>not json</html>" }));
    const w500 = await startWorker({ bindings: { JWKS_URL: `${provider.url}/500` } });
    const wHtml = await startWorker({ bindings: { JWKS_URL: `${provider.url}/html` } });
    try {
      for (const w of [w500, wHtml]) {
        const room = uniqueRoom("bad-provider");
        await expectRefused(w, room, signed(keyPair("ES256", "k1"), claimsInto(room)), "unavailable");
      }
    } finally {
      await Promise.all([w500.dispose(), wHtml.dispose()]);
      await provider.stop();
    }
  });
});

describe("room policy (POLICY_URL) on a local backend", () => {
  let backend;
  let w;
  const decisions = new Map(); // sub → answer
  before(async () => {
    backend = await localServer(async (req, body) => {
      if (req.headers.authorization !== "Bearer policy-secret") return { status: 401, body: "{}" };
      const { sub, room } = JSON.parse(body);
      const answer = decisions.get(sub) ?? { allow: false };
      if (answer === "slow") return new Promise((resolve) => setTimeout(() => resolve({ body: JSON.stringify({ allow: true }) }), 3000));
      if (answer === "broken") return { status: 500, body: "oops" };
      return { body: JSON.stringify({ ...answer, room }) };
    });
    w = await startWorker({ bindings: { POLICY_URL: `${backend.url}/may-enter`, POLICY_TOKEN: "policy-secret" } });
  });
  after(async () => {
    await w?.dispose();
    await backend?.stop();
  });
  const noRooms = (sub) => w.token({ sub, rooms: undefined });

  test("allow admits a token without rooms; the decision is cached for its ttlS", async () => {
    decisions.set("allowed-1", { allow: true, ttlS: 60 });
    const room = uniqueRoom("policy");
    const a = await expectJoined(w, room, noRooms("allowed-1"));
    const b = await expectJoined(w, room, noRooms("allowed-1"));
    const asked = backend.requests.filter((r) => JSON.parse(r.body).sub === "allowed-1");
    assert.equal(asked.length, 1, "the second upgrade used the cached decision");
    assert.deepEqual(JSON.parse(asked[0].body), { sub: "allowed-1", room });
    assert.equal(asked[0].method, "POST");
    await Promise.all([a.close(), b.close()]);
  });

  test("deny is forbidden (4403 / 403), and cached too", async () => {
    decisions.set("denied-1", { allow: false, ttlS: 60 });
    const room = uniqueRoom("policy-deny");
    await expectRefused(w, room, noRooms("denied-1"), "forbidden");
    const asked = backend.requests.filter((r) => JSON.parse(r.body).sub === "denied-1");
    assert.equal(asked.length, 1, "the HTTP retry of expectRefused used the cache");
  });

  test("ttlS 0 is not cached", async () => {
    decisions.set("uncached", { allow: true, ttlS: 0 });
    const room = uniqueRoom("policy-ttl0");
    await expectJoined(w, room, noRooms("uncached")).then((c) => c.close());
    await expectJoined(w, room, noRooms("uncached")).then((c) => c.close());
    assert.equal(backend.requests.filter((r) => JSON.parse(r.body).sub === "uncached").length, 2);
  });

  test("a token with a rooms claim is decided by the claim; the backend is not asked", async () => {
    const before = backend.requests.length;
    const room = uniqueRoom("policy-claim");
    await expectJoined(w, room, w.token({ sub: "claimed", rooms: [room] })).then((c) => c.close());
    assert.equal(backend.requests.length, before);
  });

  test("slow (over 2 s), failing or unauthenticated backends fail closed: unavailable", async () => {
    decisions.set("slow-1", "slow");
    decisions.set("broken-1", "broken");
    for (const sub of ["slow-1", "broken-1"]) {
      await expectRefused(w, uniqueRoom("policy-fail"), noRooms(sub), "unavailable");
    }
  });

  test("refused upgrades never woke a room", () => expectNoRoomWoke(w));
});

describe("a room policy that is down", () => {
  test("connection refused is unavailable (1013 / 503), never an admission", async () => {
    const gone = await localServer(() => ({ body: "" }));
    await gone.stop();
    const w = await startWorker({ bindings: { POLICY_URL: `${gone.url}/may-enter` } });
    try {
      await expectRefused(w, uniqueRoom("policy-down"), w.token({ sub: "anyone", rooms: undefined }), "unavailable");
      await expectNoRoomWoke(w);
    } finally {
      await w.dispose();
    }
  });
});

describe("room policy as a service binding (POLICY), ROOM_POLICY=always", () => {
  test("the binding decides every token; a rooms claim can still only narrow", async () => {
    const asked = [];
    const w = await startWorker({
      bindings: { ROOM_POLICY: "always" },
      miniflare: {
        serviceBindings: {
          POLICY: async (request) => {
            const { sub, room } = await request.json();
            asked.push({ sub, room, auth: request.headers.get("authorization") });
            return new Response(JSON.stringify({ allow: sub.startsWith("ok-"), ttlS: 0 }), { headers: { "content-type": "application/json" } });
          },
        },
      },
    });
    try {
      const room = uniqueRoom("binding");
      await expectJoined(w, room, w.token({ sub: "ok-1", rooms: [room] })).then((c) => c.close());
      await expectRefused(w, room, w.token({ sub: "no-1", rooms: [room] }), "forbidden");
      await expectRefused(w, room, w.token({ sub: "ok-2", rooms: ["elsewhere"] }), "forbidden");
      assert.deepEqual(asked.map((a) => a.sub), ["ok-1", "no-1", "no-1"], "the claim refusal never asked");
      assert.equal(asked[0].auth, null, "no POLICY_TOKEN configured, none sent");
    } finally {
      await w.dispose();
    }
  });
});

describe("origin allow-list (ALLOWED_ORIGINS)", () => {
  let w;
  before(async () => {
    w = await startWorker({ bindings: { ALLOWED_ORIGINS: "https://app.example.com, https://*.example.org" } });
  });
  after(() => w?.dispose());

  test("a browser upgrade from another origin is forbidden (4403) before its token is looked at", async () => {
    const room = uniqueRoom("origin");
    for (const origin of ["https://evil.example", "https://app.example.com.evil.example", "http://app.example.com", "https://example.org", "null"]) {
      const frame = await expectRefused(w, room, w.token({ rooms: [room] }), "forbidden", { headers: { Origin: origin } });
      assert.match(frame.message, /origin/);
    }
    // Even without a valid token: the origin is checked first.
    await expectRefused(w, room, "not-a-token", "forbidden", { headers: { Origin: "https://evil.example" } });
  });

  test("listed origins, subdomains of a pattern, and clients without Origin connect", async () => {
    const room = uniqueRoom("origin-ok");
    const clients = [];
    for (const headers of [{ Origin: "https://app.example.com" }, { Origin: "https://a.b.example.org" }, {}]) {
      clients.push(await expectJoined(w, room, undefined, { headers }));
    }
    await Promise.all(clients.map((c) => c.close()));
  });

  test("refused origins never woke a room", () => expectNoRoomWoke(w));
});

describe("a misconfiguration is a clear 500, never an open door", () => {
  test("no keys at all, a bad ALLOWED_ORIGINS entry, http:// JWKS_URL to a public host", async () => {
    for (const [bindings, pattern] of [
      [{ JWT_SECRET: undefined }, /JWT_SECRET, JWT_PUBLIC_KEYS or JWKS_URL/],
      [{ ALLOWED_ORIGINS: "app.example.com" }, /ALLOWED_ORIGINS/],
      [{ JWKS_URL: "http://idp.example/jwks" }, /JWKS_URL/],
      [{ ROOM_POLICY: "always" }, /ROOM_POLICY/],
    ]) {
      const w = await startWorker({ bindings });
      try {
        const room = uniqueRoom("misconfigured");
        const token = mint({ secret: "edgesignal-test-secret-0123456789abcdef", claims: claimsInto(room) });
        const res = await w.http(`/ws/${room}`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(res.status, 500, res.text);
        assert.match(res.json.error.message, pattern);
      } finally {
        await w.dispose();
      }
    }
  });
});
