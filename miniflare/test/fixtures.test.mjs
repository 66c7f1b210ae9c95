// Scenario 7: the golden frames shared with the native Rust tests (`tests/fixtures/frames.json`),
// run against the real Worker: sender A, target B, one room.
//
// Format: {"errors":[{"name","send":"<exact text frame>","expect":{"type":"error","code",
// "correlationId"?}}], "relays":[{"name","send":{…},"deliver":{…}}]}. Placeholders inside
// strings: `$ROOM`, `$A` (the sender's peer id), `$B` (the target's); in expected objects the
// whole string "$ANY" stands for any non-empty string. Errors are compared without `message`
// (which must still be a non-empty string), every other field exactly (so an error carrying a
// `seq` fails). Relays are compared whole, `seq` included: each relay case runs on a fresh pair,
// so its relay is B's seq 2 (after B's joined, seq 1), as in the native consumer
// (tests/protocol.rs).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { REPO_ROOT, startWorker, uniqueRoom } from "../lib/harness.mjs";

const FIXTURES = process.env.EDGESIGNAL_FRAMES_FIXTURE ?? join(REPO_ROOT, "tests", "fixtures", "frames.json");
const ANY = "$ANY";

/** Replaces `$ROOM`, `$A` and `$B` inside a string (never touching `$ANY`). */
export function substitute(text, vars) {
  return text.replace(/\$(ROOM|ANY|A|B)(?![A-Za-z0-9_])/g, (whole, name) => (name === "ANY" ? whole : vars[name]));
}

/** Deep substitution over a JSON value (strings only; keys stay as written). */
export function substituteDeep(value, vars) {
  if (typeof value === "string") return substitute(value, vars);
  if (Array.isArray(value)) return value.map((v) => substituteDeep(v, vars));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteDeep(v, vars)]));
  return value;
}

/**
 * `actual` with every position where `expected` says "$ANY" checked (non-empty string) and
 * replaced by "$ANY", so that a plain deepStrictEqual against `expected` then compares the rest.
 */
export function maskAny(actual, expected) {
  if (expected === ANY) {
    assert.ok(typeof actual === "string" && actual.length > 0, `expected a non-empty string, got ${JSON.stringify(actual)}`);
    return ANY;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) return actual.map((v, i) => (i < expected.length ? maskAny(v, expected[i]) : v));
  if (expected && typeof expected === "object" && actual && typeof actual === "object" && !Array.isArray(actual)) {
    return Object.fromEntries(Object.entries(actual).map(([k, v]) => [k, k in expected ? maskAny(v, expected[k]) : v]));
  }
  return actual;
}

function loadFixtures() {
  if (!existsSync(FIXTURES)) return null;
  const data = JSON.parse(readFileSync(FIXTURES, "utf8"));
  assert.ok(Array.isArray(data.errors) && Array.isArray(data.relays), `${FIXTURES}: expected {"errors":[…],"relays":[…]}`);
  return data;
}

const fixtures = loadFixtures();

if (!fixtures) {
  test(`golden frames fixture exists (${FIXTURES})`, () => {
    assert.fail(`${FIXTURES} does not exist yet; it is shared with the native Rust tests`);
  });
} else {
  describe(`golden frames from ${FIXTURES}`, () => {
    let worker;
    let ctx;
    before(async () => {
      worker = await startWorker();
      ctx = await freshPair();
    });
    after(async () => {
      await worker?.dispose();
    });

    /** Every pair used, for the final "nothing else arrived" check. */
    const pairs = [];
    /** A fresh pair in a fresh room: B's next sequenced frame is its seq 2. */
    async function freshPair() {
      const room = uniqueRoom("golden");
      const { a, b, A, B } = await worker.pair(room);
      pairs.push({ a, b });
      return { a, b, vars: { ROOM: room, A, B } };
    }

    /** Recreates the pair if a fixture made either side close (none should). */
    async function freshIfClosed() {
      if (ctx.a.isOpen && ctx.b.isOpen) return;
      ctx = await freshPair();
    }

    describe("errors", () => {
      for (const [i, fixture] of fixtures.errors.entries()) {
        test(fixture.name ?? `errors[${i}]`, async () => {
          await freshIfClosed();
          const { a, b, vars } = ctx;
          assert.equal(typeof fixture.send, "string", "an error fixture's send is the exact text frame");
          a.send(substitute(fixture.send, vars));
          const actual = await a.next();
          const expected = substituteDeep(fixture.expect, vars);
          assert.equal(actual.type, "error", JSON.stringify(actual));
          assert.ok(typeof actual.message === "string" && actual.message.length > 0, "error without a message");
          const { message, ...rest } = actual;
          const { message: _ignored, ...expectedRest } = expected;
          assert.deepStrictEqual(maskAny(rest, expectedRest), expectedRest);
          assert.ok(a.isOpen, "the connection closed after an error fixture");
          assert.equal(b.inbox.length, 0, `B received something: ${b.describeInbox()}`);
        });
      }
    });

    describe("relays", () => {
      for (const [i, fixture] of fixtures.relays.entries()) {
        test(fixture.name ?? `relays[${i}]`, async () => {
          const { a, b, vars } = await freshPair();
          const send = substituteDeep(fixture.send, vars);
          a.send(typeof send === "string" ? send : JSON.stringify(send));
          const actual = await b.next();
          const expected = substituteDeep(fixture.deliver, vars);
          assert.deepStrictEqual(maskAny(actual, expected), expected);
          assert.equal(a.inbox.length, 0, `A received something: ${a.describeInbox()}`);
        });
      }
    });

    test("nothing else reached any peer", async () => {
      await Promise.all(pairs.flatMap(({ a, b }) => [a.expectSilence(), b.expectSilence()]));
    });
  });
}
