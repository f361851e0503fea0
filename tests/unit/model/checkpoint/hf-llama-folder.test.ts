import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument, NotFound } from '../../../../src/common/errors.js';
import { readModelFolder } from '../../../../src/model/checkpoint/hf-model-folder.js';
import { readLlamaFolder } from '../../../../src/model/checkpoint/hf-llama-folder.js';
import { readGpt2Folder } from '../../../../src/model/checkpoint/hf-gpt2-folder.js';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from '../../../../src/model/checkpoint/dtype.js';
import { type HostTensor, writeSafetensors } from '../../../../src/model/checkpoint/safetensors.js';
import { disposeWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import { forward } from '../../../../src/model/gpt.js';
import { llamaReferenceLogits } from '../../../reference/numpy-reference.js';
import { testBackend } from '../../../helpers/tiny-model.js';
import { LLAMA3_LIKE, llamaConfig, llamaTensors, QWEN3_LIKE, writeLlamaFolder } from '../../../helpers/llama-model.js';

let root: string;
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-llama-folder-'));
});
after(() => rm(root, { recursive: true, force: true }));

async function rejectsWith(promise: Promise<unknown>, type: typeof InvalidArgument | typeof NotFound, message: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    assert.ok(err.message.includes(message), `"${err.message}" should include "${message}"`);
    return true;
  });
}

const widen = (data: Float32Array, dtype: 'F16' | 'BF16') => (dtype === 'F16' ? float16ToFloat32(float32ToFloat16(data)) : bfloat16ToFloat32(float32ToBfloat16(data)));

test('F16 and BF16 checkpoints load widened exactly, and their logits match the numpy reference reading the same file', async () => {
  const tensors = llamaTensors(QWEN3_LIKE, 3);
  const ids = [5, 17, 200, 33, 9, 120, 64, 1];
  for (const dtype of ['F16', 'BF16'] as const) {
    const dir = join(root, dtype);
    await writeLlamaFolder(dir, QWEN3_LIKE, tensors, { dtype });
    const ckpt = await readModelFolder(dir);
    for (const [name, t] of tensors) assert.deepEqual(ckpt.tensors.get(name)!.data, widen(t.data, dtype), `${dtype} ${name}`);
    // Rounded, not truncated or left at float32: the values moved.
    assert.notDeepEqual(ckpt.tensors.get('model.embed_tokens.weight')!.data, tensors.get('model.embed_tokens.weight')!.data);
    const weights = weightsFromHost(ckpt.config, ckpt.tensors);
    const logits = forward(ckpt.config, weights, { batch: 1, length: ids.length, ids: Int32Array.from(ids), positions: Int32Array.from(ids, (_, i) => i), valid: new Uint8Array(ids.length).fill(1) });
    const ours = (await logits.data()) as Float32Array;
    logits.dispose();
    disposeWeights(weights);
    const [ref] = await llamaReferenceLogits(dir, [ids]);
    const V = ckpt.config.vocabSize;
    const diff = ours.reduce((m, x, i) => Math.max(m, Math.abs(x - ref[Math.floor(i / V)][i % V])), 0);
    assert.ok(diff < 1e-4, `${dtype}: max |ours - numpy| = ${diff}`);
  }
});

test('a sharded checkpoint (model.safetensors.index.json) loads the same tensors as one file; its faults are named', async () => {
  const tensors = llamaTensors(LLAMA3_LIKE, 4);
  const single = join(root, 'single');
  const sharded = join(root, 'sharded');
  await writeLlamaFolder(single, LLAMA3_LIKE, tensors);
  await writeLlamaFolder(sharded, LLAMA3_LIKE, tensors, { shards: 3 });
  const a = await readModelFolder(single);
  const b = await readModelFolder(sharded);
  assert.deepEqual([...b.tensors.keys()], [...a.tensors.keys()]);
  for (const [name, t] of a.tensors) assert.deepEqual(b.tensors.get(name)!.data, t.data, name);
  // The numpy reference reads the shards too (the forward test's folders are single files).
  const [ref] = await llamaReferenceLogits(sharded, [[1, 2, 3]]);
  const [refSingle] = await llamaReferenceLogits(single, [[1, 2, 3]]);
  assert.deepEqual(ref, refSingle);

  const index = join(sharded, 'model.safetensors.index.json');
  const indexJson = JSON.parse(await readFile(index, 'utf8')) as { weight_map: Record<string, string> };
  const shard = indexJson.weight_map['lm_head.weight'];
  // A tensor the index places in a shard that lacks it.
  const moved = { ...indexJson, weight_map: { ...indexJson.weight_map, 'lm_head.weight': indexJson.weight_map['model.norm.weight'] } };
  if (moved.weight_map['lm_head.weight'] === shard) throw new Error('fixture: pick tensors of different shards');
  await writeFile(index, JSON.stringify(moved));
  await rejectsWith(readModelFolder(sharded), InvalidArgument, `no tensor \`lm_head.weight\`, which model.safetensors.index.json places in this shard`);
  // A tensor the index does not list at all is missing from the checkpoint.
  const { ['lm_head.weight']: _, ...rest } = indexJson.weight_map;
  await writeFile(index, JSON.stringify({ weight_map: rest }));
  await rejectsWith(readModelFolder(sharded), InvalidArgument, `${index}: missing tensor \`lm_head.weight\``);
  // A shard outside the folder, and a missing shard.
  await writeFile(index, JSON.stringify({ weight_map: { ...indexJson.weight_map, 'lm_head.weight': '../elsewhere.safetensors' } }));
  await rejectsWith(readModelFolder(sharded), InvalidArgument, '`weight_map.lm_head.weight` must be a file name in the folder');
  await writeFile(index, JSON.stringify(indexJson));
  await unlink(join(sharded, shard));
  await rejectsWith(readModelFolder(sharded), NotFound, `${join(sharded, shard)}: no such file`);
  await writeFile(index, '{"weight_map": [1]}');
  await rejectsWith(readModelFolder(sharded), InvalidArgument, '`weight_map` must be an object');
  await unlink(index);
  await rejectsWith(readModelFolder(sharded), NotFound, `${join(sharded, 'model.safetensors')}: no such file (nor model.safetensors.index.json)`);
});

