// Scenario 4: authentication and room authorization at the edge.
//
// A refused *upgrade* is answered 101 by the Worker itself with exactly one error frame and a
// 4401/4403 close (browsers cannot read an HTTP body on a failed handshake); the same request
// without `Upgrade: websocket` gets a plain HTTP 401/403 JSON error. A refused upgrade never
// reaches the room's Durable Object, and no token or `sub` ever appears in the logs.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { HandshakeRefused, errorShape, expectedError, startWorker, uniqueRoom } from "../lib/harness.mjs";
import { claimsFor, mint, nowSeconds, tamperSignature, unsigned } from "../lib/jwt.mjs";

const PLACEMENTS = ["header", "protocol", "query"];
const CLOSE_CODE = { unauthorized: 4401, forbidden: 4403 };
const HTTP_STATUS = { unauthorized: 401, forbidden: 403 };

let worker;
/** Every room a refused request asked for: none of them may ever wake a Durable Object. */
const refusedRooms = new Set();
/** Every token and `sub` this file presented: none may ever be printed. */
const secrets = new Set();

before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.dispose();
});

function subFor(label) {
  const sub = `sub-${label}-${Math.random().toString(36).slice(2, 10)}`;
  secrets.add(sub);
  return sub;
}

/** A token for `worker` with claims from `claimsFor(options)`. */
function tokenFor(w, { alg = "HS256", secret = w.secret, header, ...options } = {}) {
  const token = mint({ secret, alg, header, claims: claimsFor({ sub: subFor("t"), ...options }) });
  secrets.add(token);
  return token;
}

/** Headers and query of a plain (non-upgrade) HTTP request carrying `token` in `placement`. */
function httpAuth(token, placement) {
  if (token === null) return { headers: {}, query: "" };
  if (placement === "header") return { headers: { Authorization: `Bearer ${token}` }, query: "" };
  if (placement === "protocol") return { headers: { "Sec-WebSocket-Protocol": `signal.v1, bearer.${token}` }, query: "" };
  return { headers: {}, query: `?token=${encodeURIComponent(token)}` };
}

/** Upgrade refused: 101, one `error` frame with `code`, close 4401/4403, nothing else. */
async function expectRefusedUpgrade(w, room, { token, placement = "header", ...rest }, code) {
  refusedRooms.add(room);
  const client = await w.connect(room, { token, placement, label: `refused-${placement}`, ...rest });
  if (placement === "protocol" || rest.protocols?.includes("signal.v1")) {
    // Answered `signal.v1` even when refusing (else a browser fails the handshake and never sees
    // the error frame), and the token is never echoed.
    assert.equal(client.responseHeaders["sec-websocket-protocol"], "signal.v1");
  }
  const frame = await client.next();
  assert.deepEqual(errorShape(frame), expectedError(code));
  const closed = await client.closedWithin();
  assert.equal(closed.code, CLOSE_CODE[code], `close ${JSON.stringify(closed)}`);
  assert.equal(closed.reason, code, "the close reason is the error code (docs/protocol.md)");
  assert.equal(client.inbox.length, 0, `more frames after the error: ${client.describeInbox()}`);
}

/** The same request without `Upgrade: websocket`: HTTP 401/403 with a JSON error body. */
async function expectHttpRefusal(w, room, { token, placement = "header" }, code) {
  refusedRooms.add(room);
  const { headers, query } = httpAuth(token, placement);
  const res = await w.http(`/ws/${room}${query}`, { headers });
  assert.equal(res.status, HTTP_STATUS[code], res.text);
  assert.equal(res.json?.error?.code, code, res.text);
  assert.equal(typeof res.json.error.message, "string");
  assert.match(res.headers["content-type"] ?? "", /application\/json/);
}

async function expectAccepted(w, room, options) {
  const { client, joined } = await w.join(room, { label: "accepted", ...options });
  assert.equal(joined.roomId, room);
  await client.close(1000);
}

