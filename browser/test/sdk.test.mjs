// @edgesignal/client in real Chromium (inside the test's own network namespace, like
// turn.test.mjs): two pages add a camera track and a data channel at the same moment (glare);
// the PeerManager's perfect negotiation, with the server's `polite` roles, connects them. Then one
// page's signaling socket is killed mid-call: the SDK resumes and a renegotiation over the
// resumed signaling opens a new data channel, without dropping the call.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, requireNetns } from "../lib/chromium.mjs";
import { within } from "../lib/console.mjs";
import { startWorker, uniqueRoom } from "../../miniflare/lib/harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");

requireNetns();

let worker;
let server;
let browser;

before(async () => {
  worker = await startWorker({ bindings: { STUN_SERVERS: "" } });
  server = createServer((req, res) => {
    // The page, and the SDK's modules as an app would serve them.
    const path = req.url === "/" ? "browser/sdk.html" : normalize(req.url).replace(/^\/+/, "");
    if (!path.startsWith("sdk/src/") && path !== "browser/sdk.html") {
      res.writeHead(404).end();
      return;
    }
    const type = path.endsWith(".js") ? "text/javascript" : "text/html";
    res.writeHead(200, { "content-type": `${type}; charset=utf-8` });
    res.end(readFileSync(join(ROOT, path)));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await worker?.dispose();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

async function page() {
  const p = await (await browser.newContext()).newPage();
  p.on("pageerror", (e) => console.log(`  page error: ${e.message}`));
  await p.goto(`http://127.0.0.1:${server.address().port}/`);
  return p;
}

test("glare is resolved by the server's roles, and a killed signaling socket does not drop the call", { timeout: 90_000 }, async () => {
  const room = uniqueRoom("sdk-browser");
  const url = `ws://${worker.url.host}`;
  const [a, b] = [await page(), await page()];
  const run = (p, sub, text) => p.evaluate((o) => window.run(o), { url, room, token: worker.token({ sub, rooms: [room] }), text });
  // A joins first (it will be polite toward B); B joins, and both negotiate at once.
  const aRun = run(a, "sdk-page-a", "hello from A");
  await worker.waitForLog((l) => l.event === "room.join" && l.room === room, 10_000);
  const bRun = run(b, "sdk-page-b", "hello from B");
  const [ra, rb] = await within(Promise.all([aRun, bRun]), 30_000, "both pages connected");
  assert.equal(ra.message, "hello from B");
  assert.equal(rb.message, "hello from A");
  assert.ok(ra.width > 0 && rb.width > 0);
  assert.deepEqual([ra.polite, rb.polite], [true, false], "the earlier peer is polite");
  assert.deepEqual([...ra.errors, ...rb.errors], []);
  // Every offer, answer and candidate sent was reported by a `signal` event just before it went
  // to the socket (so a sender's timestamp never follows the receiver's).
  for (const { order } of [ra, rb]) {
    const sends = order.flatMap((entry, i) => (entry.startsWith("send ") ? [[order[i - 1], entry]] : []));
    assert.ok(sends.some(([, s]) => s === "send offer" || s === "send answer") && sends.some(([, s]) => s === "send candidate"), JSON.stringify(order));
    for (const [before, entry] of sends) assert.equal(before, entry.replace("send", "signal"), JSON.stringify(order));
  }
  // Kill A's signaling mid-call; the SDK resumes; a renegotiation opens a channel.
  const gotExtra = b.evaluate(
    () =>
      new Promise((resolve) =>
        window.manager.addEventListener("datachannel", (e) => {
          if (e.detail.channel.label === "after-resume") e.detail.channel.onmessage = (m) => resolve(m.data);
        }),
      ),
  );
  const after = await within(a.evaluate((o) => window.killAndRenegotiate(o), { text: "still here" }), 30_000, "resume and renegotiate");
  assert.equal(after.resumedAs, ra.me, "the same peer id after the resume");
  assert.equal(after.state, "connected", "the call was never dropped");
  assert.equal(await within(gotExtra, 10_000, "the new channel's message"), "still here");
});
