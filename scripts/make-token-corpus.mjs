#!/usr/bin/env node
// Writes tests/fixtures/token-attacks.json: named token attacks, each signed with the test-only keys
// of tests/fixtures/keys so that the named defect is the only thing wrong with it, plus one valid
// control token per algorithm. The native tests (tests/trust.rs) and the workerd tests
// (miniflare/test/token-attacks.test.mjs) replay it: every case must be refused `unauthorized` in
// every placement, and no case may reach a Durable Object.
//
//   node scripts/make-token-corpus.mjs          # write the fixture
//   node scripts/make-token-corpus.mjs --check  # verify the controls with node:crypto, count cases
import { createHmac, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { asymmetricSignature, loadDevKey, publicJwk, publicJwks } from "../miniflare/lib/jwt.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "tests", "fixtures", "token-attacks.json");
const SECRET = "edgesignal-dev-secret-change-me-0123456789abcdef";
const ISSUER = "https://issuer.test";
const AUDIENCE = "edgesignal";
const EXP = 4102444800; // 2100-01-01: "otherwise valid" tokens never expire
const IAT = 1767225600; // 2026-01-01

const key = {
  es: loadDevKey("dev-es256"),
  ed: loadDevKey("dev-eddsa"),
  rs: loadDevKey("dev-rs256"),
  attackerEs: loadDevKey("attacker-es256"),
  attackerRs: loadDevKey("attacker-rs256"),
};
const ALG_KEY = { ES256: key.es, EdDSA: key.ed, RS256: key.rs };
const config = {
  JWT_SECRET: SECRET,
  JWT_PUBLIC_KEYS: publicJwks(key.es, key.ed, key.rs),
  JWT_ISSUER: ISSUER,
  JWT_AUDIENCE: AUDIENCE,
};

const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
/** A header or payload part: an object (JSON), a string (raw JSON text) or a Buffer (raw bytes). */
const part = (p) => b64(Buffer.isBuffer(p) ? p : typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(JSON.stringify(p)));
const claims = (extra = {}) => {
  const c = { sub: "corpus-user", rooms: ["lobby"], iss: ISSUER, aud: AUDIENCE, iat: IAT, exp: EXP, ...extra };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
};
/** Signs `header.payload` with `jwk` as `signAlg` (defaults to the header's alg, else the key's). */
function signed(jwk, header, payload, signAlg) {
  const input = `${part(header)}.${part(payload)}`;
  const alg = signAlg ?? jwk.alg;
  return `${input}.${asymmetricSignature(input, jwk, alg)}`;
}
function hs(secret, header, payload, digest = "sha256") {
  const input = `${part(header)}.${part(payload)}`;
  return `${input}.${createHmac(digest, secret).update(input).digest("base64url")}`;
}
const headerOf = (jwk, extra = {}) => ({ alg: jwk.alg, typ: "JWT", kid: jwk.kid, ...extra });
const valid = (alg) => (alg === "HS256" ? hs(SECRET, { alg: "HS256", typ: "JWT" }, claims()) : signed(ALG_KEY[alg], headerOf(ALG_KEY[alg]), claims()));
const parts = (token) => token.split(".");
const withSignature = (token, sigB64) => `${parts(token)[0]}.${parts(token)[1]}.${sigB64}`;
function flipBit(token) {
  const sig = Buffer.from(parts(token)[2], "base64url");
  sig[sig.length >> 1] ^= 0x01;
  return withSignature(token, b64(sig));
}

const cases = [];
const add = (name, why, token, placements) => cases.push({ name, why, token, expect: "unauthorized", ...(placements ? { placements } : {}) });
const HEADER_AND_QUERY = ["header", "query"];

// alg: none, missing, mistyped, unknown
for (const none of ["none", "None", "NONE", "nOnE"]) {
  const h = part({ alg: none, typ: "JWT" });
  const p = part(claims());
  add(`alg ${none}, empty signature`, "RFC 8725 §2.1: an unsecured JWT is never accepted", `${h}.${p}.`);
  add(`alg ${none}, a valid ES256 signature kept`, "the signature of another header proves nothing", `${h}.${p}.${parts(valid("ES256"))[2]}`);
  add(`alg ${none}, no signature part`, "two parts are not a JWS", `${h}.${p}`);
}
add("alg missing", "a JWS header must name its algorithm", signed(key.es, { typ: "JWT", kid: "dev-es256" }, claims(), "ES256"));
add("alg a number", "alg must be a string", signed(key.es, { alg: 256, kid: "dev-es256" }, claims(), "ES256"));
add("alg null", "alg must be a string", signed(key.es, { alg: null, kid: "dev-es256" }, claims(), "ES256"));
add("alg an array", "alg must be a string", signed(key.es, { alg: ["ES256"], kid: "dev-es256" }, claims(), "ES256"));
add("alg es256 (lower case)", "algorithm names are case-sensitive (RFC 7518 §3.1)", signed(key.es, headerOf(key.es, { alg: "es256" }), claims(), "ES256"));
add("HS384 with the right secret", "only HS256 is accepted for the secret", hs(SECRET, { alg: "HS384", typ: "JWT" }, claims(), "sha384"));
add("HS512 with the right secret", "only HS256 is accepted for the secret", hs(SECRET, { alg: "HS512", typ: "JWT" }, claims(), "sha512"));
{
  const input = `${part(headerOf(key.rs, { alg: "RS512" }))}.${part(claims())}`;
  add("RS512 by the RS256 key", "a key verifies only its own algorithm", `${input}.${b64(cryptoSign("sha512", Buffer.from(input), createPrivateKey({ key: key.rs, format: "jwk" })))}`);
  const pss = `${part(headerOf(key.rs, { alg: "PS256" }))}.${part(claims())}`;
  const pssSig = cryptoSign("sha256", Buffer.from(pss), { key: createPrivateKey({ key: key.rs, format: "jwk" }), padding: 6, saltLength: 32 });
  add("PS256 by the RS256 key", "a key verifies only its own algorithm", `${pss}.${b64(pssSig)}`);
}
add("ES384 header over an ES256 signature", "a key verifies only its own algorithm", signed(key.es, headerOf(key.es, { alg: "ES384" }), claims(), "ES256"));
add("ES256K header over an ES256 signature", "a key verifies only its own algorithm", signed(key.es, headerOf(key.es, { alg: "ES256K" }), claims(), "ES256"));
add("EdDSA signature under the ES256 key's kid", "kid never makes a key verify another algorithm", signed(key.ed, headerOf(key.ed, { kid: "dev-es256" }), claims()));

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
    add(`HS256 keyed with the ${what}, with its kid`, "algorithm confusion: the only HMAC key is JWT_SECRET", hs(secret, { alg: "HS256", typ: "JWT", kid }, claims()));
    add(`HS256 keyed with the ${what}, no kid`, "algorithm confusion: the only HMAC key is JWT_SECRET", hs(secret, { alg: "HS256", typ: "JWT" }, claims()));
  }
}

