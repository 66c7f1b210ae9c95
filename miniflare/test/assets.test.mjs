// The web console as wrangler.toml's `[assets]` serves it, in workerd: `/` is the console, the
// Worker's own routes never consult the assets (an upgrade still authenticates and joins), and a
// path that is neither reaches the Worker's JSON 404.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, uniqueRoom } from "../lib/harness.mjs";

let worker;
before(async () => {
  worker = await startWorker({ assets: true });
});
after(() => worker?.dispose());

const get = (path) => fetch(new URL(path, worker.url));

test("the console is served at /, with its script and stylesheet", async () => {
  const page = await get("/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  const html = await page.text();
  assert.match(html, /<title>edgesignal console<\/title>/);
  for (const [path, type] of [["/console.js", /javascript/], ["/console.css", /^text\/css/]]) {
    const res = await get(path);
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get("content-type"), type, path);
    assert.ok((await res.text()).length > 100, path);
  }
});

test("the Worker's routes are the Worker's, and a path without an asset is its 404", async () => {
  const health = await get("/healthz");
  assert.deepEqual([health.status, await health.json()], [200, { status: "ok" }]);
  const ws = await get("/ws/lobby");
  assert.equal(ws.status, 401);
  assert.equal((await ws.json()).error.code, "unauthorized");
  const ice = await get("/ice-servers");
  assert.equal(ice.status, 401);
  await ice.body?.cancel();
  const missing = await get("/no-such-page");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
});

test("an upgrade through the assets router joins as without it", async () => {
  const room = uniqueRoom("assets");
  const client = await worker.connect(room, { token: worker.token({ sub: "assets-a", rooms: [room] }) });
  const joined = await client.next();
  assert.equal(joined.type, "joined");
  assert.equal(joined.roomId, room);
  client.close();
});
