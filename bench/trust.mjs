#!/usr/bin/env node
// Benchmark: what verifying a token costs per algorithm, end to end in workerd. The built Worker
// runs in Miniflare with JWT_SECRET (HS256) and pinned ES256, EdDSA and RS256 keys; each round is
// a plain GET /ws/{room} with a valid token, which the edge verifies completely (signature,
// claims, room) and answers 426: no Durable Object is involved, so the difference between
// algorithms is the verification. Also: a full connect+join per algorithm, and the cold start
// (new workerd → first answered upgrade). Prints numbers; asserts only that every request got
// the expected answer. Bounded: --rounds per algorithm (default 300), about 30 s in all.
//
//   node bench/trust.mjs [--rounds 300] [--quick]
//   EDGESIGNAL_BUILD_DIR=/tmp/es-wv node bench/trust.mjs   # another build, e.g. `--features wasm-verify`
import { generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { BUILD_DIR, startWorker, uniqueRoom } from "../miniflare/lib/harness.mjs";
import { base64url, claimsFor, mint } from "../miniflare/lib/jwt.mjs";
import { workerdPids } from "./side-by-side/server.mjs";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "300" }, quick: { type: "boolean", default: false } } });
const rounds = values.quick ? 60 : Math.min(Math.max(Number.parseInt(values.rounds, 10) || 300, 10), 5000);
const SECRET = "edgesignal-bench-secret-0123456789abcdef";
const TICKS_PER_S = 100; // USER_HZ on Linux

function keyPair(alg, kid) {
  const { privateKey, publicKey } =
    alg === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" })
    : alg === "EdDSA" ? generateKeyPairSync("ed25519")
    : generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { alg, kid, privateKey, jwk: { ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" } };
}
function signed(key, claims) {
  const input = `${base64url({ alg: key.alg, kid: key.kid, typ: "JWT" })}.${base64url(claims)}`;
  const data = Buffer.from(input);
  const sig =
    key.alg === "ES256" ? cryptoSign("sha256", data, { key: key.privateKey, dsaEncoding: "ieee-p1363" })
    : key.alg === "EdDSA" ? cryptoSign(null, data, key.privateKey)
    : cryptoSign("sha256", data, key.privateKey);
  return `${input}.${sig.toString("base64url")}`;
}
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks / TICKS_PER_S;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const keys = { ES256: keyPair("ES256", "es"), EdDSA: keyPair("EdDSA", "ed"), RS256: keyPair("RS256", "rs") };
const bindings = { JWT_SECRET: SECRET, JWT_PUBLIC_KEYS: JSON.stringify({ keys: Object.values(keys).map((k) => k.jwk) }) };
const tokenFor = (alg, room, sub) => {
  const claims = claimsFor({ sub, rooms: [room], ttlSeconds: 3600 });
  return alg === "HS256" ? mint({ secret: SECRET, claims }) : signed(keys[alg], claims);
};

// Cold start: a fresh workerd each time, time to the first admitted upgrade (median of 3).
const cold = { healthz: [], upgrade: [] };
for (let i = 0; i < 3; i++) {
  const started = performance.now();
  const w = await startWorker({ bindings });
  const ready = performance.now();
  const res = await w.http("/healthz");
  if (res.status !== 200) throw new Error(`healthz ${res.status}`);
  const healthz = performance.now();
  const room = uniqueRoom("cold");
  const { client } = await w.join(room, { token: tokenFor("ES256", room, "cold") });
  const joined = performance.now();
  client.close();
  await w.dispose();
  cold.healthz.push(healthz - started);
  cold.upgrade.push(joined - ready);
  void ready;
}

const w = await startWorker({ bindings });
const pids = workerdPids(process.pid);
const rows = [];
try {
  for (const alg of ["HS256", "ES256", "EdDSA", "RS256"]) {
    const room = uniqueRoom(`verify-${alg}`);
    const tokens = Array.from({ length: rounds }, (_, i) => tokenFor(alg, room, `u${i}`));
    // Warm-up: imports the key, JITs the paths.
    for (let i = 0; i < 20; i++) await w.http(`/ws/${room}`, { headers: { Authorization: `Bearer ${tokens[i % tokens.length]}` } });
    const times = [];
    const cpu0 = cpuSeconds(pids);
    for (const token of tokens) {
      const t0 = performance.now();
      const res = await w.http(`/ws/${room}`, { headers: { Authorization: `Bearer ${token}` } });
      times.push(performance.now() - t0);
      if (res.status !== 426) throw new Error(`${alg}: expected 426 upgrade_required, got ${res.status} ${res.text}`);
    }
    const cpuPerRequest = ((cpuSeconds(pids) - cpu0) / rounds) * 1000;
    // Full connect+join (edge + room), fewer rounds.
    const joins = [];
    const joinRounds = Math.max(10, Math.floor(rounds / 5));
    const joinRoom = uniqueRoom(`join-${alg}`);
    const cpu1 = cpuSeconds(pids);
    for (let i = 0; i < joinRounds; i++) {
      const { client, ms } = await w.join(joinRoom, { token: tokenFor(alg, joinRoom, `j${i}`) });
      joins.push(ms);
      // `leave` first: a socket that just closes stays `away` (resumable) and keeps its seat.
      client.send({ type: "leave", roomId: joinRoom });
      await client.closed;
    }
    const cpuPerJoin = ((cpuSeconds(pids) - cpu1) / joinRounds) * 1000;
    rows.push({ alg, p50: median(times), cpuPerRequest, joinP50: median(joins), cpuPerJoin });
  }
} finally {
  await w.dispose();
}

const wasm = readFileSync(`${BUILD_DIR}/index_bg.wasm`);
const { gzipSync } = await import("node:zlib");
console.log(`\nbuild: ${BUILD_DIR}`);
console.log(`Token verification per algorithm (${rounds} requests each, sequential, loopback; workerd CPU from /proc, 10 ms ticks)`);
console.log("alg    | GET /ws → 426 p50 | workerd CPU per request | vs HS256 | connect+join p50 | CPU per connect+join");
const hs = rows[0].cpuPerRequest;
for (const r of rows) {
  console.log(
    `${r.alg.padEnd(6)} | ${r.p50.toFixed(2).padStart(10)} ms     | ${r.cpuPerRequest.toFixed(3).padStart(12)} ms         | ${(r.cpuPerRequest - hs >= 0 ? "+" : "") + (r.cpuPerRequest - hs).toFixed(3)} ms | ${r.joinP50.toFixed(2).padStart(9)} ms      | ${r.cpuPerJoin.toFixed(3)} ms`,
  );
}
console.log(`cold start (fresh workerd, median of 3): start → /healthz answered ${median(cold.healthz).toFixed(0)} ms; ready → first ES256 upgrade joined ${median(cold.upgrade).toFixed(0)} ms`);
console.log(`wasm: ${wasm.length} bytes, ${gzipSync(wasm, { level: 9 }).length} bytes gzip`);
