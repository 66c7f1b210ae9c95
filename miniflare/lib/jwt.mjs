// A tiny JWT (JWS compact serialization) minter for tests and the `scripts/mint-token.mjs` CLI.
//
// Dependency-free on purpose: it uses only `node:crypto`, so the CLI can import it without an
// `npm install`. It mints *valid* HMAC tokens (HS256, HS384, HS512) and the deliberately *broken*
// ones that the Worker must refuse: `alg: "none"` tokens and tokens whose signature was tampered
// with. `mintAsymmetric` signs ES256 / EdDSA / RS256 with a private JWK, e.g. a test-only key of
// tests/fixtures/keys (`loadDevKey("dev-es256")`), whose public halves `publicJwks` turns into a
// `JWT_PUBLIC_KEYS` value. It never verifies anything; verification is the Worker's job.
//
// Usage:
//
//   import { mint, claimsFor, unsigned, tamperSignature, nowSeconds } from "./jwt.mjs";
//   const token = mint({ secret: "s3cret", claims: claimsFor({ sub: "alice", rooms: ["lobby"] }) });
//   const hs384 = mint({ secret: "s3cret", alg: "HS384", claims: { sub: "a", exp: nowSeconds() + 60 } });
//   const none = unsigned({ claims: { sub: "a", exp: nowSeconds() + 60 } }); // "xxx.yyy."
//   const bad = tamperSignature(token); // same header and claims, signature no longer matches
//   const es = mintAsymmetric({ privateJwk: loadDevKey("dev-es256"), claims }); // kid "dev-es256"
//   const JWT_PUBLIC_KEYS = publicJwks(loadDevKey("dev-es256"), loadDevKey("dev-rs256"));

import { createHmac, createPrivateKey, sign as cryptoSign } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** tests/fixtures/keys: the test-only key pairs (see its README). */
export const KEYS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tests", "fixtures", "keys");

/** JWS `alg` name → the `node:crypto` HMAC digest it uses. */
export const HMAC_ALGORITHMS = Object.freeze({ HS256: "sha256", HS384: "sha384", HS512: "sha512" });

/** Current Unix time in whole seconds, the unit of `exp`, `nbf` and `iat`. */
export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/**
 * base64url without padding (RFC 7515 §2) of a Buffer, a string (UTF-8) or a JSON value.
 * @param {Buffer|Uint8Array|string|object} input
 */
export function base64url(input) {
  let bytes;
  if (Buffer.isBuffer(input) || input instanceof Uint8Array) bytes = Buffer.from(input);
  else if (typeof input === "string") bytes = Buffer.from(input, "utf8");
  else bytes = Buffer.from(JSON.stringify(input), "utf8");
  return bytes.toString("base64url");
}

/**
 * Signs `header.payload` (both already base64url) with HMAC.
 * @param {string} signingInput
 * @param {string|Buffer} secret
 * @param {keyof HMAC_ALGORITHMS} alg
 */
export function hmacSignature(signingInput, secret, alg = "HS256") {
  const digest = HMAC_ALGORITHMS[alg];
  if (!digest) throw new Error(`unsupported HMAC alg ${JSON.stringify(alg)} (use HS256, HS384 or HS512)`);
  return createHmac(digest, secret).update(signingInput).digest("base64url");
}

/**
 * Mints a compact HMAC-signed JWT.
 *
 * @param {object} options
 * @param {string|Buffer} options.secret  the shared secret (the Worker's `JWT_SECRET`)
 * @param {object} options.claims         the payload, e.g. `{ sub, exp, rooms }`; used verbatim
 * @param {"HS256"|"HS384"|"HS512"} [options.alg="HS256"] the algorithm that actually signs
 * @param {object} [options.header]       merged over `{ alg, typ: "JWT" }`; setting `alg` here
 *                                        makes the header lie about the signing algorithm
 * @returns {string} `base64url(header).base64url(claims).base64url(signature)`
 */
export function mint({ secret, claims, alg = "HS256", header = {} }) {
  if (secret === undefined || secret === null || secret === "") throw new Error("mint: secret is required");
  if (!claims || typeof claims !== "object") throw new Error("mint: claims must be an object");
  const signingInput = `${base64url({ alg, typ: "JWT", ...header })}.${base64url(claims)}`;
  return `${signingInput}.${hmacSignature(signingInput, secret, alg)}`;
}

/**
 * An unsecured JWT (`alg: "none"`, RFC 7519 §6): header and claims with an empty signature part.
 * A server must refuse it like a missing token.
 * @param {object} options
 * @param {object} options.claims
 * @param {object} [options.header]  merged over `{ alg: "none", typ: "JWT" }`
 * @param {string} [options.signature=""]  what to put after the last dot (e.g. a stolen HS256 one)
 */
export function unsigned({ claims, header = {}, signature = "" }) {
  return `${base64url({ alg: "none", typ: "JWT", ...header })}.${base64url(claims)}.${signature}`;
}

/**
 * Returns the token with its signature changed by one bit (decoded, first byte flipped,
 * re-encoded, so the change never hides in base64 padding bits). Header and claims stay intact.
 * @param {string} token
 */
export function tamperSignature(token) {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[2] === "") throw new Error("tamperSignature: not a signed compact JWT");
  const sig = Buffer.from(parts[2], "base64url");
  sig[0] ^= 0x01;
  return `${parts[0]}.${parts[1]}.${sig.toString("base64url")}`;
}

