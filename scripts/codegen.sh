#!/usr/bin/env bash
# Regenerates the TypeScript protobuf/gRPC code from proto/ with ts-proto.
#
#   scripts/codegen.sh            writes src/gen/ (commit the result)
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
# Our API's descriptors (FileDescriptorSet, binary), from which src/client/proto-json.ts
# prints proto3's canonical JSON with @bufbuild/protobuf. Without --include_imports:
# google/protobuf/timestamp.proto comes from @bufbuild/protobuf's own copy, so the
# file does not depend on which libprotobuf-dev made it.
(cd "$root/proto" && protoc -I. -I"$wkt" --descriptor_set_out="$out/gentune/v1/descriptors.binpb" gentune/v1/*.proto)
# The standard health service, for the typed client (-> $out/health/v1/health.ts).
(cd "$root/node_modules/grpc-health-check/proto" && gen health/v1/health.proto)