describe("a missing, expired or wrongly signed token is unauthorized in every placement", () => {
  const cases = {
    missing: () => null,
    expired: (room) => tokenFor(worker, { rooms: [room], now: nowSeconds() - 7200, ttlSeconds: 3600 }),
    "tampered signature": (room) => tamperSignature(tokenFor(worker, { rooms: [room] })),
    "signed with another secret": (room) => tokenFor(worker, { rooms: [room], secret: "not-the-secret" }),
    "not a JWT at all": () => "not-a-jwt",
  };
  for (const placement of PLACEMENTS) {
    for (const [name, makeToken] of Object.entries(cases)) {
      test(`${name}, token in ${placement}: error frame + 4401, HTTP 401`, async () => {
        const room = uniqueRoom("unauth");
        const token = makeToken(room);
        await expectRefusedUpgrade(worker, room, { token, placement }, "unauthorized");
        await expectHttpRefusal(worker, room, { token, placement }, "unauthorized");
      });
    }
  }
});

describe("tokens refused for their algorithm or claims", () => {
  const now = nowSeconds();
  const refused = {
    'alg "none" with an empty signature': (room) => unsigned({ claims: claimsFor({ sub: subFor("none"), rooms: [room] }) }),
    'alg "none" carrying a valid HS256 signature': (room) => {
      const valid = tokenFor(worker, { rooms: [room] });
      const [, payload, signature] = valid.split(".");
      const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
      return `${header}.${payload}.${signature}`;
    },
    "HS384 with the right secret (only HS256 is accepted)": (room) => tokenFor(worker, { rooms: [room], alg: "HS384" }),
    "HS256 header over an HS384 signature": (room) => tokenFor(worker, { rooms: [room], alg: "HS384", header: { alg: "HS256" } }),
    "nbf an hour ahead": (room) => tokenFor(worker, { rooms: [room], extra: { nbf: now + 3600 } }),
    "iat an hour ahead (beyond the 60 s leeway)": (room) => tokenFor(worker, { rooms: [room], now: now + 3600 }),
    "expired 61+ s ago (beyond the leeway)": (room) => tokenFor(worker, { rooms: [room], extra: { exp: now - 120 } }),
    "no exp": (room) => tokenFor(worker, { rooms: [room], extra: { exp: undefined } }),
    "no sub": (room) => tokenFor(worker, { rooms: [room], extra: { sub: undefined } }),
    "empty sub": (room) => tokenFor(worker, { rooms: [room], extra: { sub: "" } }),
    "numeric sub (a mistyped claim)": (room) => tokenFor(worker, { rooms: [room], extra: { sub: 42 } }),
    "string rooms (a mistyped claim)": (room) => tokenFor(worker, { rooms: room }),
    "numeric iss though JWT_ISSUER is unset (a mistyped claim)": (room) => tokenFor(worker, { rooms: [room], extra: { iss: 7 } }),
    "expired and for another room (rooms is checked last)": () => tokenFor(worker, { rooms: ["elsewhere"], extra: { exp: now - 3600 } }),
  };
  for (const [name, makeToken] of Object.entries(refused)) {
    test(`${name}: unauthorized`, async () => {
      const room = uniqueRoom("claims");
      const token = makeToken(room);
      await expectRefusedUpgrade(worker, room, { token }, "unauthorized");
      await expectHttpRefusal(worker, room, { token }, "unauthorized");
    });
  }

  const accepted = {
    "expired 30 s ago (within the leeway)": (room) => tokenFor(worker, { rooms: [room], extra: { exp: now - 30 } }),
    "nbf 30 s ahead (within the leeway)": (room) => tokenFor(worker, { rooms: [room], extra: { nbf: now + 30 } }),
    "iat 30 s ahead (within the leeway)": (room) => tokenFor(worker, { rooms: [room], now: now + 30 }),
    "iss and aud present but not configured": (room) => tokenFor(worker, { rooms: [room], extra: { iss: "anyone", aud: "anything" } }),
  };
  for (const [name, makeToken] of Object.entries(accepted)) {
    test(`${name}: accepted`, async () => {
      const room = uniqueRoom("claims-ok");
      await expectAccepted(worker, room, { token: makeToken(room) });
    });
  }
});

