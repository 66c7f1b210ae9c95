#!/usr/bin/env node
// JWT verification in workerd: jwt-compact in wasm vs WebCrypto. See bench/verify/README.md.
//
//   node bench/verify/run.mjs [--no-pin] [--reps 5] [--target-ms 80] [--skip-build]
//
// Builds the plain-wasm crate in bench/verify/wasm in three feature variants, makes keys and
// tokens with node:crypto, runs bench/verify/worker.mjs in Miniflare (workerd), checks every
// backend (n successes for a valid token, 0 for a token with one signature bit flipped), then
// prints µs per verification (wall and workerd CPU), the wasm sizes and the cold starts.
// Exits non-zero when a correctness check fails. Nothing is downloaded.

import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import zlib from "node:zlib";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const CRATE = path.join(HERE, "wasm");
const TARGET = path.join(CRATE, "target");
const OUT = path.join(TARGET, "bench");

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const PIN = !flag("--no-pin");
const REPS = opt("--reps", 5);
const TARGET_MS = opt("--target-ms", 80);
const COLD_REPS = opt("--cold-reps", 5);
const COMPAT_DATE = "2026-04-01";

const ALGS = ["HS256", "ES256", "EdDSA", "RS256"];
const BACKENDS = ["wasm", "wasm-import", "webcrypto", "webcrypto-import"];
const VARIANTS = [
  { name: "hs256", features: ["hs256"], algs: ["HS256"] },
  { name: "hs256+es256+eddsa", features: ["hs256", "es256", "eddsa"], algs: ["HS256", "ES256", "EdDSA"] },
  { name: "hs256+es256+eddsa+rs256", features: ["hs256", "es256", "eddsa", "rs256"], algs: ALGS },
];
const ALG_BIT = { HS256: 1 << 1, ES256: 1 << 2, EdDSA: 1 << 3, RS256: 1 << 4 };

