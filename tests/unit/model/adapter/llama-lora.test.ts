import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type Adapter, disposeAdapter } from '../../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter, saveAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { readModelFolder } from '../../../../src/model/checkpoint/hf-model-folder.js';
import type { LlamaConfig } from '../../../../src/model/gpt-config.js';
import { disposeWeights, type LlamaWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { forward, type ForwardInput, type ForwardOptions } from '../../../../src/model/gpt.js';
import { createKvCache, KvCache } from '../../../../src/model/kv-cache.js';
import { LLAMA_LORA_TARGETS, type LoraModule, type LoraWeights, type RowSegment } from '../../../../src/model/lora.js';
import { onHostBackend } from '../../../../src/model/kernels/host-memory.js';
import { mergeLora, unmergeLora } from '../../../../src/model/merge-adapter.js';
import { llamaReferenceLogits, makeLlamaPeftAdapter } from '../../../reference/numpy-reference.js';
import { testBackend } from '../../../helpers/tiny-model.js';
import { type HfConfigJson, LLAMA3_LIKE, llamaModelFolder, QWEN2_LIKE, QWEN3_LIKE } from '../../../helpers/llama-model.js';
import { inspectAdapter, maxAbsDiff, take } from './peft-reference.js';

// LoRA on the Llama family against the numpy reference (tests/reference/llama_reference.py),
// which applies PEFT adapters as PEFT's Linear does: full forward, KV-cache
// decode, a left-padded batch, and one batch mixing two adapters and the base.

const TOL = 1e-4;
const TIMEOUT = { timeout: 120_000 };
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const SHAPES: [string, HfConfigJson][] = [
  ['Qwen3-like (q 256 / kv 128 wide, q/k norm)', QWEN3_LIKE],
  ['Llama-3-like (4:1 GQA, kv 32 wide, untied head)', LLAMA3_LIKE],
  ['Qwen2-like (q/k/v biases under the deltas)', QWEN2_LIKE],
];

interface Loaded {
  dir: string;
  config: LlamaConfig;
  weights: LlamaWeights;
}
const models = new Map<HfConfigJson, Loaded>();
let root: string;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-llama-lora-'));
  for (const [, json] of SHAPES) {
    const dir = await llamaModelFolder(json, 23);
    const ckpt = await readModelFolder(dir);
    const config = ckpt.config as LlamaConfig;
    models.set(json, { dir, config, weights: weightsFromHost(config, ckpt.tensors) });
  }
});

after(async () => {
  for (const m of models.values()) {
    disposeWeights(m.weights);
    await rm(m.dir, { recursive: true, force: true });
  }
  await rm(root, { recursive: true, force: true });
});

/** Seeded ids in [0, vocab). */
const ids = (n: number, vocab: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % vocab);

/** Rows left-padded to the longest, positions from 0 at each row's first real token. */
function leftPadded(rows: number[][]): ForwardInput {
  const T = Math.max(...rows.map((r) => r.length));
  const pad = (r: number[]) => new Array<number>(T - r.length).fill(0);
  return {
    batch: rows.length,
    length: T,
    ids: Int32Array.from(rows.flatMap((r) => [...pad(r), ...r])),
    positions: Int32Array.from(rows.flatMap((r) => [...pad(r), ...r.map((_, i) => i)])),
    valid: Uint8Array.from(rows.flatMap((r) => [...pad(r), ...r.map(() => 1)])),
  };
}

/** One token per row at each row's next position. */
const stepInput = (next: number[], positions: number[]): ForwardInput => ({
  batch: next.length,
  length: 1,
  ids: Int32Array.from(next),
  positions: Int32Array.from(positions),
  valid: new Uint8Array(next.length).fill(1),
});

/** max |ours - ref| over the last `ref.length` rows of a row-major [rows, vocab] block. */
function tailDiff(ours: Float32Array, ref: number[][], vocab: number): number {
  const offset = ours.length - ref.length * vocab;
  return maxAbsDiff(ours.subarray(offset), ref.flat());
}