// Signatures: psychic, wrong encodings, stripped, swapped, flipped
{
  const es = valid("ES256");
  const order = Buffer.from("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", "hex");
  add("ES256 psychic signature: r = s = 0", "CVE-2022-21449: an all-zero signature must never verify", withSignature(es, b64(Buffer.alloc(64))));
  add("ES256 r = s = n (the curve order)", "r and s must be in [1, n-1]", withSignature(es, b64(Buffer.concat([order, order]))));
  const input = `${parts(es)[0]}.${parts(es)[1]}`;
  const der = cryptoSign("sha256", Buffer.from(input), { key: createPrivateKey({ key: key.es, format: "jwk" }), dsaEncoding: "der" });
  add("ES256 signature DER-encoded", "JWS ES256 signatures are raw r||s (RFC 7518 §3.4)", withSignature(es, b64(der)));
  add("EdDSA signature all zeros", "an all-zero signature must never verify", withSignature(valid("EdDSA"), b64(Buffer.alloc(64))));
  add("signature stripped (h.p.)", "a signature is required", `${input}.`);
  add("no signature part (h.p)", "three parts are required", input);
  const other = signed(key.es, headerOf(key.es), claims({ sub: "someone-else" }));
  add("signature of another valid token", "a signature covers its own header and payload", withSignature(es, parts(other)[2]));
  for (const alg of ["HS256", "ES256", "EdDSA", "RS256"]) add(`${alg} signature with one bit flipped`, "a tampered signature fails", flipBit(valid(alg)));
  add("RS256 signature one byte short", "an RS256 signature is as long as the modulus", withSignature(valid("RS256"), b64(Buffer.from(parts(valid("RS256"))[2], "base64url").subarray(1))));
}