const failures = [];
function check(cond, msg) {
  if (!cond) {
    failures.push(msg);
    console.error(`CHECK FAILED: ${msg}`);
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const gzip9 = (buf) => zlib.gzipSync(buf, { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1);
const log = (...a) => console.error("[bench]", ...a);

// ---------------------------------------------------------------------------------------------
// 1. Build the wasm variants.

function findBin(name) {
  for (const p of [path.join(ROOT, "node_modules/.bin", name), path.join(ROOT, "miniflare/node_modules/.bin", name)]) {
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function buildVariants() {
  const wasmOpt = findBin("wasm-opt");
  const metadce = findBin("wasm-metadce");
  fs.mkdirSync(OUT, { recursive: true });
  const built = [];
  for (const v of VARIANTS) {
    const t0 = now();
    if (!flag("--skip-build")) {
      execFileSync(
        "cargo",
        ["build", "--release", "--offline", "--target", "wasm32-unknown-unknown", "--no-default-features", "--features", v.features.join(",")],
        { cwd: CRATE, stdio: ["ignore", "ignore", "inherit"] },
      );
    }
    const dir = path.join(OUT, v.name);
    fs.mkdirSync(dir, { recursive: true });
    const raw = path.join(dir, "raw.wasm");
    // --skip-build reuses this variant's saved artifact (cargo's output is only the last variant).
    if (!flag("--skip-build") || !fs.existsSync(raw)) {
      fs.copyFileSync(path.join(TARGET, "wasm32-unknown-unknown/release/verify_bench.wasm"), raw);
    }
    const rawBuf = fs.readFileSync(raw);
    // Make sure the copied artifact is the variant we asked for.
    const inst = new WebAssembly.Instance(new WebAssembly.Module(rawBuf), stubImports(new WebAssembly.Module(rawBuf)));
    const want = v.algs.reduce((a, alg) => a | ALG_BIT[alg], 0);
    check(inst.exports.features() === want, `${v.name}: features() = ${inst.exports.features()}, expected ${want}`);

    // ed25519-compact's `random` feature pulls getrandom 0.4 + wasm-bindgen into the link, which
    // leaves __wbindgen_describe_* exports and placeholder imports in a raw cdylib (wasm-bindgen's
    // CLI would delete them). Keep only our own exports, as wasm-bindgen would, then -Os.
    let stripped = rawBuf;
    let strippedWith = "none (no wasm-metadce)";
    if (metadce) {
      const graph = path.join(dir, "graph.json");
      fs.writeFileSync(
        graph,
        JSON.stringify(["memory", "alloc", "dealloc", "features", "verify"].map((e) => ({ name: e, export: e, root: true }))),
      );
      const out = path.join(dir, "stripped.wasm");
      execFileSync(metadce, [raw, "--graph-file", graph, "-o", out], { stdio: ["ignore", "ignore", "inherit"] });
      stripped = fs.readFileSync(out);
      strippedWith = "wasm-metadce (keep only our exports)";
    }
    let final = stripped;
    let optWith = "none (wasm-opt not found)";
    if (wasmOpt) {
      const src = path.join(dir, metadce ? "stripped.wasm" : "raw.wasm");
      const out = path.join(dir, "opt.wasm");
      execFileSync(wasmOpt, ["-Os", src, "-o", out], { stdio: ["ignore", "ignore", "inherit"] });
      final = fs.readFileSync(out);
      optWith = `wasm-opt -Os (${path.relative(ROOT, wasmOpt)}, ${execFileSync(wasmOpt, ["--version"]).toString().trim()})`;
    }
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(final));
    check(imports.length === 0, `${v.name}: final wasm still imports ${JSON.stringify(imports)}`);
    // The Worker directory Miniflare loads: worker.mjs + verify.wasm (CompiledWasm rule).
    fs.copyFileSync(path.join(HERE, "worker.mjs"), path.join(dir, "worker.mjs"));
    fs.writeFileSync(path.join(dir, "verify.wasm"), final);
    built.push({
      ...v,
      dir,
      sizes: {
        raw: rawBuf.length,
        rawGz: gzip9(rawBuf),
        stripped: stripped.length,
        strippedGz: gzip9(stripped),
        final: final.length,
        finalGz: gzip9(final),
      },
      strippedWith,
      optWith,
      buildMs: now() - t0,
    });
    log(`built ${v.name} in ${((now() - t0) / 1000).toFixed(1)} s`);
  }
  // Baseline for cold start: the same Worker with an empty wasm module (the WebCrypto option
  // ships no verifier wasm at all).
  const none = path.join(OUT, "none");
  fs.mkdirSync(none, { recursive: true });
  fs.copyFileSync(path.join(HERE, "worker.mjs"), path.join(none, "worker.mjs"));
  fs.writeFileSync(path.join(none, "verify.wasm"), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  return { built, none: { name: "none (WebCrypto only, empty wasm)", dir: none, algs: [] } };
}

function stubImports(mod) {
  const imp = {};
  for (const { module, name, kind } of WebAssembly.Module.imports(mod)) {
    if (kind !== "function") continue;
    (imp[module] ??= {})[name] = () => {
      throw new Error(`stub import ${module}.${name} called`);
    };
  }
  return imp;
}

// ---------------------------------------------------------------------------------------------
// 2. Keys and tokens (node:crypto only).

const b64u = (buf) => Buffer.from(buf).toString("base64url");

function makeData() {
  const iat = Math.floor(Date.now() / 1000);
  const claims = { sub: "bench-user", aud: "edgesignal", room: "r-bench", iat, exp: iat + 3600 };
  const data = {};
  const mk = (alg, signFn) => {
    const input = `${b64u(JSON.stringify({ alg, typ: "JWT" }))}.${b64u(JSON.stringify(claims))}`;
    const sig = Buffer.from(signFn(Buffer.from(input)));
    const bad = Buffer.from(sig);
    bad[bad.length >> 1] ^= 0x10; // one signature bit flipped
    return { valid: `${input}.${b64u(sig)}`, bad: `${input}.${b64u(bad)}` };
  };

  const secret = crypto.randomBytes(32);
  data.HS256 = {
    ...mk("HS256", (m) => crypto.createHmac("sha256", secret).update(m).digest()),
    wasmKey: secret.toString("base64"),
    jwk: { kty: "oct", k: b64u(secret), alg: "HS256" },
  };

  const ec = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ecJwk = ec.publicKey.export({ format: "jwk" });
  data.ES256 = {
    // JWS ES256 signatures are raw r||s (IEEE P1363), which is also what WebCrypto takes.
    ...mk("ES256", (m) => crypto.sign("sha256", m, { key: ec.privateKey, dsaEncoding: "ieee-p1363" })),
    wasmKey: Buffer.concat([Buffer.from([4]), Buffer.from(ecJwk.x, "base64url"), Buffer.from(ecJwk.y, "base64url")]).toString("base64"),
    jwk: { kty: "EC", crv: "P-256", x: ecJwk.x, y: ecJwk.y },
  };

  const ed = crypto.generateKeyPairSync("ed25519");
  const edJwk = ed.publicKey.export({ format: "jwk" });
  data.EdDSA = {
    ...mk("EdDSA", (m) => crypto.sign(null, m, ed.privateKey)),
    wasmKey: Buffer.from(edJwk.x, "base64url").toString("base64"),
    jwk: { kty: "OKP", crv: "Ed25519", x: edJwk.x },
  };

  const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rsaJwk = rsa.publicKey.export({ format: "jwk" });
  const n = Buffer.from(rsaJwk.n, "base64url");
  const e = Buffer.from(rsaJwk.e, "base64url");
  const nLen = Buffer.alloc(4);
  nLen.writeUInt32BE(n.length);
  data.RS256 = {
    ...mk("RS256", (m) => crypto.sign("sha256", m, rsa.privateKey)), // PKCS#1 v1.5
    wasmKey: Buffer.concat([nLen, n, e]).toString("base64"),
    jwk: { kty: "RSA", n: rsaJwk.n, e: rsaJwk.e },
  };

  // Sanity: node verifies its own tokens (and refuses the flipped ones).
  const nodeOk = (alg, tok) => {
    const [h, p, s] = tok.split(".");
    const m = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s, "base64url");
    if (alg === "HS256") return crypto.timingSafeEqual(crypto.createHmac("sha256", secret).update(m).digest(), sig);
    if (alg === "ES256") return crypto.verify("sha256", m, { key: ec.publicKey, dsaEncoding: "ieee-p1363" }, sig);
    if (alg === "EdDSA") return crypto.verify(null, m, ed.publicKey, sig);
    return crypto.verify("sha256", m, rsa.publicKey, sig);
  };
  for (const alg of ALGS) {
    check(nodeOk(alg, data[alg].valid), `node refuses its own ${alg} token`);
    check(!nodeOk(alg, data[alg].bad), `node accepts the flipped ${alg} token`);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// 3. Miniflare + workerd process accounting.

async function loadMiniflare() {
  for (const base of [path.join(ROOT, "miniflare"), ROOT]) {
    try {
      const req = createRequire(path.join(base, "package.json"));
      const resolved = req.resolve("miniflare");
      const mod = await import(pathToFileURL(resolved).href);
      return { Miniflare: mod.Miniflare ?? mod.default.Miniflare, from: resolved };
    } catch {
      /* try the next location */
    }
  }
  throw new Error("miniflare not found in miniflare/node_modules or node_modules (run npm ci)");
}

function makeMf(Miniflare, dir, data) {
  return new Miniflare({
    modules: true,
    scriptPath: path.join(dir, "worker.mjs"),
    modulesRoot: dir,
    modulesRules: [
      { type: "ESModule", include: ["**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: COMPAT_DATE,
    bindings: { DATA: JSON.stringify(data) },
  });
}

function procStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // after ")": state(3) ppid(4) ... utime(14) stime(15) -> indexes 11, 12 here
    return { comm: s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")), ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function workerdPids() {
  const procs = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const st = procStat(d);
    if (st) procs.push({ pid: Number(d), ...st });
  }
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!mine.has(p.pid) && mine.has(p.ppid)) {
        mine.add(p.pid);
        grew = true;
      }
    }
  }
  return procs.filter((p) => p.pid !== process.pid && mine.has(p.pid) && p.comm.includes("workerd")).map((p) => p.pid);
}

const TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim() || 100);
const cpuMs = (pids) => pids.reduce((a, pid) => a + (procStat(pid)?.cpu ?? 0), 0) * TICK_MS;

async function get(mf, url) {
  const t0 = now();
  const res = await mf.dispatchFetch(`http://bench.local${url}`);
  const body = await res.text();
  const ms = now() - t0;
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}: ${body}`);
  return { ms, body: body.startsWith("{") ? JSON.parse(body) : body };
}

// ---------------------------------------------------------------------------------------------
// 4. Measurements.

async function correctness(mf, variant) {
  for (const alg of ALGS) {
    for (const be of BACKENDS) {
      if (be.startsWith("wasm") && !variant.algs.includes(alg)) continue;
      const v = await get(mf, `/${be}?alg=${alg}&n=3&tok=valid`);
      check(v.body.ok === 3, `${variant.name} ${be} ${alg}: valid token -> ${v.body.ok}/3`);
      const b = await get(mf, `/${be}?alg=${alg}&n=3&tok=bad`);
      check(b.body.ok === 0, `${variant.name} ${be} ${alg}: flipped-signature token -> ${b.body.ok}/3 accepted`);
    }
  }
}

async function perVerify(mf, pids, alg, be) {
  const url = (n) => `/${be}?alg=${alg}&n=${n}`;
  for (let i = 0; i < 3; i++) await get(mf, url(1)); // warm-up
  // Calibrate N so that one request does about TARGET_MS of verification: grow n by 4× until
  // the request takes at least TARGET_MS/4 more than n=1, then extrapolate.
  const base = median([(await get(mf, url(1))).ms, (await get(mf, url(1))).ms, (await get(mf, url(1))).ms]);
  let n = 16;
  let N = 0;
  for (;;) {
    // min of two: one GC pause or scheduler hiccup must not end the search early
    const t = Math.min((await get(mf, url(n))).ms, (await get(mf, url(n))).ms);
    if (t - base >= TARGET_MS / 4 || n >= 1 << 20) {
      N = Math.max(16, Math.min(1 << 21, Math.round((TARGET_MS * (n - 1)) / Math.max(t - base, 0.001))));
      break;
    }
    n *= 4;
  }
  await get(mf, url(N)); // warm-up at size (tier-up of the hot loop)
  const walls = [];
  let cpu1 = 0;
  let cpuN = 0;
  for (let r = 0; r < REPS; r++) {
    let c0 = cpuMs(pids);
    const one = await get(mf, url(1));
    let c1 = cpuMs(pids);
    cpu1 += c1 - c0;
    c0 = cpuMs(pids);
    const many = await get(mf, url(N));
    c1 = cpuMs(pids);
    cpuN += c1 - c0;
    check(many.body.ok === N, `${be} ${alg}: ${many.body.ok}/${N} succeeded`);
    walls.push(((many.ms - one.ms) / (N - 1)) * 1000);
  }
  const cpuUs = pids.length ? ((cpuN - cpu1) / (REPS * (N - 1))) * 1000 : NaN;
  return { N, wallUs: median(walls), wallMinUs: Math.min(...walls), wallMaxUs: Math.max(...walls), cpuUs, cpuTotalMs: cpuN };
}

async function coldStart(Miniflare, v, data) {
  // Fresh isolate: the first verification also pays V8's lazy compilation of the wasm functions
  // it touches (or WebCrypto's first use, for the baseline).
  const be = v.algs.length ? "wasm" : "webcrypto";
  const ready = [];
  const ping = [];
  const hs = [];
  const es = [];
  for (let i = 0; i < COLD_REPS; i++) {
    const t0 = now();
    const mf = makeMf(Miniflare, v.dir, data);
    await mf.ready;
    const t1 = now();
    await get(mf, "/ping");
    const t2 = now();
    const r = await get(mf, `/${be}?alg=HS256&n=1`);
    check(r.body.ok === 1, `${v.name} cold: first HS256 verify failed`);
    hs.push(r.ms);
    if (!v.algs.length || v.algs.includes("ES256")) {
      const r2 = await get(mf, `/${be}?alg=ES256&n=1`);
      check(r2.body.ok === 1, `${v.name} cold: first ES256 verify failed`);
      es.push(r2.ms);
    }
    await mf.dispose();
    ready.push(t1 - t0);
    ping.push(t2 - t0);
  }
  return { ready: median(ready), ping: median(ping), hs: median(hs), es: es.length ? median(es) : NaN, be };
}

function pin(pids) {
  if (!PIN || os.cpus().length < 2) return "not pinned";
  try {
    execFileSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
    for (const pid of pids) execFileSync("taskset", ["-a", "-p", "-c", "1", String(pid)], { stdio: "ignore" });
    return "node on CPU 0, workerd on CPU 1 (taskset)";
  } catch (e) {
    return `not pinned (${e.message.split("\n")[0]})`;
  }
}

// Cold starts run unpinned (a fresh workerd inherits node's affinity).
function unpin() {
  if (!PIN || os.cpus().length < 2) return;
  try {
    execFileSync("taskset", ["-a", "-p", "-c", `0-${os.cpus().length - 1}`, String(process.pid)], { stdio: "ignore" });
  } catch {
    /* ignore */
  }
}

// ---------------------------------------------------------------------------------------------

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
function table(head, rows) {
  const w = head.map((h, i) => Math.max(String(h).length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 || typeof c === "string" && !/^[\d.,\-–]+$/.test(c) ? pad(c, w[i]) : lpad(c, w[i]))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}
const f1 = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : "n/a");

async function main() {
  const tStart = now();
  const { Miniflare, from } = await loadMiniflare();
  log(`miniflare from ${path.relative(ROOT, from)}`);
  const { built, none } = buildVariants();
  const data = makeData();
  const full = built[built.length - 1];

  // Per-verification cost, in the variant with every algorithm.
  const mf = makeMf(Miniflare, full.dir, data);
  await mf.ready;
  await get(mf, "/ping");
  const pids = workerdPids();
  const pinned = pin(pids);
  log(`workerd pid(s): ${pids.join(", ") || "not found"}; ${pinned}`);
  for (const v of built) {
    if (v === full) {
      await correctness(mf, v);
    } else {
      const m2 = makeMf(Miniflare, v.dir, data);
      await m2.ready;
      await correctness(m2, v);
      await m2.dispose();
    }
  }
  const info = (await get(mf, "/webcrypto?alg=EdDSA&n=1")).body;
  const results = [];
  for (const alg of ALGS) {
    for (const be of BACKENDS) {
      const r = await perVerify(mf, pids, alg, be);
      results.push({ alg, be, ...r });
      log(`${alg} ${be}: ${f1(r.wallUs)} µs wall, ${f1(r.cpuUs)} µs CPU (N=${r.N})`);
    }
  }
  await mf.dispose();
  unpin();

  // Cold starts: a fresh Miniflare (fresh workerd) per sample; one discarded warm-up start.
  {
    const w = makeMf(Miniflare, none.dir, data);
    await w.ready;
    await w.dispose();
  }
  const colds = [];
  for (const v of [none, ...built]) {
    colds.push({ v, ...(await coldStart(Miniflare, v, data)) });
    log(`cold ${v.name}: ready ${f1(colds.at(-1).ready)} ms`);
  }

  // ----- report (stdout) -----
  const out = [];
  out.push(`# JWT verification in workerd: jwt-compact 0.8.0 (wasm) vs WebCrypto`);
  out.push(
    `node ${process.version}, miniflare ${createRequire(from)("../../package.json").version}, ${os.cpus().length} × ${os.cpus()[0].model.trim()}; ${pinned}`,
  );
  out.push(
    `µs per verification = (wall(n=N) − wall(n=1)) / (N−1), median of ${REPS} after warm-up; CPU = workerd utime+stime over the same requests (clock tick ${TICK_MS} ms, summed over ${REPS} reps). Ed25519 in WebCrypto as "${info.ed25519Name}". RSA key 2048 bits.`,
  );
  out.push(`wasm column: the ${full.name} build (${full.optWith.split(" (")[0]}); key parsed once per request, token parsed every time.`);
  out.push("");
  out.push(
    table(
      ["alg", "backend", "µs/verify wall", "(min–max)", "µs/verify CPU", "N"],
      results.map((r) => [r.alg, r.be, f1(r.wallUs), `${f1(r.wallMinUs)}–${f1(r.wallMaxUs)}`, f1(r.cpuUs), String(r.N)]),
    ),
  );
  out.push("");
  out.push("backends: wasm = jwt-compact validator().validate() with a parsed key; wasm-import = key parsed in wasm for every token;");
  out.push("          webcrypto = split + header/claims JSON + crypto.subtle.verify, key imported once; webcrypto-import = importKey(\"jwk\") for every token.");
  out.push("");
  out.push("## ratio wasm / webcrypto (wall, warm key)");
  out.push(
    table(
      ["alg", "wasm µs", "webcrypto µs", "wasm ÷ webcrypto"],
      ALGS.map((alg) => {
        const w = results.find((r) => r.alg === alg && r.be === "wasm");
        const c = results.find((r) => r.alg === alg && r.be === "webcrypto");
        return [alg, f1(w.wallUs), f1(c.wallUs), `${(w.wallUs / c.wallUs).toFixed(1)}×`];
      }),
    ),
  );
  out.push("");
  out.push(`## wasm size (verifier alone: jwt-compact + serde_json, no workers-rs; KiB)`);
  out.push(`raw = cargo cdylib; stripped = ${built[0].strippedWith}; final = stripped + ${built[0].optWith}`);
  out.push(
    table(
      ["variant", "raw", "raw gz-9", "stripped", "stripped gz-9", "final", "final gz-9", "Δ final gz vs hs256"],
      built.map((v) => [
        v.name,
        kb(v.sizes.raw),
        kb(v.sizes.rawGz),
        kb(v.sizes.stripped),
        kb(v.sizes.strippedGz),
        kb(v.sizes.final),
        kb(v.sizes.finalGz),
        `+${kb(v.sizes.finalGz - built[0].sizes.finalGz)}`,
      ]),
    ),
  );
  out.push("");
  out.push(`## cold start (fresh Miniflare + workerd each time, median of ${COLD_REPS}; ms)`);
  out.push(
    table(
      ["variant", "final gz KiB", "new Miniflare→ready", "→first /ping answered", "then 1st HS256 verify req", "then 1st ES256 verify req"],
      colds.map((c) => [`${c.v.name}`, c.v.sizes ? kb(c.v.sizes.finalGz) : "0.0", f1(c.ready), f1(c.ping), `${f1(c.hs)} (${c.be})`, Number.isFinite(c.es) ? `${f1(c.es)} (${c.be})` : "n/a"]),
    ),
  );
  out.push("");
  out.push(`total run ${((now() - tStart) / 1000).toFixed(1)} s; checks: ${failures.length ? `${failures.length} FAILED` : "all passed"}`);
  console.log(out.join("\n"));
  if (failures.length) {
    console.error(failures.join("\n"));
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
