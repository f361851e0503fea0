#!/usr/bin/env bash
# Regenerates the TypeScript protobuf/gRPC code from proto/ with ts-proto, and
# the FileDescriptorSet that server reflection serves.
#
#   scripts/codegen.sh            writes src/gen/, and the Python client under
#                                 clients/python/ (scripts/python-stubs.sh; commit both)
#   scripts/codegen.sh OUT_DIR    writes OUT_DIR/ instead (the test that proves
#                                 src/gen/ is current diffs the two)
#
# Needs protoc with protobuf's well-known types (apt-get install -y
# protobuf-compiler libprotobuf-dev; see scripts/proto-include.sh) and the ts-proto plugin
# from node_modules. The generated files are committed, so a fresh clone builds
# without protoc.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/src/gen}"
plugin="$root/node_modules/.bin/protoc-gen-ts_proto"

command -v protoc >/dev/null || { echo "codegen: protoc not found (apt-get install -y protobuf-compiler)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "codegen: $plugin not found (npm ci)" >&2; exit 1; }
wkt="$("$root/scripts/proto-include.sh")"

# Options: generic grpc-js services; ESM imports with .js suffixes; optional keys
# for message fields; 64-bit integers as numbers; oneofs as tagged unions;
# Buffer for bytes (Node only); uint64 seeds marked jstype=JS_STRING as strings
# so a seed above 2^53 is a validation error naming the field, not a decode error.
opts="outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,useOptionals=messages"
opts="$opts,forceLong=number,env=node,oneof=unions-value,useExactTypes=false,useJsTypeOverride=true"

rm -rf "$out"
mkdir -p "$out"
gen() { protoc -I. -I"$wkt" --plugin="protoc-gen-ts_proto=$plugin" --ts_proto_out="$out" --ts_proto_opt="$opts" "$@"; }

# Our API (-> $out/gentune/v1/*.ts, $out/google/protobuf/timestamp.ts).
(cd "$root/proto" && gen gentune/v1/*.proto)
# The standard health service, for the typed client (-> $out/health/v1/health.ts).
(cd "$root/node_modules/grpc-health-check/proto" && gen health/v1/health.proto)
# Every .proto the server speaks, as protoc's FileDescriptorSet with the real
# file names and imports (-> $out/descriptor-set.binpb): server reflection serves
# these bytes (src/server/reflection.ts), and src/client/proto-json.ts prints
# proto3's canonical JSON from them with @bufbuild/protobuf. No source info, so comments do not
# change it.
health="$root/node_modules/grpc-health-check/proto"
(cd "$root/proto" && protoc -I. -I"$health" -I"$wkt" --include_imports --descriptor_set_out="$out/descriptor-set.binpb" gentune/v1/*.proto health/v1/health.proto)

# The committed Python client, from the same protos (only when writing src/gen/:
# the drift test checks clients/python/ on its own).
if [ $# -eq 0 ]; then "$root/scripts/python-stubs.sh"; fi
