#!/usr/bin/env bash
# Regenerates the Python gRPC client under clients/python/ from proto/: the
# packages gentune/v1/ (*_pb2.py, *_pb2_grpc.py) and health/v1/ (the standard
# grpc.health.v1 service), each with its __init__.py, made by Debian's protoc
# and grpc_python_plugin.
#
#   scripts/python-stubs.sh            writes clients/python/ (commit the result)
#   scripts/python-stubs.sh OUT_DIR    writes OUT_DIR/ instead (the test that
#                                      proves clients/python/ is current diffs the two)
#
# Needs apt-get install -y protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
# and npm ci (for grpc-health-check's health.proto). Users need none of it: the
# generated code is committed (clients/python/README.md). Not grpc_tools: Debian 12's
# python3-grpc-tools 1.14.1 bundles a protoc too old for proto3 `optional`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/clients/python}"
plugin=/usr/bin/grpc_python_plugin
command -v protoc >/dev/null || { echo "python-stubs: protoc not found (apt-get install -y protobuf-compiler)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "python-stubs: $plugin not found (apt-get install -y protobuf-compiler-grpc)" >&2; exit 1; }
wkt="$("$root/scripts/proto-include.sh")"
health="$root/node_modules/grpc-health-check/proto"
[ -f "$health/health/v1/health.proto" ] || { echo "python-stubs: $health/health/v1/health.proto not found (npm ci)" >&2; exit 1; }

# Only the generated packages: clients/python/README.md and example.py stay.
rm -rf "$out/gentune" "$out/health"
mkdir -p "$out"
gen() { protoc -I"$1" -I"$wkt" --python_out="$out" --grpc_python_out="$out" --plugin=protoc-gen-grpc_python="$plugin" "${@:2}"; }
(cd "$root/proto" && gen "$root/proto" gentune/v1/*.proto)
(cd "$health" && gen "$health" health/v1/health.proto)
# Regular packages, so `import gentune.v1` finds these and nothing else of that name.
for pkg in gentune gentune/v1 health health/v1; do : > "$out/$pkg/__init__.py"; done
