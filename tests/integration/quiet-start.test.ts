/**
 * A default start (`gentune serve`, backend auto) writes nothing but JSON log
 * lines to stderr wherever no GPU is to be had: Dawn's own prints ("Couldn't
 * load Vulkan: ...", "vkCreateInstance: Found no drivers!", lavapipe's limit
 * warnings) stay inside the WebGPU probe's child process and come back as one
 * structured "webgpu probe" line on the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { WebGpuProbe } from '../../src/model/webgpu-probe.js';

const BIN = fileURLToPath(new URL('../../bin/gentune.js', import.meta.url));

interface Start {
  /** Every stdout line, parsed (pino writes the log there). */
  logs: { msg: string; [field: string]: unknown }[];
  /** Every stderr line, as written. */
  stderr: string[];
  code: number | null;
}

/** Starts the real server on free ports, waits until gRPC listens, stops it with SIGTERM. */
async function startAndStop(env: NodeJS.ProcessEnv, wrap: string[] = []): Promise<Start> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gentune-quiet-'));
  const argv = [process.execPath, BIN, 'serve', '--port', '0', '--metrics-port', '0', '--http-port', '0', '--data-dir', dataDir, '--backend', 'auto'];
  const [command, ...args] = [...wrap, ...argv];
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  const logs: Start['logs'] = [];
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const entry = JSON.parse(line);
        logs.push(entry);
        if (entry.msg === 'gRPC server listening') resolve();
      });
      void exited.then((code) => reject(new Error(`serve exited early with ${code}: ${stderr.join('\n')}`)));
    });
    child.kill('SIGTERM');
    return { logs, stderr, code: await exited };
  } finally {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The environment of a plain `npm start`: nothing of this test runner's or of a GENTUNE_* setting. */
function startEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GENTUNE_') && k !== 'NODE_TEST_CONTEXT') env[k] = v;
  return { ...env, ...extra };
}

function assertJsonOnly(stderr: string[]): void {
  for (const line of stderr) assert.doesNotThrow(() => JSON.parse(line), `stderr line is not JSON: ${line}`);
}

function probeLine(logs: Start['logs']): WebGpuProbe {
  const probes = logs.filter((l) => l.msg === 'webgpu probe');
  assert.equal(probes.length, 1, `one "webgpu probe" line, got ${probes.length}`);
  return probes[0] as unknown as WebGpuProbe;
}

test('no Vulkan driver (an empty ICD list): stderr is JSON only; the probe logs the reason and what Dawn printed', async () => {
  // Both names: the loader reads VK_DRIVER_FILES first, VK_ICD_FILENAMES is the older one.
  const r = await startAndStop(startEnv({ VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' }));
  assert.equal(r.code, 0);
  assertJsonOnly(r.stderr);
  const probe = probeLine(r.logs);
  assert.equal(probe.available, false);
  assert.match(probe.reason ?? '', /no WebGPU adapter|could not be loaded/);
  assert.ok(Number.isInteger(probe.durationMs));
  assert.ok(r.logs.some((l) => l.msg === 'backend webgpu unavailable'));
});

/** libvulkan.so.1 where the dynamic loader finds it on Debian/Ubuntu, resolved to the file (undefined if none). */
function vulkanLoader(): string | undefined {
  const candidates = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1'];
  const found = candidates.find((p) => existsSync(p));
  return found ? realpathSync(found) : undefined;
}

// Hiding the loader takes a private mount namespace (an unprivileged user
// namespace): /dev/null bound over libvulkan.so.1 there, for the server only.
const loader = vulkanLoader();
const canUnshare = spawnSync('unshare', ['-rm', 'true']).status === 0;
const noLoaderSkip = !canUnshare ? 'unshare -rm is not permitted here' : !loader ? 'no libvulkan.so.1 on this machine: the default start already runs without one' : false;

test('no Vulkan loader (libvulkan.so.1 hidden): stderr is JSON only, Dawn\'s "Couldn\'t load Vulkan" is in the probe line', { skip: noLoaderSkip }, async () => {
  const wrap = ['unshare', '-rm', 'sh', '-c', `mount --bind /dev/null '${loader}' && exec "$@"`, 'sh'];
  const r = await startAndStop(startEnv(), wrap);
  assert.equal(r.code, 0);
  assertJsonOnly(r.stderr);
  const probe = probeLine(r.logs);
  assert.equal(probe.available, false);
  assert.ok(probe.dawnOutput.some((l) => /Couldn't load Vulkan/.test(l)), probe.dawnOutput.join('\n'));
});

test("this machine's own Vulkan: without a hardware adapter stderr is JSON only", async (t) => {
  const r = await startAndStop(startEnv());
  assert.equal(r.code, 0);
  const probe = probeLine(r.logs);
  if (probe.available) {
    // A GPU is there and auto uses it: Dawn runs in the server itself then, and may print.
    t.diagnostic(`hardware adapter found: ${JSON.stringify(probe)}`);
    assert.ok(r.logs.some((l) => l.msg === 'base model loaded' && l.backend === 'webgpu'));
    return;
  }
  assertJsonOnly(r.stderr);
});