function loraOf(a: Adapter): LoraWeights {
  if (a.kind !== 'lora') throw new Error('expected a LoRA adapter');
  return a.lora;
}

for (const [i, [label, json]] of SHAPES.entries()) {
  test(`${label}: a PEFT adapter on all 7 projections matches numpy to ${TOL}: full forward, KV decode, left-padded batch`, TIMEOUT, async () => {
    const { dir: modelDir, config, weights } = models.get(json)!;
    const V = config.vocabSize;
    const dir = join(root, `peft-${i}`);
    // Rank 4 runs the host LoRA kernel on wasm/cpu; rsLoRA and BF16 storage on one shape each.
    await makeLlamaPeftAdapter(modelDir, dir, { r: 4, lora_alpha: 8, use_rslora: i === 1, target_modules: ALL, seed: 40 + i, dtype: i === 2 ? 'BF16' : 'F32' });
    const before = tf.memory().numTensors;
    const adapter = await loadAdapter(dir, config);
    const lora = loraOf(adapter);
    assert.deepEqual(adapter.kind === 'lora' && adapter.config.targetModules, [...LLAMA_LORA_TARGETS]);
    assert.equal(lora.scale, i === 1 ? 4 : 2);
    assert.equal(lora.modules.size, config.nLayer * 7);
    const kv = config.nKvHead * config.headDim;
    assert.deepEqual(lora.modules.get('1.self_attn.k_proj')!.b.shape, [4, kv], 'b = B^T: [r, nKvHeads * headDim]');
    assert.deepEqual(lora.modules.get('0.mlp.down_proj')!.a.shape, [config.nInner, 4], 'a = A^T: [intermediate_size, r]');

    const long = ids(16, V, 1);
    const short = ids(7, V, 2);
    const next = [long[3], short[4]];
    const [refLong, refShort, refLongNext, refShortNext] = await llamaReferenceLogits(modelDir, [long, short, [...long, next[0]], [...short, next[1]]], dir);
    const [plainLong] = await llamaReferenceLogits(modelDir, [long]);
    assert.ok(maxAbsDiff(plainLong.flat(), refLong.flat()) > 1e-2, 'the adapter changes the logits far beyond the tolerance');
    const all = (rows: number): ForwardOptions => ({ segments: [{ start: 0, count: rows, lora }] });

    const full = await take(forward(config, weights, leftPadded([long]), all(1)));
    assert.ok(tailDiff(full, refLong, V) < TOL, `full forward: ${tailDiff(full, refLong, V)}`);

    // Both caches: the tensor cache and the paged one (the host backends' default).
    for (const kind of ['tensor', 'paged'] as const) {
      const cache = createKvCache(config, 1, kind);
      const steps = [await take(forward(config, weights, leftPadded([long.slice(0, 5)]), { ...all(1), cache }))];
      for (let t = 5; t < long.length; t++) steps.push(await take(forward(config, weights, stepInput([long[t]], [t]), { ...all(1), cache })));
      cache.dispose();
      const decoded = Float32Array.from(steps.flatMap((s) => Array.from(s)));
      assert.ok(tailDiff(decoded, refLong, V) < TOL, `KV decode (${kind}): ${tailDiff(decoded, refLong, V)}`);
    }

    const batchCache = new KvCache(2);
    const padded = await take(forward(config, weights, leftPadded([long, short]), { ...all(2), cache: batchCache }));
    const T = long.length;
    const rowDiff = Math.max(tailDiff(padded.subarray(0, T * V), refLong, V), tailDiff(padded, refShort, V));
    assert.ok(rowDiff < TOL, `left-padded batch: ${rowDiff}`);
    const stepped = await take(forward(config, weights, stepInput(next, [T, short.length]), { ...all(2), cache: batchCache, output: 'last' }));
    batchCache.dispose();
    const stepDiff = Math.max(tailDiff(stepped.subarray(0, V), [refLongNext[T]], V), tailDiff(stepped, [refShortNext[short.length]], V));
    assert.ok(stepDiff < TOL, `padded batch decode step: ${stepDiff}`);

    disposeAdapter(adapter);
    assert.equal(tf.memory().numTensors, before, 'every tensor of the adapter, passes and caches is freed');
  });
}

