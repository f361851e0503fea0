/**
 * The webgpu backend, tested on Mesa's lavapipe (a software Vulkan driver) so
 * that any machine can run it: tests/webgpu/suite.webgpu.ts runs in a child
 * process with GENTUNE_TEST_BACKEND=webgpu and VK_DRIVER_FILES pointing at
 * lavapipe. Skipped, saying why, where the package or the driver is missing.
 * GENTUNE_WEBGPU_TEST_ICD=system keeps the machine's own Vulkan drivers (a
 * real GPU: scripts/gpu-check.sh); a path picks that ICD manifest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lavapipeIcd, missingForWebGpu } from './environment.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

test('model and training code never read tensors back synchronously (dataSync/arraySync fail on webgpu)', () => {
  const found: string[] = [];
  for (const dir of ['src/model', 'src/training']) {
    for (const file of sourceFiles(join(root, dir))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.replace(/\/\/.*$/, '');
          if (/\.(dataSync|arraySync|bufferSync)\s*\(/.test(code) || /\breadSync\s*\(/.test(code)) {
            found.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`);
          }
        });
    }
  }
  assert.deepEqual(found, [], `synchronous readbacks (use await tensor.data()):\n${found.join('\n')}`);
});

/** The ICD the suite runs on: the env's choice, else lavapipe. Undefined = the system's drivers. */
function icd(): string | undefined {
  const chosen = process.env.GENTUNE_WEBGPU_TEST_ICD;
  if (chosen === 'system') return undefined;
  return chosen || lavapipeIcd();
}

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GENTUNE_TEST_BACKEND: 'webgpu' };
  // The child runs its own test runner, not as a subtest of this one.
  delete env.NODE_TEST_CONTEXT;
  const manifest = icd();
  if (manifest) {
    env.VK_DRIVER_FILES = manifest;
    delete env.VK_ICD_FILENAMES;
  }
  return env;
}

/** Why the suite cannot run here, if it cannot: missing pieces, or no adapter Dawn accepts. */
function skipReason(): string | undefined {
  const missing = process.env.GENTUNE_WEBGPU_TEST_ICD === 'system' ? undefined : missingForWebGpu();
  if (missing) return missing;
  const probe = `const { probeWebGpuAdapter } = await import(${JSON.stringify(join(root, 'src/model/webgpu-backend.ts'))});
    console.log('PROBE ' + JSON.stringify(await probeWebGpuAdapter()));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { encoding: 'utf8', env: childEnv(), timeout: 60_000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('PROBE '));
  if (!line) return `the WebGPU probe failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  const p = JSON.parse(line.slice(6)) as { adapter?: unknown; reason?: string };
  if (!p.adapter) {
    return `${p.reason} with VK_DRIVER_FILES=${icd() ?? '(system)'}; Debian 12's own Mesa 22.3 lavapipe is too old for Dawn: install mesa-vulkan-drivers from bookworm-backports (scripts/test.sh does)`;
  }
  return undefined;
}

const missing = skipReason();
const reason = skipWithoutPeer(missing);
if (reason) console.log(`# webgpu tests skipped: ${reason}`);

test('model core, KV cache, LoRA training and tensor accounting on the webgpu backend (child process)', { skip: reason ? `skipped: ${reason}` : false, timeout: 15 * 60_000 }, (t) => {
  requirePeer(missing);
  const suite = fileURLToPath(new URL('./suite.webgpu.ts', import.meta.url));
  const started = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', suite], {
    encoding: 'utf8',
    env: childEnv(),
    timeout: 14 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  // Dawn prints a warning per device about its dynamic-offset limits: noise here.
  const output = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .filter((l) => !/artificially reduced/.test(l))
    .join('\n');
  for (const line of output.split('\n')) if (/^\s*(✔|✖|﹣|# device|# webgpu)/.test(line)) t.diagnostic(line.trim());
  t.diagnostic(`child took ${((performance.now() - started) / 1000).toFixed(1)} s on VK_DRIVER_FILES=${icd() ?? '(system)'}`);
  assert.equal(r.status, 0, `webgpu suite failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${output}`);
});