test('tensor names: LlamaModel names without `model.`, old inv_freq buffers and a tied lm_head copy load; missing, misshapen and unexpected tensors are named', async () => {
  const config = llamaConfig(QWEN3_LIKE);
  const tensors = llamaTensors(QWEN3_LIKE, 5);
  const dir = join(root, 'names');
  const bare = new Map<string, HostTensor>([...tensors].map(([k, v]) => [k.replace(/^model\./, ''), v]));
  bare.set('layers.0.self_attn.rotary_emb.inv_freq', { shape: [32], data: new Float32Array(32) });
  bare.set('lm_head.weight', tensors.get('model.embed_tokens.weight')!); // tied: transformers re-ties it
  await writeLlamaFolder(dir, QWEN3_LIKE, bare);
  const ckpt = await readLlamaFolder(dir);
  assert.deepEqual([...ckpt.tensors.keys()], [...tensors.keys()]);
  assert.deepEqual(ckpt.config, config);

  const model = join(dir, 'model.safetensors');
  const write = (m: Map<string, HostTensor>) => writeSafetensors(model, m);
  const without = new Map(tensors);
  without.delete('model.layers.1.self_attn.k_norm.weight');
  await write(without);
  await rejectsWith(readModelFolder(dir), InvalidArgument, `${model}: missing tensor \`model.layers.1.self_attn.k_norm.weight\``);
  await write(new Map([...tensors, ['model.layers.0.self_attn.q_proj.weight', { shape: [128, 256], data: new Float32Array(128 * 256) }]]));
  await rejectsWith(readModelFolder(dir), InvalidArgument, 'tensor `model.layers.0.self_attn.q_proj.weight` has shape [128,256], expected [256,128]');
  await write(new Map([...tensors, ['model.layers.0.self_attn.q_proj.bias', { shape: [256], data: new Float32Array(256) }]]));
  await rejectsWith(readModelFolder(dir), InvalidArgument, 'unexpected tensor `model.layers.0.self_attn.q_proj.bias` (config.json describes model_type qwen3');
  await write(new Map([...tensors, ['layers.0.input_layernorm.weight', tensors.get('model.layers.0.input_layernorm.weight')!]]));
  await rejectsWith(readModelFolder(dir), InvalidArgument, 'appears both with and without `model.`');
  // The family readers refuse each other's folders.
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, '`model_type` qwen3 is not GPT-2');
});

test('loading uploads every tensor once and disposeWeights frees them all (projections stored [in, out])', async () => {
  const dir = join(root, 'memory');
  const tensors = llamaTensors(LLAMA3_LIKE, 6);
  await writeLlamaFolder(dir, LLAMA3_LIKE, tensors);
  const ckpt = await readModelFolder(dir);
  const before = tf.memory().numTensors;
  const weights = weightsFromHost(ckpt.config, ckpt.tensors);
  // Untied: each checkpoint tensor once (lm_head transposed in place of itself).
  assert.equal(tf.memory().numTensors - before, tensors.size);
  assert.equal(weights.family, 'llama');
  if (weights.family !== 'llama') return;
  const q = weights.blocks[0].self_attn.q_proj.weight;
  assert.deepEqual(q.shape, [128, 128]);
  const hf = tensors.get('model.layers.0.self_attn.k_proj.weight')!; // [out 32, in 128]
  const k = (await weights.blocks[0].self_attn.k_proj.weight.data()) as Float32Array; // [in, out]
  assert.equal(k[5 * 32 + 3], hf.data[3 * 128 + 5]);
  assert.deepEqual(weights.lmHeadT.shape, [128, 300]);
  disposeWeights(weights);
  assert.equal(tf.memory().numTensors, before);
});
