#!/usr/bin/env bash
# Sets up a fresh Debian machine for the test suite and runs it:
# apt test peers (numpy reference, protoc, Python gRPC client, openssl for the TLS
# test certificates), npm ci, then node:test.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(python3 python3-numpy protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-grpc-tools prometheus openssl)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# webgpu tests (tests/webgpu): the Vulkan loader and Mesa's lavapipe (software Vulkan).
# Debian 12's own Mesa 22.3 lavapipe is too old for Dawn; bookworm-backports' 25.x works.
lvp_version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
if ! dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q "install ok installed" || ! dpkg --compare-versions "${lvp_version:-0}" ge 24; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ]; then
    grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ \
      || echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
fi

npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
npm test