test('one batch of two adapters and a base row, prefill and a decode step, matches numpy row by row (host kernel and stacked path)', TIMEOUT, async () => {
  const { dir: modelDir, config, weights } = models.get(QWEN3_LIKE)!;
  const V = config.vocabSize;
  // One from numpy on q_proj and v_proj (PEFT's default for the family); one made here on every projection, saved and reloaded.
  const dir1 = join(root, 'mix-1');
  await makeLlamaPeftAdapter(modelDir, dir1, { r: 4, lora_alpha: 12, target_modules: ['q_proj', 'v_proj'], seed: 51 });
  const dir2 = join(root, 'mix-2');
  const dir3 = join(root, 'mix-3');
  const made = (r: number, seed: number) =>
    initLoraAdapter(config, { r, loraAlpha: 2 * r + 1, loraDropout: 0, targetModules: [...LLAMA_LORA_TARGETS], useRslora: true }, { seed, init: false });
  for (const [dir, r, seed] of [[dir2, 8, 52], [dir3, 2, 53]] as const) {
    const a = made(r, seed);
    await saveAdapter(dir, a, config);
    disposeAdapter(a);
  }
  const before = tf.memory().numTensors;
  const a1 = await loadAdapter(dir1, config);
  assert.deepEqual(a1.kind === 'lora' && a1.config.targetModules, ['self_attn.q_proj', 'self_attn.v_proj']);
  const rows = [ids(11, V, 3), ids(6, V, 4), ids(9, V, 5)];
  const next = [7, 8, 9];
  const refs = async (row: number, dir?: string) => llamaReferenceLogits(modelDir, [rows[row], [...rows[row], next[row]]], dir);
  const T = Math.max(...rows.map((r) => r.length));

  for (const [other, kernel] of [[dir2, true], [dir3, false]] as const) {
    const a2 = await loadAdapter(other, config);
    const segments: RowSegment[] = [
      { start: 0, count: 1, lora: loraOf(a1) },
      { start: 1, count: 1 },
      { start: 2, count: 1, lora: loraOf(a2) },
    ];
    const cache = new KvCache(3);
    const prefill = await take(forward(config, weights, leftPadded(rows), { segments, cache }));
    const profile = await tf.profile(() => forward(config, weights, stepInput(next, rows.map((r) => r.length)), { segments, cache, output: 'last' }));
    const step = await take(profile.result as tf.Tensor);
    cache.dispose();
    // Rank 8 fits the host kernel (ranks and widths in multiples of 4); rank 2 takes the stacked matMuls.
    if (onHostBackend()) assert.equal(profile.kernels.some((k) => k.name === 'GentuneLoraDelta'), kernel, `host kernel ran: ${kernel}`);
    for (const [r, dir] of [dir1, undefined, other].entries()) {
      const [ref, refNext] = await refs(r, dir);
      const got = prefill.subarray(r * T * V, (r + 1) * T * V);
      assert.ok(tailDiff(got, ref, V) < TOL, `row ${r} prefill: ${tailDiff(got, ref, V)}`);
      const gotNext = step.subarray(r * V, (r + 1) * V);
      assert.ok(tailDiff(gotNext, [refNext.at(-1)!], V) < TOL, `row ${r} decode step: ${tailDiff(gotNext, [refNext.at(-1)!], V)}`);
    }
    disposeAdapter(a2);
  }
  disposeAdapter(a1);
  assert.equal(tf.memory().numTensors, before);
});

