#!/usr/bin/env bash
# Sets up a fresh Debian machine for the test suite and runs it:
# apt test peers (numpy reference, protoc, Python gRPC client), npm ci, then node:test.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(python3 python3-numpy protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-grpc-tools prometheus)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
npm test
