#!/usr/bin/env bash
# Runs edgesignal locally on http://127.0.0.1:8787 (wrangler dev on workerd), after installing
# everything it needs. The dev secret comes from .dev.vars, made from .dev.vars.example.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$EDGESIGNAL_ROOT"
bash scripts/setup.sh
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "dev: created .dev.vars from .dev.vars.example (the documented dev secret)"
fi
# The web console, with a dev token in the URL fragment (which never reaches the server): open
# both links, in two windows, and call one from the other.
port="${PORT:-8787}"
for who in alice bob; do
  token="$(node scripts/mint-token.mjs --sub "$who" --rooms 'lobby,team-*' --ttl 86400)"
  echo "dev: console as $who: http://127.0.0.1:$port/#room=lobby&name=$who&token=$token"
done
echo "dev: the Robot Agent joins lobby with: node agent/agent.mjs --room lobby --video"
echo "dev: mint a token with: node scripts/mint-token.mjs --sub alice --rooms 'lobby,team-*' [--alg ES256|EdDSA|RS256]"
# wrangler runs the [build] command from wrangler.toml (scripts/build.sh) before it serves.
exec npx --no-install wrangler dev --ip 127.0.0.1 --port "$port" --log-level "${WRANGLER_LOG:-info}" "$@"
