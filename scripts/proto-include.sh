#!/usr/bin/env bash
# Prints the folder that holds protobuf's well-known types
# (google/protobuf/timestamp.proto, which proto/gentune/v1/adapters.proto
# imports). Debian's protobuf-compiler does not ship them: libprotobuf-dev puts
# them in /usr/include (scripts/test.sh installs it); python3-grpc-tools has a
# copy too. Exits 1, saying what to install, when none is found.
set -euo pipefail
for dir in /usr/include /usr/local/include /usr/lib/python3/dist-packages/grpc_tools/_proto; do
  if [ -f "$dir/google/protobuf/timestamp.proto" ]; then echo "$dir"; exit 0; fi
done
echo "protobuf's well-known .proto files (google/protobuf/timestamp.proto) not found: apt-get install -y libprotobuf-dev" >&2
exit 1