// Structure
{
  const es = valid("ES256");
  const [h, p, s] = parts(es);
  add("truncated in the payload", "a cut token does not verify", `${h}.${p.slice(0, -10)}.${s}`);
  add("truncated in the signature", "a cut token does not verify", `${h}.${p}.${s.slice(0, -8)}`);
  add("only the header", "one part is not a JWS", h);
  add("four parts", "a JWS compact serialization has exactly three parts", `${es}.${s}`);
  add("five parts (JWE-shaped)", "encrypted tokens are not accepted", `${part({ alg: "RSA-OAEP", enc: "A256GCM", kid: "dev-rs256" })}.${b64(Buffer.alloc(32, 1))}.${b64(Buffer.alloc(12, 2))}.${p}.${b64(Buffer.alloc(16, 3))}`);
  add("base64 padding '=' on every part", "JWS uses unpadded base64url (RFC 7515 §2)", `${h}==.${p}=.${s}==`, HEADER_AND_QUERY);
  let sigWithUrlChars = es;
  for (let i = 0; i < 50 && !/[-_]/.test(parts(sigWithUrlChars)[2]); i++) sigWithUrlChars = signed(key.es, headerOf(key.es), claims({ nonce: i }));
  const standard = parts(sigWithUrlChars).map((x) => x.replaceAll("-", "+").replaceAll("_", "/")).join(".");
  if (standard === sigWithUrlChars) throw new Error("could not make a token with - or _");
  add("standard base64 ('+' and '/') instead of base64url", "JWS uses base64url", standard, HEADER_AND_QUERY);
  add("whitespace inside the token", "a token is one unbroken string", `${h}.${p.slice(0, 20)} ${p.slice(20)}.${s}`, HEADER_AND_QUERY);
  add("header not JSON", "the header must be a JSON object", signed(key.es, "not json at all", claims(), "ES256"));
  add("header a JSON array", "the header must be a JSON object", signed(key.es, '["ES256"]', claims(), "ES256"));
  add("payload a JSON string", "the claims must be a JSON object", signed(key.es, headerOf(key.es), '"corpus-user"'));
  add("payload a JSON array", "the claims must be a JSON object", signed(key.es, headerOf(key.es), "[]"));
}

// kid
add("unknown kid", "no configured key has it; JWT_PUBLIC_KEYS is pinned, nothing is fetched", signed(key.es, headerOf(key.es, { kid: "nope" }), claims()));
add("ES256 token with the RS256 key's kid", "kid never makes a key verify another algorithm", signed(key.es, headerOf(key.es, { kid: "dev-rs256" }), claims()));
for (const [label, kid] of [
  ["path traversal to /dev/null", "../../../../dev/null"],
  ["SQL injection", "' OR '1'='1"],
  ["path traversal to /etc/passwd", "../../../../../../etc/passwd"],
  ["a NUL byte", "\u0000"],
]) {
  add(`kid ${label}, signed by the attacker's key`, "kid is only compared to configured kids, never used as a path or query", signed(key.attackerEs, headerOf(key.attackerEs, { kid }), claims()));
  add(`kid ${label}, HS256 with an empty secret`, "kid never selects an HMAC secret", hs("", { alg: "HS256", typ: "JWT", kid }, claims()));
  add(`kid ${label}, HS256 with the secret "null"`, "kid never selects an HMAC secret", hs("null", { alg: "HS256", typ: "JWT", kid }, claims()));
}
add("kid of 10 KB", "oversized header", signed(key.attackerEs, headerOf(key.attackerEs, { kid: "k".repeat(10_000) }), claims()));
add("kid a number", "kid must be a string", signed(key.es, headerOf(key.es, { kid: 7 }), claims()));
add("kid an object", "kid must be a string", signed(key.es, headerOf(key.es, { kid: { $ne: null } }), claims()));