test('save -> load round-trips a Llama LoRA adapter exactly, in PEFT\'s layout and config, and numpy reads it to the same logits', TIMEOUT, async () => {
  const { dir: modelDir, config, weights } = models.get(LLAMA3_LIKE)!;
  const targets = ['self_attn.k_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj'] as const;
  const adapter = initLoraAdapter(config, { r: 4, loraAlpha: 16, loraDropout: 0.1, targetModules: [...targets], useRslora: false }, { seed: 61, init: false, layers: [1], baseModel: 'llama3-like' });
  const dir = join(root, 'saved');
  await saveAdapter(dir, adapter, config);

  const { config: json, tensors } = await inspectAdapter(dir);
  assert.equal(json.peft_type, 'LORA');
  assert.equal(json.fan_in_fan_out, false);
  assert.deepEqual(json.target_modules, ['k_proj', 'o_proj', 'gate_proj', 'down_proj']);
  assert.equal(json.r, 4);
  assert.equal(json.lora_alpha, 16);
  assert.equal(json.use_rslora, false);
  assert.equal(json.base_model_name_or_path, 'llama3-like');
  assert.deepEqual(json.layers_to_transform, [1]);
  assert.equal(json.layers_pattern, 'layers');
  const d = config.nEmbd;
  const kv = config.nKvHead * config.headDim;
  const P = 'base_model.model.model.layers.1.';
  assert.deepEqual(tensors[`${P}self_attn.k_proj.lora_A.weight`], { dtype: 'F32', shape: [4, d] });
  assert.deepEqual(tensors[`${P}self_attn.k_proj.lora_B.weight`], { dtype: 'F32', shape: [kv, 4] });
  assert.deepEqual(tensors[`${P}mlp.down_proj.lora_A.weight`], { dtype: 'F32', shape: [4, config.nInner] });
  assert.equal(Object.keys(tensors).length, 2 * targets.length);

  const loaded = await loadAdapter(dir, config);
  assert.equal(loaded.kind, 'lora');
  if (loaded.kind !== 'lora') return;
  assert.deepEqual(loaded.config, adapter.config);
  assert.equal(loaded.baseModel, 'llama3-like');
  for (const [key, m] of adapter.lora.modules) {
    const l: LoraModule = loaded.lora.modules.get(key)!;
    assert.deepEqual(await l.a.data(), await m.a.data(), `${key}.a`);
    assert.deepEqual(await l.b.data(), await m.b.data(), `${key}.b`);
  }
  const row = ids(12, config.vocabSize, 6);
  const seg = (lora: LoraWeights): ForwardOptions => ({ segments: [{ start: 0, count: 1, lora }] });
  const ours = await take(forward(config, weights, leftPadded([row]), seg(adapter.lora)));
  assert.deepEqual(await take(forward(config, weights, leftPadded([row]), seg(loaded.lora))), ours, 'same logits, bit for bit');
  const [ref] = await llamaReferenceLogits(modelDir, [row], dir);
  const [plain] = await llamaReferenceLogits(modelDir, [row]);
  assert.ok(maxAbsDiff(ours, ref.flat()) < TOL, `ours vs numpy on the saved files: ${maxAbsDiff(ours, ref.flat())}`);
  assert.ok(maxAbsDiff(plain.flat(), ref.flat()) > 1e-2, 'the adapter has a visible effect');

  // Merged into the weights, it computes what the segment does; unmerged, the base comes back.
  const merged = mergeLora(weights, adapter.lora);
  assert.ok(maxAbsDiff(await take(forward(config, merged.weights, leftPadded([row]))), ours) < TOL, 'merged vs segment');
  assert.equal(merged.weights.blocks[0].self_attn.k_proj, weights.blocks[0].self_attn.k_proj, 'layer 0 is shared');
  const restored = unmergeLora(merged.weights, adapter.lora);
  const base = await take(forward(config, weights, leftPadded([row])));
  assert.ok(maxAbsDiff(await take(forward(config, restored.weights, leftPadded([row]))), base) < 1e-5, 'unmerged vs base');
  restored.dispose();
  merged.dispose();
  disposeAdapter(loaded);
  disposeAdapter(adapter);
});