describe("room authorization", () => {
  test("a token for another room is forbidden: error frame + 4403, HTTP 403", async () => {
    for (const placement of PLACEMENTS) {
      const room = uniqueRoom("forbidden");
      const token = tokenFor(worker, { rooms: ["lobby", `${room}-other`] });
      await expectRefusedUpgrade(worker, room, { token, placement }, "forbidden");
      await expectHttpRefusal(worker, room, { token, placement }, "forbidden");
    }
  });

  test("a token without a rooms claim may join no room", async () => {
    const room = uniqueRoom("norooms");
    const token = tokenFor(worker, {});
    await expectRefusedUpgrade(worker, room, { token }, "forbidden");
    await expectHttpRefusal(worker, room, { token }, "forbidden");
  });

  test('a lone "*" pattern matches every room', async () => {
    const token = tokenFor(worker, { rooms: ["*"] });
    await expectAccepted(worker, uniqueRoom("star"), { token });
    await expectAccepted(worker, "x", { token });
  });

  test("rooms null or [] may join no room", async () => {
    for (const rooms of [null, []]) {
      const room = uniqueRoom("emptyrooms");
      await expectRefusedUpgrade(worker, room, { token: tokenFor(worker, { rooms }) }, "forbidden");
    }
  });

  test("a * anywhere but at the end is literal and matches no valid room id", async () => {
    const token = tokenFor(worker, { rooms: ["a*b", "*team"] });
    for (const room of ["ab", "axb", "team", "xteam"]) await expectRefusedUpgrade(worker, room, { token }, "forbidden");
  });

  test("an exact room id does not match a longer one", async () => {
    const token = tokenFor(worker, { rooms: ["lobby"] });
    await expectAccepted(worker, "lobby", { token });
    await expectRefusedUpgrade(worker, "lobby2", { token }, "forbidden");
  });

  test("a prefix pattern allows team-42-x for team-42-* but not team-43 or team-42", async () => {
    const token = tokenFor(worker, { rooms: ["team-42-*"] });
    await expectAccepted(worker, "team-42-x", { token });
    await expectAccepted(worker, "team-42-design_review", { token, placement: "protocol" });
    await expectAccepted(worker, "team-42-", { token });
    await expectRefusedUpgrade(worker, "team-43", { token }, "forbidden");
    await expectRefusedUpgrade(worker, "team-43-x", { token }, "forbidden");
    await expectRefusedUpgrade(worker, "team-42", { token }, "forbidden");
    await expectHttpRefusal(worker, "team-43", { token }, "forbidden");
  });
});

describe("handshake details", () => {
  test("a valid token without Upgrade: websocket gets 426 upgrade_required", async () => {
    for (const placement of PLACEMENTS) {
      const room = uniqueRoom("plain");
      const { headers, query } = httpAuth(tokenFor(worker, { rooms: [room] }), placement);
      const res = await worker.http(`/ws/${room}${query}`, { headers });
      assert.equal(res.status, 426, `${placement}: ${res.text}`);
      assert.equal(res.json?.error?.code, "upgrade_required", res.text);
      assert.equal(typeof res.json.error.message, "string");
    }
  });

  test("bearer.<jwt> offered without signal.v1 is a 400 bad_request", async () => {
    const room = uniqueRoom("noproto");
    refusedRooms.add(room);
    const token = tokenFor(worker, { rooms: [room] });
    await assert.rejects(worker.connect(room, { token: null, protocols: [`bearer.${token}`] }), (err) => {
      assert.ok(err instanceof HandshakeRefused, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.json?.error?.code, "bad_request", err.body);
      return true;
    });
  });

  test("a browser with ?token= that offers only signal.v1 gets signal.v1 back", async () => {
    const room = uniqueRoom("browser-query");
    const token = tokenFor(worker, { rooms: [room] });
    const { client } = await worker.join(room, { token, placement: "query", protocols: ["signal.v1"] });
    assert.equal(client.protocol, "signal.v1");
    await client.close();
    const refused = uniqueRoom("browser-query");
    await expectRefusedUpgrade(worker, refused, { token, placement: "query", protocols: ["signal.v1"] }, "forbidden");
  });

  test("the auth scheme is case-insensitive (RFC 7235): authorization: bearer <jwt>", async () => {
    const room = uniqueRoom("scheme");
    const token = tokenFor(worker, { rooms: [room] });
    const { client } = await worker.join(room, { token: null, headers: { Authorization: `bearer ${token}` } });
    await client.close();
  });

  test("the Authorization header wins over ?token=", async () => {
    const room = uniqueRoom("precedence");
    const good = tokenFor(worker, { rooms: [room] });
    const { client } = await worker.join(room, { token: good, placement: "header", query: "token=garbage" });
    await client.close();
    const other = uniqueRoom("precedence");
    const bad = tokenFor(worker, { rooms: [`${other}-x`] });
    const goodForOther = tokenFor(worker, { rooms: [other] });
    await expectRefusedUpgrade(worker, other, { token: bad, placement: "header", query: `token=${goodForOther}` }, "forbidden");
  });

  test("a client's own x-edgesignal-identity header is never trusted", async () => {
    // Without a token, a forged identity header changes nothing: refused at the edge.
    const room = uniqueRoom("forged");
    const forged = JSON.stringify({ user: "attacker", room, protocol: null });
    await expectRefusedUpgrade(worker, room, { token: null, headers: { "x-edgesignal-identity": forged } }, "unauthorized");
    // With a valid token, the Worker's own identity replaces the forged one: the peer lands in
    // the path's room, not the room the forged header names.
    const mine = uniqueRoom("mine");
    const elsewhere = uniqueRoom("elsewhere");
    const { client: watcher } = await worker.join(elsewhere, { label: "watcher" });
    const headers = { "x-edgesignal-identity": JSON.stringify({ user: "attacker", room: elsewhere, protocol: null }) };
    const { client, joined } = await worker.join(mine, { headers });
    assert.equal(joined.roomId, mine);
    assert.deepEqual(joined.peers, []);
    await watcher.expectSilence();
    await Promise.all([client.close(), watcher.close()]);
  });

  test("refused upgrades never reach a room's Durable Object", async () => {
    assert.ok(refusedRooms.size > 0);
    // Each refusal completed (close received) before this runs, and a room object logs on
    // construction, so any forwarded request would already have printed its room_wake line.
    await worker.logs.expectNoLog((line) => line.event === "room_wake" && refusedRooms.has(line.room));
  });

  test("no token and no sub ever appears in the logs", () => {
    const text = worker.logs.text();
    for (const secret of secrets) assert.ok(!text.includes(secret), `logged: ${secret.slice(0, 40)}…`);
  });
});

