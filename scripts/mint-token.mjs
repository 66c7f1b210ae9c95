#!/usr/bin/env node
// Mints an HS256 token for local use with the dev secret (or any secret you pass).
//
//   node scripts/mint-token.mjs --sub alice --rooms 'lobby,team-42-*' [--ttl 3600]
//       [--secret S | JWT_SECRET from the environment | .dev.vars | .dev.vars.example]
//       [--iss I] [--aud A]
//
// Prints the token alone on stdout, so `TOKEN=$(node scripts/mint-token.mjs ...)` works.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { mint, claimsFor } from "../miniflare/lib/jwt.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "dev-user" },
    rooms: { type: "string", default: "*" },
    ttl: { type: "string", default: "3600" },
    secret: { type: "string" },
    iss: { type: "string" },
    aud: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 8).join("\n"));
  process.exit(0);
}

function secretFromFile(file) {
  const path = join(root, file);
  if (!existsSync(path)) return undefined;
  const line = readFileSync(path, "utf8").split("\n").find((l) => l.startsWith("JWT_SECRET="));
  return line?.slice("JWT_SECRET=".length).trim().replace(/^"(.*)"$/, "$1");
}

const secret = values.secret ?? process.env.JWT_SECRET ?? secretFromFile(".dev.vars") ?? secretFromFile(".dev.vars.example");
const ttlSeconds = Number.parseInt(values.ttl, 10);
if (!secret || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
  console.error("mint-token: need a secret (--secret, JWT_SECRET, or .dev.vars) and a positive --ttl");
  process.exit(2);
}
const extra = {};
if (values.iss) extra.iss = values.iss;
if (values.aud) extra.aud = values.aud;
const rooms = values.rooms.split(",").map((r) => r.trim()).filter(Boolean);
console.log(mint({ secret, claims: claimsFor({ sub: values.sub, rooms, ttlSeconds, extra }) }));
