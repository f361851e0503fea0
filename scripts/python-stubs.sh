#!/usr/bin/env bash
# Generates the Python gRPC stubs (gentune/v1/*_pb2.py, *_pb2_grpc.py and the
# standard health service's health/v1/health_pb2*.py) into OUT_DIR, with
# Debian's protoc and grpc_python_plugin:
#
#   apt-get install -y protobuf-compiler protobuf-compiler-grpc libprotobuf-dev python3-grpcio
#   scripts/python-stubs.sh OUT_DIR
#
# (python3-grpc-tools' `python3 -m grpc_tools.protoc` bundles a protoc too old
# for proto3 `optional`, which our .proto files use.)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: scripts/python-stubs.sh OUT_DIR}"
plugin=/usr/bin/grpc_python_plugin
command -v protoc >/dev/null || { echo "python-stubs: protoc not found (apt-get install -y protobuf-compiler)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "python-stubs: $plugin not found (apt-get install -y protobuf-compiler-grpc)" >&2; exit 1; }
wkt="$("$root/scripts/proto-include.sh")"
health="$root/node_modules/grpc-health-check/proto"
[ -f "$health/health/v1/health.proto" ] || { echo "python-stubs: $health/health/v1/health.proto not found (npm ci)" >&2; exit 1; }

mkdir -p "$out"
gen() { protoc -I"$1" -I"$wkt" --python_out="$out" --grpc_python_out="$out" --plugin=protoc-gen-grpc_python="$plugin" "${@:2}"; }
(cd "$root/proto" && gen "$root/proto" gentune/v1/*.proto)
(cd "$health" && gen "$health" health/v1/health.proto)
