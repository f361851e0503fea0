#!/usr/bin/env bash
# Sets up a fresh Debian machine for the test suite and runs it:
# apt test peers (numpy reference, Jinja2 for the chat-template reference, NLTK for METEOR, protoc with protobuf's well-known types, the
# Python gRPC client and its plugin, Prometheus, openssl for the TLS test
# certificates), npm ci, then node:test, then a smoke subset on Node 24
# (scripts/node24-smoke.sh) when the suite ran on another line. Under CI (CI
# set) a test whose peer is missing fails instead of skipping
# (tests/helpers/test-peer.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# apt-get with up to 3 tries: a mirror's passing hiccup must not fail the run.
apt_get() {
  local try
  for try in 1 2 3; do
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -qq "$@" >/dev/null && return 0
    echo "test.sh: apt-get $* failed (try $try of 3)" >&2
    sleep $((try * 5))
  done
  return 1
}

apt_packages=(python3 python3-numpy python3-jinja2 python3-nltk protobuf-compiler libprotobuf-dev protobuf-compiler-grpc python3-grpcio prometheus openssl)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_get update
  apt_get install -y --no-install-recommends "${missing[@]}"
fi

# webgpu tests (tests/webgpu): the Vulkan loader and Mesa's lavapipe (software Vulkan).
# Debian 12's own Mesa 22.3 lavapipe is too old for Dawn; bookworm-backports' 25.x works.
lvp_version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
if ! dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q "install ok installed" || ! dpkg --compare-versions "${lvp_version:-0}" ge 24; then
  if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ]; then
    # On the machine's own mirror, taken from its existing sources.
    $SUDO ./scripts/add-backports-source.sh
    apt_get update
    apt_get install -y --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1
  else
    apt_get update
    apt_get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1
  fi
fi

npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
npm test
# The suite above ran on this machine's node; Node 24 (the newest LTS line)
# gets a smoke subset on the same node_modules. A failure there fails the run.
if [ "$(node -p 'process.versions.node.split(".")[0]')" != 24 ]; then
  ./scripts/node24-smoke.sh 24
fi
