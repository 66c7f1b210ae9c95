// Measurement-only Worker for bench/verify/run.mjs: verifies the same JWTs either in plain wasm
// (jwt-compact, bench/verify/wasm) or with WebCrypto (crypto.subtle.verify), n times per request.
//
//   GET /ping                              answers "ok" (cold-start probe)
//   GET /wasm?alg=ES256&n=200&tok=valid    n × jwt-compact validate() with a key parsed once
//   GET /wasm-import?alg=ES256&n=200       n × (parse key + validate()) in wasm (a cold key)
//   GET /webcrypto?alg=ES256&n=200         n × (parse JWT + crypto.subtle.verify), key imported once
//   GET /webcrypto-import?alg=ES256&n=200  n × (importKey("jwk") + parse JWT + verify) (a cold key)
//
// Answers JSON {ok, n}: ok = how many of the n verifications succeeded. `tok=bad` uses the token
// whose signature has one bit flipped. Test data (tokens, keys) comes from the DATA binding,
// written by run.mjs: { ALG: { valid, bad, wasmKey (base64), jwk } }.
//
// The wasm module may be an empty module (the "no wasm" cold-start baseline); then /wasm* fail.

import wasmModule from "./verify.wasm";

const ALG_CODE = { HS256: 1, ES256: 2, EdDSA: 3, RS256: 4 };
const FLAG_PARSE_KEY_EACH_TIME = 0x100;

// Instantiate at module load, as a workers-rs Worker does.
const hasVerify = WebAssembly.Module.exports(wasmModule).some((e) => e.name === "verify");
const wasm = hasVerify ? new WebAssembly.Instance(wasmModule, {}).exports : null;

const enc = new TextEncoder();
const dec = new TextDecoder();

function b64Bytes(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// WebCrypto parameters per JWS alg: [importKey algorithm, verify algorithm].
const ED25519 = { name: "Ed25519" };
const NODE_ED25519 = { name: "NODE-ED25519", namedCurve: "NODE-ED25519" };
const WEBCRYPTO = {
  HS256: [{ name: "HMAC", hash: "SHA-256" }, { name: "HMAC" }],
  ES256: [{ name: "ECDSA", namedCurve: "P-256" }, { name: "ECDSA", hash: "SHA-256" }],
  EdDSA: [ED25519, ED25519],
  RS256: [{ name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, { name: "RSASSA-PKCS1-v1_5" }],
};
let ed25519Name = null; // which Ed25519 spelling this workerd accepted

async function importJwk(alg, jwk) {
  const [imp] = WEBCRYPTO[alg];
  if (alg !== "EdDSA") return crypto.subtle.importKey("jwk", jwk, imp, false, ["verify"]);
  if (ed25519Name !== "NODE-ED25519") {
    try {
      const k = await crypto.subtle.importKey("jwk", jwk, ED25519, false, ["verify"]);
      ed25519Name = "Ed25519";
      return k;
    } catch (e) {
      if (ed25519Name === "Ed25519") throw e;
    }
  }
  ed25519Name = "NODE-ED25519";
  return crypto.subtle.importKey("jwk", jwk, NODE_ED25519, false, ["verify"]);
}

function verifyParams(alg) {
  if (alg === "EdDSA" && ed25519Name === "NODE-ED25519") return NODE_ED25519;
  return WEBCRYPTO[alg][1];
}

// What a server does with WebCrypto: split the compact JWS, check the header's alg, decode the
// signature, verify over "header.payload", then parse the claims.
async function webcryptoVerify(token, key, alg) {
  const d1 = token.indexOf(".");
  const d2 = token.indexOf(".", d1 + 1);
  if (d1 < 0 || d2 < 0 || token.indexOf(".", d2 + 1) >= 0) return false;
  let header;
  try {
    header = JSON.parse(dec.decode(b64Bytes(token.slice(0, d1))));
  } catch {
    return false;
  }
  if (header.alg !== alg) return false;
  const sig = b64Bytes(token.slice(d2 + 1));
  const ok = await crypto.subtle.verify(verifyParams(alg), key, sig, enc.encode(token.slice(0, d2)));
  if (!ok) return false;
  try {
    JSON.parse(dec.decode(b64Bytes(token.slice(d1 + 1, d2))));
  } catch {
    return false;
  }
  return true;
}

const warmKeys = new Map(); // alg -> CryptoKey (imported once)
const wasmKeys = new Map(); // alg -> Uint8Array

function wasmVerify(alg, token, n, coldKey) {
  if (!wasm) throw new Error("this build has no wasm verifier");
  let key = wasmKeys.get(alg);
  if (!key) wasmKeys.set(alg, (key = b64Bytes(DATA_OF(alg).wasmKey)));
  const tok = enc.encode(token);
  const tp = wasm.alloc(tok.length);
  const kp = wasm.alloc(key.length);
  new Uint8Array(wasm.memory.buffer, tp, tok.length).set(tok);
  new Uint8Array(wasm.memory.buffer, kp, key.length).set(key);
  const code = ALG_CODE[alg] | (coldKey ? FLAG_PARSE_KEY_EACH_TIME : 0);
  const ok = wasm.verify(code, tp, tok.length, kp, key.length, n);
  wasm.dealloc(tp, tok.length);
  wasm.dealloc(kp, key.length);
  return ok;
}

let DATA = null;
function DATA_OF(alg) {
  const d = DATA[alg];
  if (!d) throw new Error(`no test data for ${alg}`);
  return d;
}

export default {
  async fetch(request, env) {
    DATA ??= typeof env.DATA === "string" ? JSON.parse(env.DATA) : env.DATA;
    const url = new URL(request.url);
    if (url.pathname === "/ping") return new Response("ok");
    if (url.pathname === "/info") {
      return Response.json({ wasm: !!wasm, features: wasm ? wasm.features() : 0, ed25519Name });
    }
    const alg = url.searchParams.get("alg") ?? "ES256";
    const n = Math.max(0, parseInt(url.searchParams.get("n") ?? "1", 10) | 0);
    const which = url.searchParams.get("tok") === "bad" ? "bad" : "valid";
    try {
      const d = DATA_OF(alg);
      const token = d[which];
      let ok = 0;
      switch (url.pathname) {
        case "/wasm":
          ok = wasmVerify(alg, token, n, false);
          break;
        case "/wasm-import":
          ok = wasmVerify(alg, token, n, true);
          break;
        case "/webcrypto": {
          let key = warmKeys.get(alg);
          if (!key) warmKeys.set(alg, (key = await importJwk(alg, d.jwk)));
          for (let i = 0; i < n; i++) if (await webcryptoVerify(token, key, alg)) ok++;
          break;
        }
        case "/webcrypto-import":
          for (let i = 0; i < n; i++) {
            const key = await importJwk(alg, d.jwk);
            if (await webcryptoVerify(token, key, alg)) ok++;
          }
          break;
        default:
          return new Response("not found", { status: 404 });
      }
      return Response.json({ ok, n, ed25519Name });
    } catch (e) {
      return new Response(`error: ${e && e.stack ? e.stack : e}`, { status: 500 });
    }
  },
};
