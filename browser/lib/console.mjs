// Driving the web console (web/, served by the Worker's `[assets]`) and the Robot Agent
// (agent/agent.mjs) from Node: what the browser tests and bench/console-agent.mjs share.
// Everything waits on events (the page's state, the agent's JSON lines), never on sleeps.

import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The system clock minus `performance.now()`, to a fraction of a millisecond: the largest
 * difference over a couple of ticks of `Date.now()`, which counts whole milliseconds. Self-
 * contained, so it runs in Node and, through `page.evaluate`, in a page: adding it to either's
 * `performance.now()` times makes them comparable (as the agent's `epochMs`).
 */
export function wallClockOffset() {
  let offset = -Infinity;
  for (const until = performance.now() + 3; performance.now() < until; ) offset = Math.max(offset, Date.now() - performance.now());
  return offset;
}

/** `promise`, or a failure after `ms` (the timer never keeps the process alive). */
export const within = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);

/**
 * A console page opened with a fragment (room, token, name), as scripts/dev.sh's link does.
 * `init`: a function run in the page before its own scripts (instrumentation).
 */
export async function openConsole(browser, worker, fragment, { init } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 960 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.errors = errors;
  if (init) await page.addInitScript(init);
  await page.goto(`${worker.url.origin}/#${new URLSearchParams(fragment)}`);
  return page;
}

/** Waits in the page until `fn(arg)` is truthy (it sees `window.edgesignalConsole`); returns its value. */
export async function until(page, fn, arg, ms, what) {
  const handle = await within(page.waitForFunction(fn, arg, { timeout: ms, polling: 20 }), ms + 1000, what);
  return handle.jsonValue();
}

/** What a console knows: its own peer id, the call, and per remote peer its timings and stats. */
export const consoleState = async (page) => ({
  ...(await page.evaluate(() => {
    const c = window.edgesignalConsole;
    return {
      connectMs: c.metrics.connectMs,
      me: c.client?.peerId ?? null,
      call: c.call && { state: c.call.state, callId: c.call.callId },
      peers: Object.fromEntries([...c.metrics.peers].map(([id, t]) => [id, { ...t }])),
      messages: c.metrics.messages,
      status: document.getElementById("status").textContent,
    };
  })),
  // The page's clock against the system clock, so its times compare with other processes'.
  wallOffset: await page.evaluate(wallClockOffset),
});

/**
 * Starts the Robot Agent (`--json --video`) in `room` with `token`; resolves once it has joined.
 * The child has `events` (every JSON line so far), `waitFor(predicate, ms, what)` (the first
 * event, past or future, that matches) and `joined` (its `joined` event).
 */
export async function startAgent(worker, room, token) {
  const agent = spawn(
    process.execPath,
    [join(ROOT, "agent", "agent.mjs"), "--json", "--video", "--url", `ws://${worker.url.host}`, "--room", room, "--token", token],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  agent.events = [];
  const waiters = new Set();
  createInterface({ input: agent.stdout }).on("line", (line) => {
    const event = JSON.parse(line);
    agent.events.push(event);
    for (const w of waiters) if (w.predicate(event)) (waiters.delete(w), w.resolve(event));
  });
  agent.waitFor = (predicate, ms, what) => {
    const seen = agent.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    return within(new Promise((resolve) => waiters.add({ predicate, resolve })), ms, what);
  };
  try {
    agent.joined = await agent.waitFor((e) => e.event === "joined", 15_000, "the agent joined");
  } catch (error) {
    agent.kill("SIGKILL");
    throw error;
  }
  return agent;
}

/** The agent's `signal` events of one kind (`direction`: "in"|"out", `type`: offer|answer|candidate). */
export const agentSignals = (agent, direction, type) =>
  agent.events.filter((e) => e.event === "signal" && e.direction === direction && e.type === type);
