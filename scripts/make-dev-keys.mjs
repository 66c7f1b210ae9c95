#!/usr/bin/env node
// Writes the test-only key pairs in tests/fixtures/keys/ (private JWKs, and dev-jwks.json with the
// public halves of the dev keys). Never use them in production. They are committed because the
// token corpus (tests/fixtures/token-attacks.json) is signed with them: regenerate only with
// --force, then run `node scripts/make-token-corpus.mjs`.
//
//   node scripts/make-dev-keys.mjs [--force]
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { publicJwk } from "../miniflare/lib/jwt.mjs";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "tests", "fixtures", "keys");
const force = process.argv.includes("--force");

const KEYS = [
  ["dev-es256", "ES256", () => generateKeyPairSync("ec", { namedCurve: "P-256" })],
  ["dev-eddsa", "EdDSA", () => generateKeyPairSync("ed25519")],
  ["dev-rs256", "RS256", () => generateKeyPairSync("rsa", { modulusLength: 2048 })],
  ["attacker-es256", "ES256", () => generateKeyPairSync("ec", { namedCurve: "P-256" })],
  ["attacker-rs256", "RS256", () => generateKeyPairSync("rsa", { modulusLength: 2048 })],
  ["dev-rs1024", "RS256", () => generateKeyPairSync("rsa", { modulusLength: 1024 })],
];

const existing = [...KEYS.map(([kid]) => `${kid}.private.jwk.json`), "dev-jwks.json"].filter((f) => existsSync(join(DIR, f)));
if (existing.length && !force) {
  console.error(`${DIR} already has ${existing.join(", ")}; the token corpus is signed with them.`);
  console.error("Pass --force to replace every key, then run node scripts/make-token-corpus.mjs (and --check).");
  process.exit(1);
}

mkdirSync(DIR, { recursive: true });
const publicDev = [];
for (const [kid, alg, generate] of KEYS) {
  const file = join(DIR, `${kid}.private.jwk.json`);
  const { privateKey } = generate();
  const jwk = { ...privateKey.export({ format: "jwk" }), kid, alg, use: "sig" };
  writeFileSync(file, `${JSON.stringify(jwk, null, 2)}\n`);
  if (kid.startsWith("dev-") && kid !== "dev-rs1024") publicDev.push(publicJwk(jwk));
}
writeFileSync(join(DIR, "dev-jwks.json"), `${JSON.stringify({ keys: publicDev }, null, 2)}\n`);
console.log(`wrote ${KEYS.length} private keys and dev-jwks.json to ${DIR}; now run node scripts/make-token-corpus.mjs`);
