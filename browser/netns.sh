#!/usr/bin/env bash
# Runs a command inside a private network namespace made here: loopback plus a veth pair with
# addresses of its own (10.77.0.1 and 10.77.0.2). Chromium's WebRTC gathers no candidates on a
# loopback-only host, and the test's TURN server needs a non-loopback address; nothing in the
# namespace can reach any other network. Needs root (unshare, ip).
#
#   bash browser/netns.sh node --test browser/test/
set -euo pipefail
if [ -z "${EDGESIGNAL_IN_NETNS:-}" ]; then
  exec unshare --net env EDGESIGNAL_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
ip link add es0 type veth peer name es1
ip addr add 10.77.0.1/24 dev es0
ip addr add 10.77.0.2/24 dev es1
ip link set es0 up
ip link set es1 up
ip route add default via 10.77.0.2 dev es0 2>/dev/null || true
exec "$@"