/**
 * Decodes (without verifying) a compact JWT into `{ header, claims }`; handy for CLIs and tests.
 * @param {string} token
 */
export function decode(token) {
  const [h, p] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString("utf8")),
    claims: JSON.parse(Buffer.from(p, "base64url").toString("utf8")),
  };
}

/**
 * The usual claim set for a signaling client: `sub`, `iat` = now, `exp` = now + `ttlSeconds`,
 * `rooms` when given, plus any `extra` claims (which win, so `extra` can also set `exp`, `iss`…).
 * A claim whose value is `undefined` in `extra` is removed (e.g. `{ sub: undefined }`).
 *
 * @param {object} [options]
 * @param {string} [options.sub="test-user"]
 * @param {string[]} [options.rooms]         room ids or prefix patterns ending in `*`
 * @param {number} [options.ttlSeconds=600]
 * @param {number} [options.now=nowSeconds()]
 * @param {object} [options.extra]
 */
export function claimsFor({ sub = "test-user", rooms, ttlSeconds = 600, now = nowSeconds(), extra = {} } = {}) {
  const claims = { sub, iat: now, exp: now + ttlSeconds };
  if (rooms !== undefined) claims.rooms = rooms;
  Object.assign(claims, extra);
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

/** The JWS `alg`s signed with a private JWK (`mintAsymmetric`); HMAC ones use `mint`. */
export const ASYMMETRIC_ALGORITHMS = Object.freeze(["ES256", "EdDSA", "RS256"]);

/**
 * Signs `header.payload` (both already base64url) with a private JWK, as JWS `alg` wants it:
 * ES256 as raw r||s (64 bytes), EdDSA (Ed25519), RS256 (RSASSA-PKCS1-v1_5, SHA-256).
 * @param {string} signingInput
 * @param {object} privateJwk
 * @param {"ES256"|"EdDSA"|"RS256"} alg
 */
export function asymmetricSignature(signingInput, privateJwk, alg) {
  if (!ASYMMETRIC_ALGORITHMS.includes(alg)) throw new Error(`unsupported asymmetric alg ${JSON.stringify(alg)} (use ES256, EdDSA or RS256)`);
  // node:crypto would happily "sign" RS256 with an EC key (a DER ECDSA signature): refuse instead.
  if (algForJwk(privateJwk) !== alg) {
    const type = [privateJwk.kty, privateJwk.crv].filter(Boolean).join(" ");
    throw new Error(`this ${type || "untyped"} key cannot sign ${alg} (ES256: EC P-256, EdDSA: OKP Ed25519, RS256: RSA)`);
  }
  if (privateJwk.d === undefined) throw new Error(`the JWK ${JSON.stringify(privateJwk.kid ?? "")} has no private part (d)`);
  const key = createPrivateKey({ key: privateJwk, format: "jwk" });
  const data = Buffer.from(signingInput);
  if (alg === "ES256") return cryptoSign("sha256", data, { key, dsaEncoding: "ieee-p1363" }).toString("base64url");
  if (alg === "EdDSA") return cryptoSign(null, data, key).toString("base64url");
  return cryptoSign("sha256", data, key).toString("base64url"); // RS256: RSASSA-PKCS1-v1_5
}

/** The asymmetric JWS `alg` a JWK signs by its type: EC P-256 → ES256, OKP Ed25519 → EdDSA, RSA → RS256. */
export function algForJwk(jwk) {
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "RSA") return "RS256";
  throw new Error(`no supported alg for this ${[jwk.kty, jwk.crv].filter(Boolean).join(" ") || "untyped"} key (not a JWK?)`);
}

/**
 * Mints a compact JWT signed with a private JWK. The header is `{alg, typ: "JWT", kid}` (kid from
 * the JWK) merged with `header`, so `header` can lie about `alg` or `kid`.
 * @param {object} options
 * @param {object} options.privateJwk
 * @param {object} options.claims
 * @param {"ES256"|"EdDSA"|"RS256"} [options.alg]  defaults to the JWK's `alg` (else by its kty/crv)
 * @param {object} [options.header]
 */
export function mintAsymmetric({ privateJwk, claims, alg = privateJwk.alg ?? algForJwk(privateJwk), header = {} }) {
  const fullHeader = { alg, typ: "JWT", ...(privateJwk.kid ? { kid: privateJwk.kid } : {}), ...header };
  const signingInput = `${base64url(fullHeader)}.${base64url(claims)}`;
  return `${signingInput}.${asymmetricSignature(signingInput, privateJwk, alg)}`;
}

/** A key of tests/fixtures/keys by name (`dev-es256`, `attacker-rs256`, …): its private JWK. */
export function loadDevKey(name) {
  return JSON.parse(readFileSync(join(KEYS_DIR, `${name}.private.jwk.json`), "utf8"));
}

/** The public JWK of a private one (only the public members, with kid/alg/use). */
export function publicJwk(privateJwk) {
  const { kty, crv, x, y, n, e, kid, alg, use } = privateJwk;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, kid, alg, use }).filter(([, v]) => v !== undefined));
}

/** A JWKS document (as a string) of the public halves of `privateJwks`. */
export function publicJwks(...privateJwks) {
  return JSON.stringify({ keys: privateJwks.map(publicJwk) });
}
