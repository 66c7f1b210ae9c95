// The side-by-side's processes, shared by run.mjs and bench/cpu-split.mjs: a server.mjs pinned
// to the server core with a raised descriptor limit and its storage on tmpfs, and the pinning
// helpers the load generator uses too.
import { spawn } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { EDGESIGNAL_VARS } from "./server.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
export const SERVER_CORE = 0;
export const LOADGEN_CORE = 1;
export const NOFILE = 65536;
const SHM_DIR = "/dev/shm";

/** The vars `server` runs with: edgesignal's EDGESIGNAL_VARS with `extra` over them; none for the baselines. */
export function serverVars(server, extra = {}) {
  return server.startsWith("edgesignal") ? { ...EDGESIGNAL_VARS, ...extra } : {};
}

/** Runs `argv` with a raised descriptor limit, pinned to `core` when the machine has two. */
export function spawnPinned(core, argv, pin, env = process.env) {
  // Each live Durable Object holds a few descriptors and each client socket one: 1,000+
  // connections exceed common 1,024 soft limits on both sides.
  const script = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const pinning = pin ? ["taskset", "-c", String(core)] : [];
  return spawn("bash", ["-c", script, "bash", ...pinning, ...argv], { stdio: ["pipe", "pipe", "pipe"], env });
}

export function lines(stream, onLine) {
  createInterface({ input: stream, crlfDelay: Infinity }).on("line", onLine);
}

/**
 * Miniflare keeps Durable Object storage (one SQLite file per object, even when nothing is
 * written) under the OS temp dir. On a disk-backed /tmp, creating 500 objects waits on this VM's
 * disk flushes: noise that is the same for all three servers and says nothing about them. tmpfs
 * keeps the same storage code path without it.
 */
export function serverEnv() {
  if (!process.env.TMPDIR && existsSync(SHM_DIR)) {
    try {
      accessSync(SHM_DIR, constants.W_OK);
      return { ...process.env, TMPDIR: SHM_DIR };
    } catch {
      // not writable: keep the default
    }
  }
  return process.env;
}

/** Starts server.mjs for `server`; resolves with its ready line and a `stop()`. */
export async function startServer(server, vars, { pin, verbose }) {
  const varArgs = Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}=${v}`]);
  const argv = [process.execPath, join(HERE, "server.mjs"), "--server", server, ...varArgs];
  const child = spawnPinned(SERVER_CORE, argv, pin, serverEnv());
  const stderr = [];
  lines(child.stderr, (line) => {
    stderr.push(line);
    if (stderr.length > 200) stderr.shift();
    if (verbose) process.stderr.write(`  [${server} server] ${line}\n`);
  });
  const exited = new Promise((done) => child.on("exit", (code) => done(code)));
  const ready = await new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`${server}: server not ready within 30 s`)), 30_000);
    lines(child.stdout, (line) => {
      clearTimeout(timer);
      try {
        resolveReady(JSON.parse(line));
      } catch {
        reject(new Error(`${server}: unexpected server output ${line}`));
      }
    });
    exited.then((code) => reject(new Error(`${server}: server exited (${code}) before ready:\n${stderr.join("\n")}`)));
  });
  const stop = async () => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { ...ready, stop, stderr };
}

export function hasTaskset() {
  return new Promise((ok) => {
    spawn("taskset", ["-V"], { stdio: "ignore" })
      .on("error", () => ok(false))
      .on("exit", (code) => ok(code === 0));
  });
}