// Keys named by the token
add("jku to the attacker's JWKS", "RFC 8725 §3.10: jku is never used to find a key", signed(key.attackerEs, headerOf(key.attackerEs, { jku: "https://attacker.example/jwks.json" }), claims()));
add("x5u to the attacker's certificate", "x5u is never used to find a key", signed(key.attackerRs, headerOf(key.attackerRs, { x5u: "https://attacker.example/cert.pem" }), claims()));
add("jwk header with the attacker's public key", "an embedded key is never trusted (CVE-2018-0114)", signed(key.attackerEs, headerOf(key.attackerEs, { jwk: publicJwk(key.attackerEs) }), claims()));
add("jwk header with the attacker's key under a dev kid", "an embedded key is never trusted", signed(key.attackerEs, headerOf(key.attackerEs, { kid: "dev-es256", jwk: publicJwk(key.attackerEs) }), claims()));
add("x5c with a certificate blob", "x5c is never used to find a key", signed(key.attackerRs, headerOf(key.attackerRs, { x5c: [b64(Buffer.alloc(300, 7)).replaceAll("-", "+").replaceAll("_", "/")] }), claims()));

// crit
for (const [label, extra] of [
  ['crit ["exp"]', { crit: ["exp"] }],
  ['crit ["b64"] with b64 false', { crit: ["b64"], b64: false }],
  ['crit ["unknown-ext"]', { crit: ["unknown-ext"], "unknown-ext": true }],
  ["crit an empty array", { crit: [] }],
  ["crit not an array", { crit: "exp" }],
]) {
  add(label, "RFC 7515 §4.1.11: this service understands no extension", signed(key.es, headerOf(key.es, extra), claims()));
}

// Claims
const claimCases = [
  ["expired (exp 2020)", { exp: 1577836800 }],
  ["exp a string", { exp: String(EXP) }],
  ["exp missing", { exp: undefined }],
  ["nbf in 2099", { nbf: 4070908800 }],
  ["iat in 2099", { iat: 4070908800 }],
  ["wrong iss", { iss: "https://evil.test" }],
  ["iss missing", { iss: undefined }],
  ["wrong aud", { aud: "someone-else" }],
  ["aud array without ours", { aud: ["a", "b"] }],
  ["sub missing", { sub: undefined }],
  ["sub empty", { sub: "" }],
  ["sub a number", { sub: 42 }],
];
for (const [label, extra] of claimCases) {
  add(label, "the claims must hold (docs/protocol.md §2)", signed(key.es, headerOf(key.es), claims(extra)));
}
add("exp 1e400", "a number out of range", signed(key.es, headerOf(key.es), JSON.stringify(claims()).replace(`"exp":${EXP}`, '"exp":1e400')));
add("exp 2^64", "a number out of range", signed(key.es, headerOf(key.es), JSON.stringify(claims()).replace(`"exp":${EXP}`, '"exp":18446744073709551616')));
add("exp -1e20", "a number out of range", signed(key.es, headerOf(key.es), JSON.stringify(claims()).replace(`"exp":${EXP}`, '"exp":-1e20')));
add("nbf 1e308", "a number out of range", signed(key.es, headerOf(key.es), JSON.stringify(claims({ nbf: 1 })).replace('"nbf":1', '"nbf":1e308')));

