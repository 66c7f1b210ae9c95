// Hosts ONE of the three servers in Miniflare's workerd on a loopback port, for run.mjs.
//
//   node bench/side-by-side/server.mjs --server thin|js-v1|edgesignal [--var NAME=VALUE]...
//
// Prints one JSON line on stdout once ready: {"url", "hostPid", "workerdPids", "miniflare"}, then
// serves until its stdin closes (run.mjs closes it, or dies), and then disposes Miniflare.
// run.mjs starts it pinned to the server core; workerd, its child, inherits the pinning.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, "..", "..");
export const BUILD_DIR = resolve(process.env.EDGESIGNAL_BUILD_DIR ?? join(REPO_ROOT, "build"));
/** The secret every server verifies with (the thin relay ignores it) and run.mjs signs with. */
export const BENCH_SECRET = "edgesignal-bench-secret-0123456789abcdef";
/**
 * `edgesignal-before` is an older build of edgesignal (`EDGESIGNAL_BEFORE_BUILD_DIR`), for a
 * before/after table from one run; it is not in the default server list.
 */
export const SERVERS = ["thin", "js-v1", "js-v1-alarm", "edgesignal-before", "edgesignal"];
export const DEFAULT_SERVERS = ["thin", "js-v1", "edgesignal"];

/**
 * edgesignal's rate limits (v1.1) must not throttle the relay scenarios: every limit is set far
 * above what the load offers. Unknown vars are ignored by the v1 Worker. Each connection has its
 * own `sub`, so per-user limits never bite; MAX_CONNECTIONS_PER_USER stays modest in case its
 * range is capped like MAX_PEERS_PER_ROOM's (1–256).
 */
export const EDGESIGNAL_VARS = {
  RATE_MSG_PER_S: "100000",
  RATE_MSG_BURST: "100000",
  RATE_CANDIDATE_PER_S: "100000",
  RATE_CANDIDATE_BURST: "100000",
  RATE_ROOM_PER_S: "100000",
  RATE_CONNECT_PER_MIN: "100000",
  MAX_CONNECTIONS_PER_USER: "64",
};

/** The build directory a server loads, for the edgesignal servers. */
export function buildDirOf(server) {
  if (server === "edgesignal") return BUILD_DIR;
  if (server === "edgesignal-before") {
    const dir = process.env.EDGESIGNAL_BEFORE_BUILD_DIR;
    if (!dir) throw new Error("edgesignal-before needs EDGESIGNAL_BEFORE_BUILD_DIR (a build/ of the older version)");
    return resolve(dir);
  }
  return undefined;
}

/** The Miniflare the integration tests pin (miniflare/package-lock.json), not whatever is hoisted. */
const requireFromTests = createRequire(join(REPO_ROOT, "miniflare", "package.json"));

export function miniflareVersion() {
  return JSON.parse(readFileSync(requireFromTests.resolve("miniflare/package.json"), "utf8")).version;
}

/** `compatibility_date` / `_flags` from wrangler.toml, as miniflare/lib/harness.mjs reads them. */
function wranglerCompat() {
  const text = readFileSync(join(REPO_ROOT, "wrangler.toml"), "utf8");
  const date = text.match(/^\s*compatibility_date\s*=\s*"([^"]+)"/m);
  const flags = text.match(/^\s*compatibility_flags\s*=\s*\[([^\]]*)\]/m);
  return {
    compatibilityDate: date ? date[1] : "2026-04-01",
    compatibilityFlags: flags ? [...flags[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]) : [],
  };
}

/**
 * Miniflare options for `server`. All three share the compatibility settings, the DO binding
 * (`ROOMS`, class `Room`, SQLite-backed) and the loopback port, so only the code differs.
 */
function options(server, vars) {
  const common = {
    ...wranglerCompat(),
    modules: true,
    durableObjects: { ROOMS: { className: "Room", useSQLite: true } },
    host: "127.0.0.1",
    port: 0,
    // workerd's stdout/stderr (edgesignal logs a JSON line per join and leave) are drained
    // unparsed: parsing them here would put Node work on the server core and bill it to nobody.
    handleRuntimeStdio: (stdout, stderr) => {
      stdout.resume();
      stderr.on("data", (chunk) => process.stderr.write(chunk));
    },
  };
  const buildDir = buildDirOf(server);
  if (buildDir) {
    const scriptPath = join(buildDir, "index.js");
    if (!existsSync(scriptPath)) throw new Error(`${scriptPath} is missing: run \`bash scripts/build.sh\``);
    // Exactly miniflare/lib/harness.mjs's way of loading the built Worker.
    return {
      ...common,
      scriptPath,
      modulesRoot: buildDir,
      modulesRules: [
        { type: "ESModule", include: ["**/*.js"] },
        { type: "CompiledWasm", include: ["**/*.wasm"] },
      ],
      bindings: { JWT_SECRET: BENCH_SECRET, LOG_SALT: "edgesignal-bench-salt", ...vars },
    };
  }
  const file = server === "thin" ? "thin-relay.mjs" : "js-v1.mjs";
  // `js-v1-alarm`: js-v1 plus v1.1's heartbeat alarm per room (see js-v1.mjs), the floor of a v1.1 connect.
  const alarm = server === "js-v1-alarm" ? { HEARTBEAT_ALARM: "1" } : {};
  return { ...common, scriptPath: join(HERE, "baselines", file), bindings: { JWT_SECRET: BENCH_SECRET, ...alarm, ...vars } };
}

/** Descendants of `pid` whose command is workerd (Miniflare spawns it directly). */
export function workerdPids(pid) {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push({ pid: Number(entry), comm });
    } catch {
      // the process ended while we looked
    }
  }
  const found = [];
  const walk = (p) => {
    for (const child of children.get(p) ?? []) {
      if (child.comm.includes("workerd")) found.push(child.pid);
      walk(child.pid);
    }
  };
  walk(pid);
  return found;
}

async function main() {
  const { values } = parseArgs({
    options: { server: { type: "string" }, var: { type: "string", multiple: true, default: [] } },
  });
  if (!SERVERS.includes(values.server)) throw new Error(`--server must be one of ${SERVERS.join(", ")}`);
  const vars = Object.fromEntries(
    values.var.map((kv) => {
      const at = kv.indexOf("=");
      if (at < 1) throw new Error(`--var wants NAME=VALUE, got ${kv}`);
      return [kv.slice(0, at), kv.slice(at + 1)];
    }),
  );
  const { Miniflare } = await import(pathToFileURL(requireFromTests.resolve("miniflare")).href);
  const mf = new Miniflare(options(values.server, vars));
  const url = await mf.ready;
  const pids = workerdPids(process.pid);
  if (pids.length === 0) throw new Error("no workerd child process found");
  const ready = { url: url.href, hostPid: process.pid, workerdPids: pids, miniflare: miniflareVersion() };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  // Served until run.mjs closes our stdin (or exits).
  await new Promise((done) => {
    process.stdin.on("end", done);
    process.stdin.on("error", done);
    process.stdin.resume();
  });
  await mf.dispose();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`server.mjs: ${e.stack ?? e}`);
    process.exit(1);
  });
}
