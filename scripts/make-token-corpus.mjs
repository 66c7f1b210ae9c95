#!/usr/bin/env node
// Writes tests/fixtures/token-attacks.json: named token attacks, each signed with the test-only keys
// of tests/fixtures/keys so that the named defect is the only thing wrong with it, plus one valid
// control token per algorithm. The native tests (tests/token_attacks.rs) and the workerd tests
// (miniflare/test/token-attacks.test.mjs) replay it: every case must be refused `unauthorized` in
// every placement, and no case may reach a Durable Object.
//
//   node scripts/make-token-corpus.mjs          # write the fixture
//   node scripts/make-token-corpus.mjs --check  # check the committed fixture (below); writes nothing
//
// --check verifies, with node:crypto only: each control against the dev JWKS / secret; the
// fixture's config against tests/fixtures/keys/dev-jwks.json; every case with a strict reference
// verifier written from docs/protocol.md §2, which must refuse it for exactly the defects this
// script meant it to have (so a case is never refused by accident, e.g. for a forgotten kid or a
// wrong iss, when it claims to test `crit`); `placements` (given exactly when a token is not an
// RFC 7230 token, so cannot be a subprotocol); and that the fixture is what this script makes
// (every deterministic token — HMAC, EdDSA, RS256 — byte for byte; ES256 ones are randomized).
//
// Signatures: ES256 is randomized (each run makes new ES256 tokens); HS256, EdDSA and RS256
// (PKCS#1 v1.5) are deterministic. Claims use a fixed iat and exp 4102444800 (2100-01-01).
import { createHmac, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KEYS_DIR, asymmetricSignature, loadDevKey, publicJwk, publicJwks } from "../miniflare/lib/jwt.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "tests", "fixtures", "token-attacks.json");
const SECRET = "edgesignal-dev-secret-change-me-0123456789abcdef";
const ISSUER = "https://issuer.test";
const AUDIENCE = "edgesignal";
const ROOM = "lobby";
const EXP = 4102444800; // 2100-01-01: "otherwise valid" tokens never expire
const IAT = 1767225600; // 2026-01-01
const MAX_TOKEN_BYTES = 8192; // docs/protocol.md §2
/** RFC 7230 `tchar`: what a `Sec-WebSocket-Protocol` entry (`bearer.<jwt>`) may be made of. */
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const P256_ORDER = Buffer.from("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", "hex");

const key = {
  es: loadDevKey("dev-es256"),
  ed: loadDevKey("dev-eddsa"),
  rs: loadDevKey("dev-rs256"),
  attackerEs: loadDevKey("attacker-es256"),
  attackerRs: loadDevKey("attacker-rs256"),
};
const ALG_KEY = { ES256: key.es, EdDSA: key.ed, RS256: key.rs };

const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
/** A header or payload part: an object (JSON), a string (raw JSON text) or a Buffer (raw bytes). */
const part = (p) => b64(Buffer.isBuffer(p) ? p : typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(JSON.stringify(p)));
/** The valid claim set, with `extra` merged over it (`undefined` removes a claim). */
const claims = (extra = {}) => {
  const c = { sub: "corpus-user", rooms: [ROOM], iss: ISSUER, aud: AUDIENCE, iat: IAT, exp: EXP, ...extra };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
};
/** The valid claims as JSON text with `"name":value` replaced by raw JSON text `raw`. */
const claimsText = (name, raw) => {
  const text = JSON.stringify(claims({ [name]: 0 }));
  if (!text.includes(`"${name}":0`)) throw new Error(`claimsText: no ${name}`);
  return text.replace(`"${name}":0`, `"${name}":${raw}`);
};
/** Signs `header.payload` with `jwk` as `signAlg` (default: the key's own alg, whatever the header says). */
function signed(jwk, header, payload, signAlg = jwk.alg) {
  const input = `${part(header)}.${part(payload)}`;
  return `${input}.${asymmetricSignature(input, jwk, signAlg)}`;
}
function hs(secret, header, payload, digest = "sha256") {
  const input = `${part(header)}.${part(payload)}`;
  return `${input}.${createHmac(digest, secret).update(input).digest("base64url")}`;
}
const headerOf = (jwk, extra = {}) => ({ alg: jwk.alg, typ: "JWT", kid: jwk.kid, ...extra });
const HS_HEADER = { alg: "HS256", typ: "JWT" };
const valid = (alg, extraClaims = {}) =>
  alg === "HS256" ? hs(SECRET, HS_HEADER, claims(extraClaims)) : signed(ALG_KEY[alg], headerOf(ALG_KEY[alg]), claims(extraClaims));
