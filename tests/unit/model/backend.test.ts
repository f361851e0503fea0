import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The backend is chosen once per process, so each case runs in a child.
const backendModule = fileURLToPath(new URL('../../../src/model/backend.ts', import.meta.url));

function choose(requested: string): { status: number | null; out: string } {
  const script = `
    const { initBackend } = await import(${JSON.stringify(backendModule)});
    const lines = [];
    try {
      const info = await initBackend(${JSON.stringify(requested)}, { log: (m) => lines.push(m) });
      console.log(JSON.stringify({ info, lines }));
    } catch (e) {
      console.log(JSON.stringify({ error: e.message, lines }));
    }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout.trim().split('\n').pop() ?? '' };
}

test('auto picks tfjs-node when installed, else wasm with SIMD, and logs each try', () => {
  const { status, out } = choose('auto');
  assert.equal(status, 0);
  const r = JSON.parse(out);
  let hasNode = true;
  try {
    import.meta.resolve('@tensorflow/tfjs-node-gpu');
  } catch {
    hasNode = false;
  }
  if (r.info.name === 'tensorflow') {
    assert.ok(hasNode);
  } else {
    assert.equal(r.info.name, 'wasm');
    assert.match(r.info.device, /simd/);
    assert.ok(r.lines.some((l: string) => /backend tensorflow (unavailable|failed)/.test(l)), r.lines.join('\n'));
  }
  assert.ok(r.lines.some((l: string) => l.startsWith(`backend ${r.info.name} (`)));
});

test('an explicit backend is used or fails clearly; cpu always works', () => {
  const cpu = JSON.parse(choose('cpu').out);
  assert.equal(cpu.info.name, 'cpu');
  const wasm = JSON.parse(choose('wasm').out);
  assert.equal(wasm.info.name, 'wasm');
  const webgpu = JSON.parse(choose('webgpu').out);
  if (webgpu.info) assert.equal(webgpu.info.name, 'webgpu');
  else assert.match(webgpu.error, /no TensorFlow.js backend could be initialised \(asked for webgpu\)/);
});