describe("with JWT_ISSUER and JWT_AUDIENCE configured", () => {
  let strict;
  const ISS = "https://issuer.edgesignal.test";
  const AUD = "edgesignal-test";
  before(async () => {
    strict = await startWorker({ bindings: { JWT_ISSUER: ISS, JWT_AUDIENCE: AUD } });
  });
  after(async () => {
    await strict?.dispose();
  });

  test("the right iss and aud are accepted, aud also as an array containing it", async () => {
    const room = uniqueRoom("issaud");
    await expectAccepted(strict, room, { token: tokenFor(strict, { rooms: [room], extra: { iss: ISS, aud: AUD } }) });
    await expectAccepted(strict, room, { token: tokenFor(strict, { rooms: [room], extra: { iss: ISS, aud: ["other", AUD] } }) });
  });

  const refused = {
    "wrong iss": { iss: "https://evil.test", aud: AUD },
    "wrong aud": { iss: ISS, aud: "someone-else" },
    "no iss": { aud: AUD },
    "no aud": { iss: ISS },
    "aud array without it": { iss: ISS, aud: ["other", "another"] },
    "iss differing only in case": { iss: ISS.toUpperCase(), aud: AUD },
  };
  for (const [name, extra] of Object.entries(refused)) {
    test(`${name}: unauthorized`, async () => {
      const room = uniqueRoom("issaud-bad");
      const token = tokenFor(strict, { rooms: [room], extra });
      await expectRefusedUpgrade(strict, room, { token, placement: "protocol" }, "unauthorized");
      await expectHttpRefusal(strict, room, { token }, "unauthorized");
    });
  }
});

describe("with JWT_ISSUER and JWT_AUDIENCE empty, as in wrangler.toml's [vars]", () => {
  let lax;
  before(async () => {
    lax = await startWorker({ bindings: { JWT_ISSUER: "", JWT_AUDIENCE: "" } });
  });
  after(async () => {
    await lax?.dispose();
  });

  test("an empty setting is not configured: tokens without iss and aud are accepted", async () => {
    const room = uniqueRoom("empty-issaud");
    await expectAccepted(lax, room, { token: tokenFor(lax, { rooms: [room] }) });
  });
});