const parts = (token) => token.split(".");
const withSignature = (token, sigB64) => `${parts(token)[0]}.${parts(token)[1]}.${sigB64}`;
function flipBit(token) {
  const sig = Buffer.from(parts(token)[2], "base64url");
  sig[sig.length >> 1] ^= 0x01;
  return withSignature(token, b64(sig));
}

/**
 * Every case with the defects the reference verifier (below) must find in it, exactly:
 * size, shape, utf8, json, duplicate, alg, crit, kid, signature, claim:<name>.
 */
function build() {
  const cases = [];
  const defects = new Map();
  const add = (name, why, token, found) => {
    if (defects.has(name)) throw new Error(`duplicate case name ${name}`);
    cases.push({ name, why, token, expect: "unauthorized", ...(TOKEN_CHARS.test(token) ? {} : { placements: ["header", "query"] }) });
    defects.set(name, found);
  };

  // alg: none, missing, mistyped, unknown
  for (const none of ["none", "None", "NONE", "nOnE"]) {
    const h = part({ alg: none, typ: "JWT" });
    const p = part(claims());
    add(`alg ${none}, empty signature`, "RFC 8725 §2.1: an unsecured JWT is never accepted", `${h}.${p}.`, ["alg"]);
    add(`alg ${none}, a valid ES256 signature kept`, "RFC 8725 §2.1: the signature of another header proves nothing", `${h}.${p}.${parts(valid("ES256"))[2]}`, ["alg"]);
    add(`alg ${none}, no signature part`, "RFC 7515 §7.1: a compact JWS has three parts, even unsecured", `${h}.${p}`, ["shape"]);
  }
  add("alg missing", "RFC 7515 §4.1.1: alg is required", signed(key.es, { typ: "JWT", kid: "dev-es256" }, claims()), ["alg"]);
  add("alg a number", "alg must be a string", signed(key.es, { alg: 256, typ: "JWT", kid: "dev-es256" }, claims()), ["alg"]);
  add("alg null", "alg must be a string", signed(key.es, { alg: null, typ: "JWT", kid: "dev-es256" }, claims()), ["alg"]);
  add("alg an array", "alg must be a string", signed(key.es, { alg: ["ES256"], typ: "JWT", kid: "dev-es256" }, claims()), ["alg"]);
  add("alg es256 (lower case)", "algorithm names are case-sensitive (RFC 7518 §3.1)", signed(key.es, headerOf(key.es, { alg: "es256" }), claims()), ["alg"]);
  add("HS384 with the right secret", "RFC 8725 §3.1: only HS256 is accepted for the secret", hs(SECRET, { alg: "HS384", typ: "JWT" }, claims(), "sha384"), ["alg"]);
  add("HS512 with the right secret", "RFC 8725 §3.1: only HS256 is accepted for the secret", hs(SECRET, { alg: "HS512", typ: "JWT" }, claims(), "sha512"), ["alg"]);
  {
    const rsPrivate = createPrivateKey({ key: key.rs, format: "jwk" });
    const rs512 = `${part(headerOf(key.rs, { alg: "RS512" }))}.${part(claims())}`;
    add("RS512 by the RS256 key", "RFC 8725 §3.1: a key verifies only its own algorithm", `${rs512}.${b64(cryptoSign("sha512", Buffer.from(rs512), rsPrivate))}`, ["alg"]);
    const pss = `${part(headerOf(key.rs, { alg: "PS256" }))}.${part(claims())}`;
    const pssSig = cryptoSign("sha256", Buffer.from(pss), { key: rsPrivate, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 });
    add("PS256 by the RS256 key", "RFC 8725 §3.1: a key verifies only its own algorithm", `${pss}.${b64(pssSig)}`, ["alg"]);
  }
  add("ES384 header over an ES256 signature", "RFC 8725 §3.1: a key verifies only its own algorithm", signed(key.es, headerOf(key.es, { alg: "ES384" }), claims()), ["alg"]);
  add("ES256K header over an ES256 signature", "RFC 8725 §3.1: a key verifies only its own algorithm", signed(key.es, headerOf(key.es, { alg: "ES256K" }), claims()), ["alg"]);
  add("EdDSA signature under the ES256 key's kid", "RFC 8725 §3.1: kid never makes a key verify another algorithm", signed(key.ed, headerOf(key.ed, { kid: "dev-es256" }), claims()), ["kid"]);

  // Algorithm confusion: HS256 keyed with public key material
  {
    const rsPublic = createPublicKey({ key: publicJwk(key.rs), format: "jwk" });
    const esPublic = createPublicKey({ key: publicJwk(key.es), format: "jwk" });
    const secrets = {
      "RS256 public key as SPKI PEM": [rsPublic.export({ type: "spki", format: "pem" }), "dev-rs256"],
      "RS256 public key as PKCS#1 PEM": [rsPublic.export({ type: "pkcs1", format: "pem" }), "dev-rs256"],
      "RS256 public JWK text": [JSON.stringify(publicJwk(key.rs)), "dev-rs256"],
      "RS256 modulus bytes": [Buffer.from(key.rs.n, "base64url"), "dev-rs256"],
      "ES256 public key as SPKI PEM": [esPublic.export({ type: "spki", format: "pem" }), "dev-es256"],
      "ES256 public point (SEC1)": [esPublic.export({ type: "spki", format: "der" }).subarray(-65), "dev-es256"],
    };
    for (const [what, [secret, kid]] of Object.entries(secrets)) {
      add(`HS256 keyed with the ${what}, with its kid`, "RFC 8725 §2.1 algorithm confusion: the only HMAC key is JWT_SECRET; that kid's key is not HS256", hs(secret, { ...HS_HEADER, kid }, claims()), ["kid"]);
      add(`HS256 keyed with the ${what}, no kid`, "RFC 8725 §2.1 algorithm confusion: the only HMAC key is JWT_SECRET", hs(secret, HS_HEADER, claims()), ["signature"]);
    }
  }

  // Signatures: psychic, wrong encodings, stripped, swapped, flipped
  {
    const es = valid("ES256");
    const input = `${parts(es)[0]}.${parts(es)[1]}`;
    add("ES256 psychic signature: r = s = 0", "CVE-2022-21449: an all-zero signature must never verify", withSignature(es, b64(Buffer.alloc(64))), ["signature"]);
    add("ES256 r = s = n (the curve order)", "CVE-2022-21449: r and s must be in [1, n-1]", withSignature(es, b64(Buffer.concat([P256_ORDER, P256_ORDER]))), ["signature"]);
    const der = cryptoSign("sha256", Buffer.from(input), { key: createPrivateKey({ key: key.es, format: "jwk" }), dsaEncoding: "der" });
    add("ES256 signature DER-encoded", "JWS ES256 signatures are raw r||s, 64 bytes (RFC 7518 §3.4)", withSignature(es, b64(der)), ["signature"]);
    add("EdDSA signature all zeros", "an all-zero signature must never verify", withSignature(valid("EdDSA"), b64(Buffer.alloc(64))), ["signature"]);
    add("signature stripped (h.p.)", "a signature is required", `${input}.`, ["signature"]);
    add("no signature part (h.p)", "RFC 7515 §7.1: three parts are required", input, ["shape"]);
    add("signature of another valid token", "a signature covers its own header and payload", withSignature(es, parts(valid("ES256", { sub: "someone-else" }))[2]), ["signature"]);
    for (const alg of ["HS256", "ES256", "EdDSA", "RS256"]) add(`${alg} signature with one bit flipped`, "a tampered signature fails", flipBit(valid(alg)), ["signature"]);
    const rs = parts(valid("RS256"))[2];
    add("RS256 signature one byte short", "an RS256 signature is as long as the modulus (RFC 8017 §8.2.2)", withSignature(valid("RS256"), b64(Buffer.from(rs, "base64url").subarray(1))), ["signature"]);
  }

  // Structure
  {
    const es = valid("ES256");
    const [h, p, s] = parts(es);
    // Cuts at a 4-character boundary, so the cut parts are still canonical base64url.
    add("truncated in the payload", "a cut token does not verify (its payload is no longer JSON)", `${h}.${p.slice(0, (p.length & ~3) - 8)}.${s}`, ["json"]);
    add("truncated in the signature", "a cut token does not verify", `${h}.${p}.${s.slice(0, 76)}`, ["signature"]);
    add("only the header", "RFC 7515 §7.1: one part is not a JWS", h, ["shape"]);
    add("four parts", "RFC 7515 §7.1: a JWS compact serialization has exactly three parts", `${es}.${s}`, ["shape"]);
    add("five parts (JWE-shaped, with enc)", "RFC 7516: encrypted tokens are not accepted", `${part({ alg: "RSA-OAEP", enc: "A256GCM", kid: "dev-rs256" })}.${b64(Buffer.alloc(32, 1))}.${b64(Buffer.alloc(12, 2))}.${p}.${b64(Buffer.alloc(16, 3))}`, ["shape"]);
    add("base64 padding '=' on every part", "RFC 7515 §2: JWS uses unpadded base64url", `${h}==.${p}=.${s}==`, ["shape"]);
    // Deterministic (EdDSA): find claims whose token has both '-' and '_' (→ '+' and '/'), and one with '-' only.
    const withChars = (want) => {
      for (let nonce = 0; nonce < 10_000; nonce++) {
        const t = valid("EdDSA", { nonce });
        if (want(t)) return t;
      }
      throw new Error("no token with the wanted base64url characters");
    };
    const both = withChars((t) => t.includes("-") && t.includes("_"));
    add("standard base64 ('+' and '/') instead of base64url", "RFC 7515 §2: JWS uses base64url", both.replaceAll("-", "+").replaceAll("_", "/"), ["shape"]);
    const plusOnly = withChars((t) => t.includes("-") && !t.includes("_"));
    add("standard base64 '+' only (still a valid subprotocol token)", "RFC 7515 §2: JWS uses base64url", plusOnly.replaceAll("-", "+"), ["shape"]);
    add("whitespace inside the token", "a token is one unbroken string", `${h}.${p.slice(0, 20)} ${p.slice(20)}.${s}`, ["shape"]);
    add("header not JSON", "RFC 7515 §5.2: the header must be a JSON object", signed(key.es, "not json at all", claims()), ["json"]);
    add("header a JSON array", "RFC 7515 §5.2: the header must be a JSON object", signed(key.es, '["ES256","dev-es256"]', claims()), ["json"]);
    add("payload a JSON string", "RFC 7519 §7.2: the claims must be a JSON object", signed(key.es, headerOf(key.es), '"corpus-user"'), ["json"]);
    add("payload a JSON array", "RFC 7519 §7.2: the claims must be a JSON object", signed(key.es, headerOf(key.es), "[]"), ["json"]);
  }

  // kid
  add("unknown kid", "no configured key has it; JWT_PUBLIC_KEYS is pinned, nothing is fetched", signed(key.es, headerOf(key.es, { kid: "nope" }), claims()), ["kid"]);
  add("ES256 token with the RS256 key's kid", "RFC 8725 §3.1: kid never makes a key verify another algorithm", signed(key.es, headerOf(key.es, { kid: "dev-rs256" }), claims()), ["kid"]);
  for (const [label, kid] of [
    ["path traversal to /dev/null", "../../../../dev/null"],
    ["SQL injection", "' OR '1'='1"],
    ["path traversal to /etc/passwd", "../../../../../../etc/passwd"],
    ["a NUL byte", "\u0000"],
  ]) {
    add(`kid ${label}, signed by the attacker's key`, "RFC 8725 §3.10: kid is only compared to configured kids, never used as a path or query", signed(key.attackerEs, headerOf(key.attackerEs, { kid }), claims()), ["kid"]);
    // No configured key has this kid, so (docs/protocol.md §2) an HS256 token falls back to the one HS256 key: JWT_SECRET.
    add(`kid ${label}, HS256 with an empty secret`, "RFC 8725 §3.10: kid never selects an HMAC secret", hs("", { ...HS_HEADER, kid }, claims()), ["signature"]);
    add(`kid ${label}, HS256 with the secret "null"`, "RFC 8725 §3.10: kid never selects an HMAC secret", hs("null", { ...HS_HEADER, kid }, claims()), ["signature"]);
  }
  add("kid of 10 KB, signed by the attacker's key", "an oversized header; tokens over 8 KiB are refused unread", signed(key.attackerEs, headerOf(key.attackerEs, { kid: "k".repeat(10_000) }), claims()), ["size", "kid"]);
  add("kid a number", "kid must be a string (RFC 7515 §4.1.4)", signed(key.es, headerOf(key.es, { kid: 7 }), claims()), ["kid"]);
  add("kid an object", "kid must be a string (RFC 7515 §4.1.4)", signed(key.es, headerOf(key.es, { kid: { $ne: null } }), claims()), ["kid"]);

  // Keys named by the token
  const ATTACKER_JWKS = "https://attacker.example/jwks.json";
  add("jku to the attacker's JWKS", "RFC 8725 §3.10: jku is never used to find a key", signed(key.attackerEs, headerOf(key.attackerEs, { jku: ATTACKER_JWKS }), claims()), ["kid"]);
  add("x5u to the attacker's URL", "RFC 8725 §3.10: x5u is never used to find a key", signed(key.attackerRs, headerOf(key.attackerRs, { x5u: ATTACKER_JWKS }), claims()), ["kid"]);
  add("jwk header with the attacker's public key", "an embedded key is never trusted (CVE-2018-0114)", signed(key.attackerEs, headerOf(key.attackerEs, { jwk: publicJwk(key.attackerEs) }), claims()), ["kid"]);
  add("jwk header with the attacker's key under a dev kid", "an embedded key is never trusted; kid selects a configured key (CVE-2018-0114)", signed(key.attackerEs, headerOf(key.attackerEs, { kid: "dev-es256", jwk: publicJwk(key.attackerEs) }), claims()), ["signature"]);
  {
    // Looks like a DER certificate (SEQUENCE, 0x0128 bytes: "MIIBKD…") but is filler.
    const cert = Buffer.concat([Buffer.from([0x30, 0x82, 0x01, 0x28]), Buffer.alloc(0x128, 7)]).toString("base64");
    add("x5c with a certificate blob", "RFC 8725 §3.10: x5c is never used to find a key", signed(key.attackerRs, headerOf(key.attackerRs, { x5c: [cert] }), claims()), ["kid"]);
  }

  // crit: this service understands no extension
  for (const [label, extra] of [
    ['crit ["exp"]', { crit: ["exp"] }],
    ['crit ["b64"] with b64 false', { crit: ["b64"], b64: false }],
    ['crit ["unknown-ext"]', { crit: ["unknown-ext"], "unknown-ext": true }],
    ["crit an empty array", { crit: [] }],
    ["crit not an array", { crit: "exp" }],
  ]) {
    add(label, "RFC 7515 §4.1.11: an extension that is not understood (or a malformed crit) is refused", signed(key.es, headerOf(key.es, extra), claims()), ["crit"]);
  }

  // Claims (docs/protocol.md §2 Claims)
  for (const [label, extra, claim] of [
    ["expired (exp 2020)", { exp: 1577836800 }, "exp"],
    ["exp a string", { exp: String(EXP) }, "exp"],
    ["exp missing", { exp: undefined }, "exp"],
    ["nbf in 2099", { nbf: 4070908800 }, "nbf"],
    ["iat in 2099", { iat: 4070908800 }, "iat"],
    ["wrong iss", { iss: "https://evil.test" }, "iss"],
    ["iss missing", { iss: undefined }, "iss"],
    ["wrong aud", { aud: "someone-else" }, "aud"],
    ["aud array without ours", { aud: ["a", "b"] }, "aud"],
    ["sub missing", { sub: undefined }, "sub"],
    ["sub empty", { sub: "" }, "sub"],
    ["sub a number", { sub: 42 }, "sub"],
  ]) {
    add(label, "RFC 7519 §4.1 and docs/protocol.md §2: the claims must hold", signed(key.es, headerOf(key.es), claims(extra)), [`claim:${claim}`]);
  }
  add("exp 1e400", "a number out of range is not a NumericDate", signed(key.es, headerOf(key.es), claimsText("exp", "1e400")), ["claim:exp"]);
  add("exp 2^64 (18446744073709551616)", "a number out of range is not a NumericDate (no wrapping or saturating)", signed(key.es, headerOf(key.es), claimsText("exp", "18446744073709551616")), ["claim:exp"]);
  add("exp -1e20", "a number out of range is not a NumericDate", signed(key.es, headerOf(key.es), claimsText("exp", "-1e20")), ["claim:exp"]);
  add("nbf 1e308", "a number out of range is not a NumericDate", signed(key.es, headerOf(key.es), claimsText("nbf", "1e308")), ["claim:nbf"]);

  // Size, duplicate keys, encoding
  add("oversized: a 20 KB claim, validly signed", "tokens over 8 KiB are refused unread", signed(key.es, headerOf(key.es), claims({ pad: "x".repeat(20_000) })), ["size"]);
  add("oversized: a 9 KB claim, validly signed", "tokens over 8 KiB are refused unread", signed(key.es, headerOf(key.es), claims({ pad: "x".repeat(9_000) })), ["size"]);
  const esHeaderText = (first, last) => `{"alg":"${first}","typ":"JWT","kid":"dev-es256","alg":"${last}"}`;
  const dupWhy = "RFC 8725 §3.1 / RFC 7515 §5.2: duplicate keys mean different things to different parsers";
  add("header with two alg (ES256 twice)", dupWhy, signed(key.es, esHeaderText("ES256", "ES256"), claims()), ["duplicate"]);
  add('header {"alg":"none", …, "alg":"ES256"}', dupWhy, signed(key.es, esHeaderText("none", "ES256"), claims()), ["duplicate"]);
  // A last-wins reader sees alg none here: both defects.
  add('header {"alg":"ES256", …, "alg":"none"}', dupWhy, signed(key.es, esHeaderText("ES256", "none"), claims()), ["duplicate", "alg"]);
  add("payload with two sub", dupWhy, signed(key.es, headerOf(key.es), JSON.stringify(claims()).replace('"sub":"corpus-user"', '"sub":"corpus-user","sub":"admin"')), ["duplicate"]);
  add("payload with two exp (2020, then 2100)", dupWhy, signed(key.es, headerOf(key.es), JSON.stringify(claims()).replace(`"exp":${EXP}`, `"exp":1577836800,"exp":${EXP}`)), ["duplicate"]);
  add("non-UTF-8 bytes in the header", "RFC 7515 §5.2 / RFC 8259 §8.1: JSON text is UTF-8", signed(key.es, Buffer.concat([Buffer.from('{"alg":"ES256","typ":"JWT","kid":"dev-es256","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), claims()), ["utf8"]);
  add("non-UTF-8 bytes in the payload", "RFC 7519 §7.2 / RFC 8259 §8.1: JSON text is UTF-8", signed(key.es, headerOf(key.es), Buffer.concat([Buffer.from(JSON.stringify(claims()).slice(0, -1) + ',"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])), ["utf8"]);

  const controls = ["HS256", "ES256", "EdDSA", "RS256"].map((alg) => ({ name: `valid ${alg}`, token: valid(alg) }));
  const fixture = {
    about:
      "Token attacks for edgesignal's edge, after RFC 8725. Each case is signed with the test-only keys of tests/fixtures/keys (dev keys with their kid, sub \"corpus-user\", rooms [\"lobby\"], the config's iss and aud, iat 2026-01-01, exp 2100-01-01) so that its named defect is the only thing wrong with it; every case must be refused `unauthorized` (HTTP 401, close 4401) in every placement (Authorization: Bearer <jwt>; Sec-WebSocket-Protocol: signal.v1, bearer.<jwt>; ?token=<jwt>, percent-encoded by the test) unless `placements` narrows it to [\"header\", \"query\"] (a token with characters outside the RFC 7230 token characters cannot be a subprotocol), and none may reach a Durable Object. `controls` are valid tokens (one per algorithm) for the same config and room: they must join. Made by scripts/make-token-corpus.mjs; `--check` re-verifies it.",
    config: { JWT_SECRET: SECRET, JWT_PUBLIC_KEYS: publicJwks(key.es, key.ed, key.rs), JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE },
    room: ROOM,
    controls,
    cases,
  };
  return { fixture, defects };
}

// ---------------------------------------------------------------------------------------------
// A strict reference verifier, written from docs/protocol.md §2 (RFC 8725), for --check only.
// It returns every defect it finds (not just the first), continuing where it still can.

function decodePart(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  const bytes = Buffer.from(s, "base64url");
  return bytes.toString("base64url") === s ? bytes : null; // canonical: no stray trailing bits
}
const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
/** Whether valid JSON `text` has an object with the same key twice. */
function hasDuplicateKeys(text) {
  const stack = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack.at(-1);
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (top?.keys && top.expectKey) {
        const k = JSON.parse(text.slice(i, j + 1));
        if (top.keys.has(k)) return true;
        top.keys.add(k);
        top.expectKey = false;
      }
      i = j;
    } else if (c === "{") stack.push({ keys: new Set(), expectKey: true });
    else if (c === "[") stack.push({});
    else if (c === "}" || c === "]") stack.pop();
    else if (c === "," && top?.keys) top.expectKey = true;
  }
  return false;
}
/** A NumericDate the server can hold: a finite JSON number within ±2^63. */
const numericDate = (v) => typeof v === "number" && Number.isFinite(v) && Math.abs(v) < 2 ** 63;

function verifySignature(k, alg, input, sig) {
  if (alg === "HS256") return createHmac("sha256", k.secret).update(input).digest().equals(sig);
  const pub = createPublicKey({ key: k, format: "jwk" });
  if (alg === "ES256") {
    if (sig.length !== 64) return false;
    const r = BigInt(`0x${sig.subarray(0, 32).toString("hex")}`);
    const s = BigInt(`0x${sig.subarray(32).toString("hex")}`);
    const n = BigInt(`0x${P256_ORDER.toString("hex")}`);
    if (r === 0n || s === 0n || r >= n || s >= n) return false;
    return cryptoVerify("sha256", input, { key: pub, dsaEncoding: "ieee-p1363" }, sig);
  }
  if (alg === "EdDSA") return sig.length === 64 && cryptoVerify(null, input, pub, sig);
  if (alg === "RS256") return sig.length === Buffer.from(k.n, "base64url").length && cryptoVerify("sha256", input, pub, sig);
  return false;
}

/** The key a header selects (docs/protocol.md §2 "kid selects the key"), or null. */
function selectKey(keys, header, alg) {
  if ("kid" in header) {
    if (typeof header.kid !== "string") return null;
    const byKid = keys.filter((k) => k.kid === header.kid);
    if (byKid.length) return byKid.length === 1 && byKid[0].alg === alg ? byKid[0] : null;
    const unnamed = keys.filter((k) => k.kid === undefined && k.alg === alg);
    return unnamed.length === 1 ? unnamed[0] : null;
  }
  const ofAlg = keys.filter((k) => k.alg === alg);
  return ofAlg.length === 1 ? ofAlg[0] : null;
}

function refusals(token, config, now) {
  const found = new Set();
  if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) found.add("size");
  const segments = token.split(".");
  const raw = segments.map(decodePart);
  if (segments.length !== 3 || raw.includes(null) || segments[0] === "" || segments[1] === "") return found.add("shape");
  const texts = raw.slice(0, 2).map((bytes) => {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      found.add("utf8");
      return bytes.toString("utf8");
    }
  });
  let header;
  let payload;
  try {
    [header, payload] = texts.map((t) => JSON.parse(t));
  } catch {
    return found.add("json");
  }
  if (!isObject(header) || !isObject(payload)) return found.add("json");
  if (texts.some(hasDuplicateKeys)) found.add("duplicate"); // and read on as a last-wins parser would
  if ("crit" in header) found.add("crit");
  const keys = [{ alg: "HS256", secret: config.JWT_SECRET }, ...JSON.parse(config.JWT_PUBLIC_KEYS).keys];
  const alg = header.alg === "Ed25519" ? "EdDSA" : header.alg;
  if (!["HS256", "ES256", "EdDSA", "RS256"].includes(alg)) found.add("alg");
  else {
    const k = selectKey(keys, header, alg);
    if (!k) found.add("kid");
    else if (!verifySignature(k, alg, Buffer.from(`${segments[0]}.${segments[1]}`), raw[2])) found.add("signature");
  }
  const c = payload;
  if (typeof c.sub !== "string" || c.sub === "") found.add("claim:sub");
  if (!numericDate(c.exp) || now > Math.trunc(c.exp) + 60) found.add("claim:exp");
  if ("nbf" in c && (!numericDate(c.nbf) || Math.trunc(c.nbf) - 60 > now)) found.add("claim:nbf");
  if ("iat" in c && (!numericDate(c.iat) || Math.trunc(c.iat) - 60 > now)) found.add("claim:iat");
  if (c.iss !== config.JWT_ISSUER) found.add("claim:iss");
  if (!(c.aud === config.JWT_AUDIENCE || (Array.isArray(c.aud) && c.aud.every((a) => typeof a === "string") && c.aud.includes(config.JWT_AUDIENCE)))) found.add("claim:aud");
  if ("rooms" in c && c.rooms !== null && !(Array.isArray(c.rooms) && c.rooms.every((r) => typeof r === "string"))) found.add("claim:rooms");
  return found;
}

function check() {
  const problems = [];
  const fixture = JSON.parse(readFileSync(OUT, "utf8"));
  const { fixture: made, defects } = build();
  const again = build().fixture;
  const now = Math.floor(Date.now() / 1000);

  // Keys and config
  const devJwks = JSON.parse(readFileSync(join(KEYS_DIR, "dev-jwks.json"), "utf8"));
  const configJwks = JSON.parse(fixture.config.JWT_PUBLIC_KEYS);
  if (JSON.stringify(configJwks) !== JSON.stringify(devJwks)) problems.push("config.JWT_PUBLIC_KEYS is not tests/fixtures/keys/dev-jwks.json");
  for (const k of devJwks.keys) {
    const extra = Object.keys(k).filter((m) => !["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"].includes(m));
    if (extra.length) problems.push(`dev-jwks.json ${k.kid} has non-public members ${extra}`);
    if (k.use !== "sig") problems.push(`dev-jwks.json ${k.kid}: use is not sig`);
  }
  for (const [name, bits] of [["dev-rs256", 2048], ["attacker-rs256", 2048], ["dev-rs1024", 1024]]) {
    const n = Buffer.from(loadDevKey(name).n, "base64url");
    if (n.length * 8 !== bits || n[0] < 0x80) problems.push(`${name} is not a ${bits}-bit RSA key`);
  }
  if (JSON.stringify(fixture.config) !== JSON.stringify(made.config)) problems.push("config differs from what this script makes");
  if (fixture.room !== ROOM) problems.push(`room is ${fixture.room}`);

  // Controls: valid, with the intended claims, and pure token characters
  for (const control of fixture.controls) {
    const found = [...refusals(control.token, fixture.config, now)];
    if (found.length) problems.push(`control ${control.name} refused: ${found.join(", ")}`);
    const [h, p] = control.token.split(".").slice(0, 2).map((s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8")));
    const expected = claims();
    if (JSON.stringify(p) !== JSON.stringify(expected)) problems.push(`control ${control.name}: claims ${JSON.stringify(p)}`);
    if (h.alg !== "HS256" && h.kid !== ALG_KEY[h.alg]?.kid) problems.push(`control ${control.name}: kid ${h.kid}`);
    if (!TOKEN_CHARS.test(control.token)) problems.push(`control ${control.name} is not a subprotocol token`);
  }
  if (fixture.controls.map((c) => c.name).join() !== made.controls.map((c) => c.name).join()) problems.push("controls differ from what this script makes");

  // Cases: refused for exactly their defects; placements; up to date with this script
  const names = fixture.cases.map((c) => c.name);
  if (new Set(names).size !== names.length) problems.push("duplicate case names");
  if (names.join("\n") !== made.cases.map((c) => c.name).join("\n")) problems.push("case names differ from what this script makes (remake the fixture)");
  const madeByName = new Map(made.cases.map((c, i) => [c.name, [c, again.cases[i]]]));
  for (const c of fixture.cases) {
    if (c.expect !== "unauthorized") problems.push(`${c.name}: expect ${c.expect}`);
    if (!/^[\x20-\x7e]+$/.test(c.token)) problems.push(`${c.name}: token is not printable ASCII`);
    const wantPlacements = TOKEN_CHARS.test(c.token) ? undefined : '["header","query"]';
    if ((c.placements && JSON.stringify(c.placements)) !== wantPlacements) problems.push(`${c.name}: placements ${JSON.stringify(c.placements)}, want ${wantPlacements ?? "none"}`);
    const found = [...refusals(c.token, fixture.config, now)].sort();
    const want = [...(defects.get(c.name) ?? ["?"])].sort();
    if (found.join() !== want.join()) problems.push(`${c.name}: refused for [${found}], meant [${want}]`);
    // "Otherwise valid" cases (their defect is not in the alg, kid, signature or shape) carry the kid of their dev key.
    if (want.every((d) => ["crit", "duplicate", "utf8", "size"].includes(d) || d.startsWith("claim:"))) {
      const header = JSON.parse(Buffer.from(c.token.split(".")[0], "base64url").toString("utf8"));
      if (header.alg !== "HS256" && header.kid !== ALG_KEY[header.alg]?.kid) problems.push(`${c.name}: kid ${JSON.stringify(header.kid)} is not the dev key's of ${header.alg}`);
    }
    const [mine, mineAgain] = madeByName.get(c.name) ?? [];
    if (mine && mine.token === mineAgain.token && mine.token !== c.token) problems.push(`${c.name}: token differs from what this script makes (remake the fixture)`);
    if (mine && (mine.why !== c.why || JSON.stringify(mine.placements) !== JSON.stringify(c.placements))) problems.push(`${c.name}: why/placements differ from what this script makes`);
  }
  if (fixture.about !== made.about) problems.push("about differs from what this script makes");

  const narrowed = fixture.cases.filter((c) => c.placements).length;
  const replays = fixture.cases.reduce((sum, c) => sum + (c.placements ?? [0, 0, 0]).length, 0);
  if (problems.length) {
    for (const p of problems) console.error(`✗ ${p}`);
    console.error(`${problems.length} problems in ${OUT}`);
    process.exit(1);
  }
  console.log(
    `${fixture.cases.length} cases (${narrowed} header/query only, ${replays} replays), each refused by the reference verifier for exactly its defect; ` +
      `${fixture.controls.length} controls (${fixture.controls.map((c) => c.name.replace("valid ", "")).join(", ")}) verify with the dev JWKS / secret`,
  );
}

if (process.argv.includes("--check")) check();
else {
  const { fixture } = build();
  writeFileSync(OUT, `${JSON.stringify(fixture, null, 2)}\n`);
  console.log(`wrote ${fixture.cases.length} cases and ${fixture.controls.length} controls to ${OUT}; check with --check`);
}
