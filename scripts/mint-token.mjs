#!/usr/bin/env node
// Mints a token for local use: HS256 with the dev secret (or any secret you pass), or ES256 /
// EdDSA / RS256 with a test-only dev key pair of tests/fixtures/keys (or any private JWK you pass).
//
//   node scripts/mint-token.mjs --sub alice --rooms 'lobby,team-42-*' [--ttl 3600]
//       [--alg HS256|ES256|EdDSA|RS256] [--key private.jwk.json]
//       [--secret S | JWT_SECRET from the environment | .dev.vars | .dev.vars.example]
//       [--iss I] [--aud A] [--no-rooms]
//
//   --alg   default HS256 (signed with the secret), or the key's own alg when --key is given
//   --key   for ES256/EdDSA/RS256: a private JWK file; default the dev key of --alg
//           (tests/fixtures/keys/dev-es256, dev-eddsa, dev-rs256, whose public halves are
//           tests/fixtures/keys/dev-jwks.json, a JWT_PUBLIC_KEYS value); its kid goes in the header
//   --secret  for HS256 only
// Prints the token alone on stdout, so `TOKEN=$(node scripts/mint-token.mjs ...)` works.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ASYMMETRIC_ALGORITHMS, algForJwk, claimsFor, loadDevKey, mint, mintAsymmetric } from "../miniflare/lib/jwt.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "dev-user" },
    rooms: { type: "string", default: "*" },
    ttl: { type: "string", default: "3600" },
    secret: { type: "string" },
    iss: { type: "string" },
    aud: { type: "string" },
    alg: { type: "string" },
    key: { type: "string" },
    "no-rooms": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  const lines = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1);
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith("//"))).map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
  process.exit(0);
}

function secretFromFile(file) {
  const path = join(root, file);
  if (!existsSync(path)) return undefined;
  const line = readFileSync(path, "utf8").split("\n").find((l) => l.startsWith("JWT_SECRET="));
  return line?.slice("JWT_SECRET=".length).trim().replace(/^"(.*)"$/, "$1");
}

const ttlSeconds = Number.parseInt(values.ttl, 10);
if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
  console.error("mint-token: --ttl must be a positive number of seconds");
  process.exit(2);
}
const extra = {};
if (values.iss) extra.iss = values.iss;
if (values.aud) extra.aud = values.aud;
const rooms = values["no-rooms"] ? undefined : values.rooms.split(",").map((r) => r.trim()).filter(Boolean);
const claims = claimsFor({ sub: values.sub, rooms, ttlSeconds, extra });

let keyFile;
let alg;
try {
  keyFile = values.key ? JSON.parse(readFileSync(values.key, "utf8")) : undefined;
  alg = values.alg ?? (keyFile ? (keyFile.alg ?? algForJwk(keyFile)) : "HS256");
} catch (err) {
  console.error(`mint-token: --key ${values.key}: ${err.message}`);
  process.exit(2);
}
if (ASYMMETRIC_ALGORITHMS.includes(alg)) {
  const devKey = { ES256: "dev-es256", EdDSA: "dev-eddsa", RS256: "dev-rs256" }[alg];
  const privateJwk = keyFile ?? loadDevKey(devKey);
  try {
    console.log(mintAsymmetric({ privateJwk, claims, alg }));
  } catch (err) {
    console.error(`mint-token: ${err.message}`);
    process.exit(2);
  }
  process.exit(0);
}
if (alg !== "HS256") {
  console.error(`mint-token: --alg must be HS256, ES256, EdDSA or RS256, not ${alg}`);
  process.exit(2);
}
if (keyFile) {
  console.error("mint-token: --key is for ES256, EdDSA and RS256; HS256 signs with the secret");
  process.exit(2);
}
const secret = values.secret ?? process.env.JWT_SECRET ?? secretFromFile(".dev.vars") ?? secretFromFile(".dev.vars.example");
if (!secret) {
  console.error("mint-token: need a secret (--secret, JWT_SECRET, or .dev.vars) for HS256");
  process.exit(2);
}
console.log(mint({ secret, claims }));
