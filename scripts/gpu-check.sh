#!/usr/bin/env bash
# GPU check for the webgpu backend (TensorFlow.js on Dawn over Vulkan).
#
# On a Linux host with an NVIDIA GPU and nothing prepared, one command:
#   1. installs what is missing: libvulkan1 + python3-numpy (apt, as root or
#      with password-less sudo), Node 20 (an official tarball, unpacked into
#      the cache dir) when `node` is missing or older, and node_modules (npm ci);
#   2. finds the NVIDIA Vulkan driver (writes a fallback ICD manifest when the
#      driver's library is there without one) and prints the WebGPU adapter;
#   3. runs the webgpu test suite (tests/webgpu: numpy parity, KV cache,
#      LoRA steps vs wasm, tensor leaks) on that adapter;
#   4. runs bench/decode.ts and bench/train.ts with --backend webgpu;
# and writes everything under bench/results/gpu/ (adapter.json, webgpu-tests.log,
# decode.json, train.json, summary.json, one .log per stage).
#
# Usage: scripts/gpu-check.sh [options]
#   --icd system|lavapipe|PATH  Vulkan driver: the machine's own (default), Mesa's
#                               lavapipe (software; implies --allow-software), or
#                               an ICD manifest file
#   --out DIR                   results folder (default bench/results/gpu)
#   --models LIST               decode models (default embedded,gpt2)
#   --tokens N                  decode steps measured (default 32)
#   --train-configs LIST        bench/train.ts configs a,b,c (default a,c)
#   --train-methods LIST        lora,last_layers (default lora,last_layers)
#   --train-steps N             timed steps per case (default 5)
#   --train-batch N             sequences per micro-batch (default 8)
#   --train-seq N               tokens per sequence (default 128)
#   --quick                     smoke-test sizes: embedded only, 8 tokens, config a,
#                               lora only, 2 steps, batch 2, seq 32
#   --stage-timeout SECONDS     limit per stage (default 3600)
#   --skip-install              install nothing (apt, Node, npm ci)
#   --skip-tests, --skip-bench  leave out a stage
#   --allow-software            go on when the adapter is a software one
#   --dry-run                   print the plan and the commands; change and run nothing
#   -h, --help
# Exit status: 0 when every stage run passed, 1 when one failed, 2 for bad usage.
set -uo pipefail

usage() { sed -n '2,/^# Exit status/s/^# \{0,1\}//p' "$0"; }
die_usage() {
  echo "gpu-check: $1" >&2
  echo "run scripts/gpu-check.sh --help for the options" >&2
  exit 2
}

icd=system
out=bench/results/gpu
models=embedded,gpt2
tokens=32
train_configs=a,c
train_methods=lora,last_layers
train_steps=5
train_batch=8
train_seq=128
stage_timeout=3600
skip_install=0
skip_tests=0
skip_bench=0
allow_software=0
dry_run=0

need_value() { [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || die_usage "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --icd) need_value "$@"; icd=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --models) need_value "$@"; models=$2; shift 2 ;;
    --tokens) need_value "$@"; tokens=$2; shift 2 ;;
    --train-configs) need_value "$@"; train_configs=$2; shift 2 ;;
    --train-methods) need_value "$@"; train_methods=$2; shift 2 ;;
    --train-steps) need_value "$@"; train_steps=$2; shift 2 ;;
    --train-batch) need_value "$@"; train_batch=$2; shift 2 ;;
    --train-seq) need_value "$@"; train_seq=$2; shift 2 ;;
    --stage-timeout) need_value "$@"; stage_timeout=$2; shift 2 ;;
    --quick) models=embedded; tokens=8; train_configs=a; train_methods=lora; train_steps=2; train_batch=2; train_seq=32; shift ;;
    --skip-install) skip_install=1; shift ;;
    --skip-tests) skip_tests=1; shift ;;
    --skip-bench) skip_bench=1; shift ;;
    --allow-software) allow_software=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
  esac
done

positive() { [[ "$2" =~ ^[1-9][0-9]{0,6}$ ]] || die_usage "$1 must be a positive integer, got '$2'"; }
positive --tokens "$tokens"
positive --train-steps "$train_steps"
positive --train-batch "$train_batch"
positive --train-seq "$train_seq"
positive --stage-timeout "$stage_timeout"
list_of() {
  local flag=$1 value=$2 allowed=$3 item
  [ -n "$value" ] || die_usage "$flag must not be empty"
  IFS=, read -r -a items <<<"$value"
  for item in "${items[@]}"; do
    [[ " $allowed " == *" $item "* ]] || die_usage "$flag: '$item' is not one of: $allowed"
  done
}
list_of --models "$models" "embedded gpt2"
list_of --train-configs "$train_configs" "a b c"
list_of --train-methods "$train_methods" "lora last_layers"

cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
cache=${GENTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gentune}

# The ICD the tests and benches run on (exported as VK_DRIVER_FILES unless "system").
lavapipe_icd() {
  local d n m
  m=$(uname -m)
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    for n in "lvp_icd.$m.json" lvp_icd.json; do [ -f "$d/$n" ] && { echo "$d/$n"; return 0; }; done
  done
  return 1
}
case "$icd" in
  system) ;;
  lavapipe) allow_software=1 ;;
  *)
    if [ -f "$icd" ]; then icd=$(cd "$(dirname "$icd")" && pwd)/$(basename "$icd")
    elif [ "$dry_run" = 0 ]; then die_usage "--icd: no such manifest '$icd'"; fi
    ;;
esac
case "$out" in /*) ;; *) out=$root/$out ;; esac

say() { printf '\n== %s\n' "$*"; }
run() { # prints the command; runs it unless --dry-run
  printf '+ %s\n' "$*"
  [ "$dry_run" = 1 ] || "$@"
}
have() { command -v "$1" >/dev/null 2>&1; }

if [ "$dry_run" = 0 ]; then mkdir -p "$out" || exit 1; fi
stages=()
record() { stages+=("$1|$2|$3|$4"); } # name|status|seconds|detail

# ---------------------------------------------------------------- host
say "host"
echo "$(uname -srm); $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}")"
if have nvidia-smi; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/GPU /'
else
  echo "nvidia-smi not found (no NVIDIA driver here, or a container without the 'utility' capability)"
fi
echo "NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES:-(unset)}  icd=$icd  out=$out"

# ---------------------------------------------------------------- install
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
apt_install() { # packages... (only those missing)
  local missing=() p
  have dpkg-query || { echo "no dpkg: install $* with the system's package manager"; return 0; }
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { echo "apt: $* already installed"; return 0; }
  if [ "$SUDO" = none ]; then
    echo "apt: missing ${missing[*]}, and not root (no password-less sudo): install them, then rerun" >&2
    return 1
  fi
  run $SUDO apt-get update -qq && run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

node_major() { have node && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
install_node() { # Node 20 from nodejs.org into the cache, first on PATH
  local arch file base
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) echo "no Node build for $(uname -m)" >&2; return 1 ;; esac
  base=https://nodejs.org/dist/latest-v20.x
  local fetch
  if have curl; then fetch="curl -fsSL"; elif have wget; then fetch="wget -qO-"; else echo "need curl or wget to fetch Node 20" >&2; return 1; fi
  if [ "$dry_run" = 1 ]; then
    echo "+ $fetch $base/SHASUMS256.txt; fetch node-v20.*-linux-$arch.tar.xz, check its sha256, unpack into $cache"
    return 0
  fi
  mkdir -p "$cache" || return 1
  local sums
  sums=$($fetch "$base/SHASUMS256.txt") || { echo "cannot reach $base" >&2; return 1; }
  file=$(echo "$sums" | awk -v a="linux-$arch.tar.xz" '$2 ~ a"$" { print $2; exit }')
  [ -n "$file" ] || { echo "no linux-$arch tarball listed at $base" >&2; return 1; }
  if [ ! -x "$cache/${file%.tar.xz}/bin/node" ]; then
    echo "fetching $base/$file"
    $fetch "$base/$file" >"$cache/$file" || return 1
    echo "$sums" | grep " $file\$" | (cd "$cache" && sha256sum -c --quiet -) || { echo "checksum mismatch for $file" >&2; return 1; }
    tar -xJf "$cache/$file" -C "$cache" && rm -f "$cache/$file" || return 1
  fi
  export PATH="$cache/${file%.tar.xz}/bin:$PATH"
}

if [ "$skip_install" = 0 ]; then
  say "install"
  t0=$SECONDS
  ok=pass
  pkgs=(libvulkan1 python3 python3-numpy)
  [ "$icd" = lavapipe ] && ! lavapipe_icd >/dev/null && pkgs+=(mesa-vulkan-drivers)
  apt_install "${pkgs[@]}" || ok=fail
  if [ "$(node_major)" -lt 20 ]; then
    echo "node $(have node && node -v || echo missing): fetching Node 20"
    install_node || ok=fail
  fi
  have node && echo "node $(node -v), npm $(npm -v 2>/dev/null)"
  # npm ci when node_modules is missing or older than the lockfile. Install
  # scripts off: only tfjs-node-gpu has one that matters (a libtensorflow
  # download for the CUDA path), and this check runs --backend webgpu.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -d node_modules/webgpu ]; then
    run npm ci --ignore-scripts --no-audit --no-fund || ok=fail
  else
    echo "node_modules up to date with package-lock.json"
  fi
  record install "$ok" $((SECONDS - t0)) ""
else
  have node || { echo "node is not installed and --skip-install was given" >&2; exit 1; }
fi

# ---------------------------------------------------------------- driver
say "vulkan driver"
export GENTUNE_WEBGPU_TEST_ICD=system
case "$icd" in
  system)
    unset VK_DRIVER_FILES VK_ICD_FILENAMES 2>/dev/null
    manifests=$(ls /etc/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json 2>/dev/null | tr '\n' ' ')
    echo "ICD manifests: ${manifests:-none}"
    if ! echo "$manifests" | grep -q nvidia; then
      lib=$(ldconfig -p 2>/dev/null | grep -oE 'libEGL_nvidia\.so\.0|libGLX_nvidia\.so\.0' | head -n1)
      if [ -n "$lib" ]; then
        # The driver is there without its manifest (a container toolkit that
        # mounts the libraries only): use one of ours. EGL works headless.
        echo "no nvidia_icd.json but $lib is installed: using a manifest for it"
        if [ "$dry_run" = 0 ]; then
          mkdir -p "$cache" && printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >"$cache/nvidia_icd.json"
          export VK_DRIVER_FILES=$cache/nvidia_icd.json GENTUNE_WEBGPU_TEST_ICD=$cache/nvidia_icd.json
        fi
      else
        echo "no NVIDIA Vulkan driver found (no nvidia_icd.json, no libEGL_nvidia.so.0 / libGLX_nvidia.so.0)."
        echo "In a container: run with --gpus all and NVIDIA_DRIVER_CAPABILITIES including 'graphics' (see deploy/docker/GPU.md)."
      fi
    fi
    ;;
  lavapipe)
    if lvp=$(lavapipe_icd); then
      export VK_DRIVER_FILES=$lvp GENTUNE_WEBGPU_TEST_ICD=$lvp
      echo "lavapipe: VK_DRIVER_FILES=$lvp"
    elif [ "$dry_run" = 0 ]; then
      echo "lavapipe is not installed (apt-get install mesa-vulkan-drivers; on Debian 12 from bookworm-backports)" >&2
    fi
    ;;
  *)
    export VK_DRIVER_FILES=$icd GENTUNE_WEBGPU_TEST_ICD=$icd
    echo "VK_DRIVER_FILES=$icd"
    ;;
esac

# ---------------------------------------------------------------- adapter
say "adapter"
adapter_ok=1
probe_script="const { probeWebGpuAdapter } = await import('$root/src/model/webgpu-backend.ts');
const r = await probeWebGpuAdapter();
console.log('ADAPTER ' + JSON.stringify(r));"
if [ "$dry_run" = 1 ]; then
  echo "+ node --import tsx --input-type=module -e '<probeWebGpuAdapter()>' > $out/adapter.json"
else
  t0=$SECONDS
  line=$(timeout 120 node --import tsx --input-type=module -e "$probe_script" 2> >(grep -v 'artificially reduced' >&2) | grep '^ADAPTER ' | head -n1)
  json=${line#ADAPTER }
  if [ -z "$line" ]; then
    echo "the adapter probe failed to run (is node_modules installed?)"
    record adapter fail $((SECONDS - t0)) "probe failed"
    adapter_ok=0
  else
    echo "$json" >"$out/adapter.json"
    node -e '
      const r = JSON.parse(process.argv[1]);
      if (!r.adapter) { console.log("no adapter: " + r.reason); process.exit(0); }
      const a = r.adapter;
      console.log(`vendor ${a.vendor || "?"}, architecture ${a.architecture || "?"}, device ${a.device || "?"}`);
      console.log(`description: ${a.description || "?"}${a.software ? "  [SOFTWARE adapter]" : ""}`);' "$json"
    if ! echo "$json" | grep -q '"adapter"'; then
      record adapter fail $((SECONDS - t0)) "no WebGPU adapter"
      adapter_ok=0
    elif echo "$json" | grep -q '"software":true' && [ "$allow_software" = 0 ]; then
      echo "only a software adapter: the NVIDIA Vulkan driver is not visible (see above); --allow-software goes on anyway"
      record adapter fail $((SECONDS - t0)) "software adapter"
      adapter_ok=0
    else
      record adapter pass $((SECONDS - t0)) "$(echo "$json" | sed -n 's/.*"description":"\([^"]*\)".*/\1/p')"
    fi
  fi