// Size, duplicate keys, encoding
add("oversized: a 20 KB claim, validly signed", "tokens over 8 KiB are refused unread", signed(key.es, headerOf(key.es), claims({ pad: "x".repeat(20_000) })));
add("oversized: a 9 KB claim, validly signed", "tokens over 8 KiB are refused unread", signed(key.es, headerOf(key.es), claims({ pad: "x".repeat(9_000) })));
const esHeaderText = (first, last) => `{"alg":"${first}","typ":"JWT","kid":"dev-es256","alg":"${last}"}`;
add("header with two alg (ES256 twice)", "duplicate keys mean different things to different parsers", signed(key.es, esHeaderText("ES256", "ES256"), claims(), "ES256"));
add('header {"alg":"none", …, "alg":"ES256"}', "duplicate keys mean different things to different parsers", signed(key.es, esHeaderText("none", "ES256"), claims(), "ES256"));
add('header {"alg":"ES256", …, "alg":"none"}', "duplicate keys mean different things to different parsers", signed(key.es, esHeaderText("ES256", "none"), claims(), "ES256"));
add("payload with two sub", "duplicate keys mean different things to different parsers", signed(key.es, headerOf(key.es), JSON.stringify(claims()).replace('"sub":"corpus-user"', '"sub":"corpus-user","sub":"admin"')));
add("payload with two exp", "duplicate keys mean different things to different parsers", signed(key.es, headerOf(key.es), JSON.stringify(claims()).replace(`"exp":${EXP}`, `"exp":1577836800,"exp":${EXP}`)));
add("non-UTF-8 bytes in the header", "JSON text is UTF-8 (RFC 8259 §8.1)", signed(key.es, Buffer.concat([Buffer.from('{"alg":"ES256","kid":"dev-es256","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), claims(), "ES256"));
add("non-UTF-8 bytes in the payload", "JSON text is UTF-8 (RFC 8259 §8.1)", signed(key.es, headerOf(key.es), Buffer.concat([Buffer.from(JSON.stringify(claims()).slice(0, -1) + ',"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])));

const controls = ["HS256", "ES256", "EdDSA", "RS256"].map((alg) => ({ name: `valid ${alg}`, token: valid(alg) }));

if (process.argv.includes("--check")) {
  const fixture = JSON.parse(readFileSync(OUT, "utf8"));
  const jwks = JSON.parse(fixture.config.JWT_PUBLIC_KEYS).keys;
  for (const control of fixture.controls) {
    const [h, p, s] = control.token.split(".");
    const header = JSON.parse(Buffer.from(h, "base64url"));
    const data = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s, "base64url");
    let ok;
    if (header.alg === "HS256") ok = createHmac("sha256", fixture.config.JWT_SECRET).update(data).digest().equals(sig);
    else {
      const pub = createPublicKey({ key: jwks.find((k) => k.kid === header.kid), format: "jwk" });
      ok = cryptoVerify(header.alg === "EdDSA" ? null : "sha256", data, header.alg === "ES256" ? { key: pub, dsaEncoding: "ieee-p1363" } : pub, sig);
    }
    if (!ok) throw new Error(`control ${control.name} does not verify`);
  }
  const names = new Set(fixture.cases.map((c) => c.name));
  if (names.size !== fixture.cases.length) throw new Error("duplicate case names");
  console.log(`${fixture.cases.length} cases, ${fixture.controls.length} controls verified`);
  process.exit(0);
}

const fixture = {
  about:
    "Token attacks for edgesignal's edge (issue 8). Each case is signed with the test-only keys of tests/fixtures/keys so that its named defect is the only thing wrong with it; every case must be refused `unauthorized` (HTTP 401, close 4401) in every placement (Authorization: Bearer, Sec-WebSocket-Protocol bearer.<jwt>, ?token=) unless `placements` narrows it (a token that is not a valid subprotocol token), and none may reach a Durable Object. `controls` are valid tokens for the same config and room: they must join. Made by scripts/make-token-corpus.mjs.",
  config,
  room: "lobby",
  controls,
  cases,
};
writeFileSync(OUT, `${JSON.stringify(fixture, null, 2)}\n`);
console.log(`wrote ${cases.length} cases and ${controls.length} controls to ${OUT}`);
