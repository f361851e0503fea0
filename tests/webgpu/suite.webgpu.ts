/**
 * The model core and the trainer on the webgpu backend (Dawn on lavapipe in
 * CI, a real GPU under scripts/gpu-check.sh). Not a *.test.ts file: it runs in
 * a child process that webgpu.test.ts starts with GENTUNE_TEST_BACKEND=webgpu
 * and VK_DRIVER_FILES set, since the backend is chosen once per process.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { activeBackend, deviceMemory } from '../../src/model/backend.js';
import { webGpuErrorCount } from '../../src/model/webgpu-backend.js';
import { forward, type ForwardInput } from '../../src/model/gpt.js';
import { KvCache } from '../../src/model/kv-cache.js';
import { disposeWeights, weightsFromHost } from '../../src/model/gpt-weights.js';
import { readGpt2Folder } from '../../src/model/checkpoint/hf-gpt2-folder.js';
import { llamaReferenceLogits, makeLlamaPeftAdapter, referenceLogits } from '../reference/numpy-reference.js';
import { loadAdapter } from '../../src/model/checkpoint/peft-adapter.js';
import { disposeAdapter } from '../../src/model/adapter.js';
import { readModelFolder } from '../../src/model/checkpoint/hf-model-folder.js';
import { llamaModelFolder, LLAMA3_LIKE, QWEN3_LIKE } from '../helpers/llama-model.js';
import { testBackend, TINY, tinyModelFolder, tinyWeights } from '../helpers/tiny-model.js';
import { loraSteps, type LoraStepsResult } from './lora-steps.js';

before(async () => {
  assert.equal(process.env.GENTUNE_TEST_BACKEND, 'webgpu', 'run through tests/webgpu/webgpu.test.ts');
  assert.equal(await testBackend(), 'webgpu');
});

after(() => {
  assert.equal(webGpuErrorCount(), 0, 'WebGPU validation errors (see the output): some kernel ran an invalid pipeline');
});

function rowInput(ids: number[], start = 0): ForwardInput {
  return {
    batch: 1,
    length: ids.length,
    ids: Int32Array.from(ids),
    positions: Int32Array.from(ids, (_, i) => start + i),
    valid: new Uint8Array(ids.length).fill(1),
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('the backend is webgpu on a Dawn adapter, and device memory is reported', () => {
  const info = activeBackend();
  assert.equal(info?.name, 'webgpu');
  assert.match(info!.device, /WebGPU via Dawn/);
  console.log(`# device: ${info!.device}`);
  const w = tinyWeights(TINY, 2);
  // A kernel's output lives in a GPU buffer: GetServerInfo and gentune_device_memory_bytes report those bytes.
  const probe = tf.tidy(() => tf.ones([64, 64]).add(1));
  const m = deviceMemory();
  assert.equal(m.backend, 'webgpu');
  assert.ok(m.numTensors > 0 && m.numBytes > 0, JSON.stringify(m));
  assert.ok(m.numBytesInGPU! >= 64 * 64 * 4, `GPU bytes in use: ${JSON.stringify(m)}`);
  assert.ok(m.numBytesAllocatedInGPU! >= m.numBytesInGPU!, JSON.stringify(m));
  probe.dispose();
  disposeWeights(w);
});

test('logits agree with the independent numpy GPT-2 to 1e-4 (gelu_new and gelu)', async () => {
  for (const activationFunction of ['gelu_new', 'gelu'] as const) {
    const config = { ...TINY, activationFunction };
    const dir = await tinyModelFolder(config, 7);
    const ckpt = await readGpt2Folder(dir);
    const weights = weightsFromHost(ckpt.config, ckpt.tensors);
    const ids = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 256, 3];
    const logits = forward(ckpt.config, weights, rowInput(ids));
    const ours = await logits.data();
    const ref = (await referenceLogits(dir, ids)).flat();
    logits.dispose();
    disposeWeights(weights);
    const diff = maxAbsDiff(ours, ref);
    assert.ok(diff < 1e-4, `${activationFunction}: max |webgpu - numpy| = ${diff}`);
  }
});

test('Llama-family logits (Qwen3: head_dim, q/k norm; Llama 3: untied head, llama3 rope) agree with the numpy reference to 1e-4, full and KV-cache decode', async () => {
  for (const [name, json] of [['qwen3', QWEN3_LIKE], ['llama3', LLAMA3_LIKE]] as const) {
    const dir = await llamaModelFolder(json, 5);
    const ckpt = await readModelFolder(dir);
    const weights = weightsFromHost(ckpt.config, ckpt.tensors);
    const ids = [3, 41, 7, 200, 19, 88, 150, 2, 64, 9].map((id) => id % ckpt.config.vocabSize);
    const full = forward(ckpt.config, weights, rowInput(ids));
    const ours = await full.data();
    full.dispose();
    const cache = new KvCache(1);
    const parts: Float32Array[] = [];
    for (let t = 0; t < ids.length; t++) {
      const step = forward(ckpt.config, weights, rowInput([ids[t]], t), { cache });
      parts.push((await step.data()) as Float32Array);
      step.dispose();
    }
    cache.dispose();
    disposeWeights(weights);
    const [ref] = await llamaReferenceLogits(dir, [ids]);
    assert.ok(maxAbsDiff(ours, ref!.flat()) < 1e-4, `${name}: max |webgpu - numpy| = ${maxAbsDiff(ours, ref!.flat())}`);
    const decoded = Float32Array.from(parts.flatMap((p) => Array.from(p)));
    assert.ok(maxAbsDiff(decoded, ours) < 1e-4, `${name}: max |cached - full| = ${maxAbsDiff(decoded, ours)}`);
  }
});

test('a Llama-family PEFT LoRA adapter on all seven projections (Qwen3 shape) agrees with the numpy reference to 1e-4', async () => {
  const dir = await llamaModelFolder(QWEN3_LIKE, 6);
  const adapterDir = `${dir}/adapter`;
  await makeLlamaPeftAdapter(dir, adapterDir, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 9 });
  const ckpt = await readModelFolder(dir);
  const weights = weightsFromHost(ckpt.config, ckpt.tensors);
  const adapter = await loadAdapter(adapterDir, ckpt.config);
  if (adapter.kind !== 'lora') throw new Error('expected a LoRA adapter');
  const ids = [5, 17, 200, 33, 9, 120, 64, 1].map((id) => id % ckpt.config.vocabSize);
  const logits = forward(ckpt.config, weights, rowInput(ids), { segments: [{ start: 0, count: 1, lora: adapter.lora }] });
  const ours = await logits.data();
  logits.dispose();
  disposeAdapter(adapter);
  disposeWeights(weights);
  const [ref] = await llamaReferenceLogits(dir, [ids], adapterDir);
  const [plain] = await llamaReferenceLogits(dir, [ids]);
  assert.ok(maxAbsDiff(plain!.flat(), ref!.flat()) > 1e-2, 'the adapter changes the logits');
  assert.ok(maxAbsDiff(ours, ref!.flat()) < 1e-4, `max |webgpu - numpy| = ${maxAbsDiff(ours, ref!.flat())}`);
});

test('KV-cache decode gives the same logits as a full forward pass', async () => {
  const weights = tinyWeights(TINY, 3);
  const ids = [5, 17, 200, 33, 9, 120, 64, 1, 250, 77];
  const full = forward(TINY, weights, rowInput(ids));
  const fullData = await full.data();
  full.dispose();
  const cache = new KvCache(1);
  const prefill = forward(TINY, weights, rowInput(ids.slice(0, 4)), { cache });
  const parts = [await prefill.data()];
  prefill.dispose();
  for (let t = 4; t < ids.length; t++) {
    const step = forward(TINY, weights, rowInput([ids[t]], t), { cache });
    parts.push(await step.data());
    step.dispose();
  }
  cache.dispose();
  disposeWeights(weights);
  const incremental = Float32Array.from(parts.flatMap((p) => Array.from(p)));
  const diff = maxAbsDiff(incremental, fullData);
  assert.ok(diff < 1e-4, `max |cached - full| = ${diff}`);
});

test('AddN over more inputs than a shader stage has storage buffers is summed in chunks', async () => {
  const before = tf.memory().numTensors;
  const inputs = Array.from({ length: 40 }, (_, i) => tf.fill([3, 5], i + 1));
  const sum = tf.addN(inputs);
  const values = await sum.data();
  tf.dispose([...inputs, sum]);
  assert.ok(values.every((v) => v === (40 * 41) / 2), `got ${values[0]}`);
  assert.equal(tf.memory().numTensors, before);
});

let gpu: LoraStepsResult;
test('LoRA training steps match the wasm backend step for step', async () => {
  gpu = await loraSteps(3);
  assert.equal(gpu.backend, 'webgpu');
  const script = fileURLToPath(new URL('./lora-steps.ts', import.meta.url));
  const env = { ...process.env, GENTUNE_TEST_BACKEND: 'wasm' };
  const child = spawnSync(process.execPath, ['--import', 'tsx', script, '3'], { encoding: 'utf8', env, timeout: 120_000 });
  const line = child.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `wasm reference run failed:\n${child.stderr}`);
  const cpu = JSON.parse(line.slice(7)) as LoraStepsResult;
  assert.equal(cpu.backend, 'wasm');
  assert.equal(gpu.trainableParameters, cpu.trainableParameters);
  console.log(`# webgpu losses ${gpu.losses.join(' ')}; wasm ${cpu.losses.join(' ')}`);
  assert.ok(gpu.losses.every(Number.isFinite) && gpu.gradNorms.every((g) => g > 0));
  assert.ok(maxAbsDiff(gpu.losses, cpu.losses) < 1e-4, `losses webgpu ${gpu.losses} vs wasm ${cpu.losses}`);
  for (let i = 0; i < gpu.gradNorms.length; i++) {
    assert.ok(Math.abs(gpu.gradNorms[i] - cpu.gradNorms[i]) <= 1e-3 * cpu.gradNorms[i], `grad norms webgpu ${gpu.gradNorms} vs wasm ${cpu.gradNorms}`);
  }
});

test('no tensor leaks: forward passes, cached decode and training steps leave the count flat', async () => {
  assert.ok(gpu, 'the training case ran');
  assert.equal(new Set(gpu.tensorsPerStep).size, 1, `tensors after each step: ${gpu.tensorsPerStep}`);
  assert.equal(gpu.tensorsAfter, gpu.tensorsBefore, 'the run frees everything but the base weights');
  const weights = tinyWeights(TINY, 5);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const logits = forward(TINY, weights, rowInput([1, 2, 3, 4]));
    await logits.data();
    logits.dispose();
    const cache = new KvCache(1);
    forward(TINY, weights, rowInput([1, 2, 3]), { cache }).dispose();
    const step = forward(TINY, weights, rowInput([4], 3), { cache });
    await step.data();
    step.dispose();
    cache.dispose();
    assert.equal(tf.memory().numTensors, before, `after round ${i + 1}`);
  }
  disposeWeights(weights);
  assert.equal(tf.memory().numTensors, 0, 'every fixture is freed');
});