fi

# ---------------------------------------------------------------- stages
stage() { # name logfile command...: runs with the stage timeout, logs, records
  local name=$1 log=$2 t0=$SECONDS status
  shift 2
  say "$name"
  if [ "$dry_run" = 1 ]; then
    printf '+ %s\n' "$*"
    return 0
  fi
  if [ "$adapter_ok" = 0 ]; then
    echo "skipped: no usable adapter"
    record "$name" skipped 0 "no usable adapter"
    return 0
  fi
  printf '+ %s\n' "$*"
  timeout --kill-after=30 "$stage_timeout" "$@" 2>&1 | grep --line-buffered -v 'artificially reduced' | tee "$log"
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 0 ]; then
    record "$name" pass $((SECONDS - t0)) ""
  else
    [ "$status" -eq 124 ] && echo "timed out after ${stage_timeout}s"
    record "$name" fail $((SECONDS - t0)) "exit $status"
  fi
  return 0
}

if [ "$skip_tests" = 0 ]; then
  stage webgpu-tests "$out/webgpu-tests.log" node scripts/run-tests.mjs tests/webgpu
  # A suite that skipped (no adapter after all) is not a pass.
  if [ "$dry_run" = 0 ] && [ -f "$out/webgpu-tests.log" ] && ! grep -q 'ℹ skipped 0' "$out/webgpu-tests.log"; then
    last=${stages[-1]}
    [[ "$last" == webgpu-tests\|pass* ]] && stages[-1]="webgpu-tests|fail|${last#webgpu-tests|pass|}suite skipped"
  fi
