#!/usr/bin/env node
// Mints a token for local use: HS256 with the dev secret (or any secret you pass), or ES256 /
// EdDSA / RS256 with a dev key pair from tests/fixtures/keys (or any private JWK you pass).
//
//   node scripts/mint-token.mjs --sub alice --rooms 'lobby,team-42-*' [--ttl 3600]
//       [--alg HS256|ES256|EdDSA|RS256] [--key private.jwk.json (default: the dev key of --alg)]
//       [--secret S | JWT_SECRET from the environment | .dev.vars | .dev.vars.example]
//       [--iss I] [--aud A] [--no-rooms]
// Prints the token alone on stdout, so `TOKEN=$(node scripts/mint-token.mjs ...)` works.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ASYMMETRIC_ALGORITHMS, claimsFor, loadDevKey, mint, mintAsymmetric } from "../miniflare/lib/jwt.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "dev-user" },
    rooms: { type: "string", default: "*" },
    ttl: { type: "string", default: "3600" },
    secret: { type: "string" },
    iss: { type: "string" },
    aud: { type: "string" },
    alg: { type: "string", default: "HS256" },
    key: { type: "string" },
    "no-rooms": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 9).join("\n"));
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

if (ASYMMETRIC_ALGORITHMS.includes(values.alg)) {
  const devKey = { ES256: "dev-es256", EdDSA: "dev-eddsa", RS256: "dev-rs256" }[values.alg];
  const privateJwk = values.key ? JSON.parse(readFileSync(values.key, "utf8")) : loadDevKey(devKey);
  console.log(mintAsymmetric({ privateJwk, claims, alg: values.alg }));
  process.exit(0);
}
if (values.alg !== "HS256") {
  console.error(`mint-token: --alg must be HS256, ES256, EdDSA or RS256, not ${values.alg}`);
  process.exit(2);
}
const secret = values.secret ?? process.env.JWT_SECRET ?? secretFromFile(".dev.vars") ?? secretFromFile(".dev.vars.example");
if (!secret) {
  console.error("mint-token: need a secret (--secret, JWT_SECRET, or .dev.vars) for HS256");
  process.exit(2);
}
console.log(mint({ secret, claims }));
