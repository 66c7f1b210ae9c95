// Scenario 13: the HTTP surface: health, unknown paths, wrong methods and invalid room ids, all
// with the JSON error body `{"error":{"code","message"}}`.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HandshakeRefused, startWorker } from "../lib/harness.mjs";

let worker;
before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.dispose();
});

function assertJsonError(res, status, code) {
  assert.equal(res.status, status, `${res.status} ${res.text}`);
  assert.match(res.headers["content-type"] ?? "", /application\/json/);
  assert.equal(res.json?.error?.code, code, res.text);
  assert.equal(typeof res.json.error.message, "string");
}

test("GET /healthz is 200 {\"status\":\"ok\"} without auth", async () => {
  const res = await worker.http("/healthz");
  assert.equal(res.status, 200);
  assert.match(res.headers["content-type"] ?? "", /application\/json/);
  assert.deepEqual(res.json, { status: "ok" });
});

test("a known path with another method is 405 method_not_allowed", async () => {
  assertJsonError(await worker.http("/healthz", { method: "POST", body: "{}" }), 405, "method_not_allowed");
  assertJsonError(await worker.http("/healthz", { method: "DELETE" }), 405, "method_not_allowed");
  assertJsonError(await worker.http("/ws/x", { method: "POST", body: "{}" }), 405, "method_not_allowed");
  assertJsonError(await worker.http("/ws/x", { method: "PUT", body: "{}" }), 405, "method_not_allowed");
});

test("unknown paths are 404 not_found", async () => {
  for (const path of ["/nope", "/", "/ws", "/ws/a/b", "/healthz/extra", "/WS/x"]) {
    assertJsonError(await worker.http(path), 404, "not_found");
  }
});

test("an invalid room id is 400 bad_request, before any auth or upgrade", async () => {
  const longId = "a".repeat(65);
  for (const path of ["/ws/", "/ws/bad%20id", `/ws/${longId}`, "/ws/bad.id", "/ws/%C3%A9"]) {
    assertJsonError(await worker.http(path), 400, "bad_request");
  }
  // As a WebSocket handshake with a valid token, too: refused over HTTP, not upgraded.
  const token = worker.token({ rooms: ["*"] });
  await assert.rejects(worker.connect("ignored", { path: `/ws/${longId}`, token }), (err) => {
    assert.ok(err instanceof HandshakeRefused, String(err));
    assert.equal(err.status, 400);
    assert.equal(err.json?.error?.code, "bad_request", err.body);
    return true;
  });
});

test("a 64-char room id is valid", async () => {
  const room = "r".repeat(64);
  const { client, joined } = await worker.join(room, { label: "long" });
  assert.equal(joined.roomId, room);
  await client.close();
});