fi

if [ "$skip_bench" = 0 ]; then
  # bench/decode.ts always writes bench/results/decode.json: keep whatever is
  # there (another backend's results) and move this run's file to $out.
  decode_json=bench/results/decode.json
  backup=""
  if [ "$dry_run" = 0 ] && [ -f "$decode_json" ]; then
    backup=$(mktemp) && cp "$decode_json" "$backup"
  fi
  restore() { if [ -n "$backup" ]; then mv -f "$backup" "$decode_json"; backup=""; fi; }
  trap 'restore; exit 130' INT TERM
  stage decode-bench "$out/decode.log" node --import tsx bench/decode.ts --backend webgpu --models "$models" --tokens "$tokens"
  if [ "$dry_run" = 1 ]; then
    echo "+ mv $decode_json $out/decode.json"
  elif [[ "${stages[-1]}" == decode-bench\|pass* ]] && [ -f "$decode_json" ]; then
    mv -f "$decode_json" "$out/decode.json"
  fi
  restore
  trap - INT TERM

  stage train-bench "$out/train.log" node --import tsx bench/train.ts --backend webgpu --configs "$train_configs" --methods "$train_methods" \
    --steps "$train_steps" --batch "$train_batch" --seq "$train_seq" --out "$out/train.json"
fi

# ---------------------------------------------------------------- summary
say "summary"
if [ "$dry_run" = 1 ]; then
  echo "dry run: nothing was installed or run; results would go to $out"
  exit 0
fi
failed=0
printf '%-14s %-8s %6s  %s\n' stage status seconds detail
for s in "${stages[@]}"; do
  IFS='|' read -r name status secs detail <<<"$s"
  printf '%-14s %-8s %6s  %s\n' "$name" "$status" "$secs" "$detail"
  [ "$status" = fail ] && failed=1
done
node -e '
  const fs = require("node:fs");
  const [out, icd, ...stages] = process.argv.slice(1);
  const read = (f) => { try { return JSON.parse(fs.readFileSync(`${out}/${f}`, "utf8")); } catch { return undefined; } };
  const summary = {
    date: new Date().toISOString(),
    icd,
    vkDriverFiles: process.env.VK_DRIVER_FILES ?? null,
    adapter: read("adapter.json")?.adapter ?? null,
    stages: stages.map((s) => { const [name, status, seconds, detail] = s.split("|"); return { name, status, seconds: Number(seconds), detail }; }),
    decode: read("decode.json")?.rows ?? null,
    train: (read("train.json")?.results ?? []).map((r) => ({ config: r.shape, method: r.method, tokensPerSecond: r.tokensPerSecond, secondsPerStep: r.secondsPerStep, batch: r.batch, seqLen: r.seqLen })),
  };
  fs.writeFileSync(`${out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  console.log(`wrote ${out}/summary.json`);' "$out" "$icd" "${stages[@]}"
exit "$failed"
