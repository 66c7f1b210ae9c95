// The token attack corpus (tests/fixtures/token-attacks.json) against the built Worker in workerd:
// every case, in every placement it can travel in, is answered by the entry Worker itself with one
// `error unauthorized` frame and close 4401; the same token on a plain request gets HTTP 401; no
// case wakes the room's Durable Object; then the valid controls join, proving the config is right.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT, errorShape, expectedError, startWorker } from "../lib/harness.mjs";

const corpus = JSON.parse(readFileSync(join(REPO_ROOT, "tests", "fixtures", "token-attacks.json"), "utf8"));
const ALL = ["header", "protocol", "query"];
const PARALLEL = 8;

let worker;
before(async () => {
  worker = await startWorker({ bindings: { ...corpus.config } });
});
after(() => worker?.dispose());

/** Runs `fn` over `items`, `PARALLEL` at a time. */
async function pool(items, fn) {
  const queue = [...items];
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (queue.length) await fn(queue.shift());
  }));
}

describe("token attack corpus", () => {
  test(`${corpus.cases.length} cases in every placement: error unauthorized, close 4401, HTTP 401`, async () => {
    const replays = corpus.cases.flatMap((c) => (c.placements ?? ALL).map((placement) => ({ ...c, placement })));
    const failures = [];
    await pool(replays, async ({ name, token, placement }) => {
      try {
        const client = await worker.connect(corpus.room, { token, placement, label: name, timeoutMs: 5000 });
        const frame = await client.next();
        assert.deepEqual(errorShape(frame), expectedError("unauthorized"));
        const closed = await client.closedWithin();
        assert.equal(closed.code, 4401);
        if (placement === "header") {
          const res = await worker.http(`/ws/${corpus.room}`, { headers: { Authorization: `Bearer ${token}` } });
          assert.equal(res.status, 401, res.text);
          assert.equal(res.json?.error?.code, "unauthorized");
        }
      } catch (err) {
        failures.push(`${name} in ${placement}: ${err.message.split("\n")[0]}`);
      }
    });
    assert.deepEqual(failures, [], `${failures.length} of ${replays.length} replays not refused as documented`);
  });

  test("no case reached a Durable Object", async () => {
    await worker.logs.expectNoLog((line) => line.event === "room_wake");
    await worker.logs.expectNoLog((line) => line.event === "room.join");
  });

  test("the controls (one valid token per algorithm) join in every placement", async () => {
    for (const control of corpus.controls) {
      for (const placement of ALL) {
        const { client, joined } = await worker.join(corpus.room, { token: control.token, placement, label: control.name });
        assert.equal(joined.roomId, corpus.room, `${control.name} in ${placement}`);
        client.send({ type: "leave", roomId: corpus.room });
        await client.closed;
      }
    }
  });

  test("no token of the corpus appears in the logs", () => {
    const text = worker.logs.text();
    for (const { token, name } of [...corpus.cases, ...corpus.controls]) {
      if (token.length >= 20) assert.ok(!text.includes(token), `logged: ${name}`);
    }
  });
});
