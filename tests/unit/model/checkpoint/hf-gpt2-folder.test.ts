import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgument, NotFound } from '../../../../src/common/errors.js';
import type { Gpt2Config } from '../../../../src/model/gpt-config.js';
import { hfTensorShapes } from '../../../../src/model/gpt-config.js';
import { randomGpt2Tensors, readGpt2Folder, writeGpt2Folder } from '../../../../src/model/checkpoint/hf-gpt2-folder.js';
import { float16ToFloat32, float32ToFloat16 } from '../../../../src/model/checkpoint/dtype.js';
import { readSafetensors, writeSafetensors } from '../../../../src/model/checkpoint/safetensors.js';
import type { HostTensor } from '../../../../src/model/checkpoint/safetensors.js';
import { referenceLogits } from '../../../reference/numpy-reference.js';

const TINY: Gpt2Config = {
  nEmbd: 8,
  nLayer: 2,
  nHead: 2,
  nPositions: 16,
  vocabSize: 12,
  layerNormEpsilon: 1e-5,
  activationFunction: 'gelu_new',
};

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'gentune-gpt2-folder-'));
}

async function rejectsWith(promise: Promise<unknown>, type: typeof InvalidArgument | typeof NotFound, message: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    assert.ok(err.message.includes(message), `"${err.message}" should include "${message}"`);
    return true;
  });
}

test('randomGpt2Tensors: every tensor, seeded, LN weights near 1, biases non-zero', () => {
  const a = randomGpt2Tensors(TINY, 7);
  const shapes = hfTensorShapes(TINY);
  assert.deepEqual([...a.keys()], [...shapes.keys()]);
  for (const [name, shape] of shapes) assert.deepEqual(a.get(name)!.shape, shape, name);
  assert.deepEqual(randomGpt2Tensors(TINY, 7), a, 'same seed, same tensors');
  assert.notDeepEqual(randomGpt2Tensors(TINY, 8).get('wte.weight'), a.get('wte.weight'));
  const mean = (t: HostTensor) => t.data.reduce((s, x) => s + x, 0) / t.data.length;
  const rms = (t: HostTensor) => Math.sqrt(t.data.reduce((s, x) => s + x * x, 0) / t.data.length);
  for (const name of ['h.0.ln_1.weight', 'h.1.ln_2.weight', 'ln_f.weight']) {
    const t = a.get(name)!;
    assert.ok(Math.abs(mean(t) - 1) < 0.15, name);
    assert.ok(t.data.some((x) => x !== 1), `${name} has noise`);
  }
  for (const name of ['h.0.attn.c_attn.bias', 'h.1.mlp.c_proj.bias', 'ln_f.bias']) {
    assert.ok(a.get(name)!.data.every((x) => x !== 0), `${name} non-zero`);
  }
  const w = a.get('h.0.mlp.c_fc.weight')!;
  assert.ok(rms(w) > 0.01 && rms(w) < 0.03, `weights ~ N(0, 0.02), rms ${rms(w)}`);
});

test('writeGpt2Folder then readGpt2Folder round-trips config and tensors (F32 exact, F16 rounded)', async () => {
  const dir = await tempDir();
  const tensors = randomGpt2Tensors(TINY, 1);
  const f32 = join(dir, 'f32');
  await writeGpt2Folder(f32, TINY, tensors, { extraConfig: { eos_token_id: 3 } });
  assert.deepEqual((await readdir(f32)).sort(), ['config.json', 'model.safetensors']);
  const config = JSON.parse(await readFile(join(f32, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'gpt2');
  assert.equal(config.eos_token_id, 3);
  assert.equal(config.torch_dtype, 'float32');
  const { metadata, tensors: raw } = await readSafetensors(join(f32, 'model.safetensors'));
  assert.deepEqual(metadata, { format: 'pt' });
  assert.ok(raw.has('wte.weight') && !raw.has('transformer.wte.weight'), 'bare HF names');
  const back = await readGpt2Folder(f32);
  assert.deepEqual(back.config, TINY);
  assert.deepEqual(back.tensors, tensors);

  const f16 = join(dir, 'f16');
  await writeGpt2Folder(f16, TINY, tensors, { dtype: 'F16' });
  assert.equal(JSON.parse(await readFile(join(f16, 'config.json'), 'utf8')).torch_dtype, 'float16');
  const half = await readGpt2Folder(f16);
  for (const [name, t] of tensors) {
    assert.deepEqual(half.tensors.get(name)!.data, float16ToFloat32(float32ToFloat16(t.data)), name);
  }
  await rm(dir, { recursive: true });
});

test('readGpt2Folder accepts the transformer. prefix and ignores lm_head and attention-mask buffers', async () => {
  const dir = await tempDir();
  const tensors = randomGpt2Tensors(TINY, 2);
  await writeGpt2Folder(dir, TINY, tensors);
  const prefixed = new Map<string, HostTensor>();
  for (const [name, t] of tensors) prefixed.set(`transformer.${name}`, t);
  prefixed.set('lm_head.weight', tensors.get('wte.weight')!);
  prefixed.set('transformer.h.0.attn.bias', { shape: [1, 1, 16, 16], data: new Float32Array(256) });
  prefixed.set('transformer.h.1.attn.masked_bias', { shape: [], data: new Float32Array([-1e4]) });
  prefixed.set('h.1.attn.bias', { shape: [1, 1, 16, 16], data: new Float32Array(256) });
  await writeSafetensors(join(dir, 'model.safetensors'), prefixed, { metadata: { format: 'pt' } });
  const back = await readGpt2Folder(dir);
  assert.deepEqual([...back.tensors.keys()], [...hfTensorShapes(TINY).keys()]);
  assert.deepEqual(back.tensors, tensors);
  await rm(dir, { recursive: true });
});

test('readGpt2Folder (and the numpy reference) skip BOOL mask buffers written by newer exports', async () => {
  const dir = await tempDir();
  const tensors = randomGpt2Tensors(TINY, 5);
  await writeGpt2Folder(dir, TINY, tensors);
  // Rebuild model.safetensors by hand with an extra BOOL `h.0.attn.bias` first in the buffer.
  const model = join(dir, 'model.safetensors');
  const mask = Buffer.alloc(16 * 16, 1);
  const header: Record<string, unknown> = { 'transformer.h.0.attn.bias': { dtype: 'BOOL', shape: [1, 1, 16, 16], data_offsets: [0, mask.length] } };
  const blobs: Buffer[] = [mask];
  let at = mask.length;
  for (const [name, t] of tensors) {
    header[`transformer.${name}`] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + t.data.byteLength] };
    blobs.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    at += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  await writeFile(model, Buffer.concat([prefix, json, ...blobs]));
  assert.deepEqual((await readGpt2Folder(dir)).tensors, tensors);
  assert.equal((await referenceLogits(dir, [1, 2, 3])).length, 3);
  await rm(dir, { recursive: true });
});

test('readGpt2Folder names the file and the tensor for missing, misshapen, unexpected or duplicate tensors', async () => {
  const dir = await tempDir();
  const model = join(dir, 'model.safetensors');
  const write = async (edit: (m: Map<string, HostTensor>) => void): Promise<void> => {
    const m = randomGpt2Tensors(TINY, 3);
    edit(m);
    await writeSafetensors(model, m);
  };
  await writeGpt2Folder(dir, TINY, randomGpt2Tensors(TINY, 3));

  await write((m) => m.delete('h.1.attn.c_attn.weight'));
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, `${model}: missing tensor \`h.1.attn.c_attn.weight\``);
  await write((m) => m.set('wte.weight', { shape: [10, 8], data: new Float32Array(80) }));
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, `${model}: tensor \`wte.weight\` has shape [10,8], expected [12,8]`);
  await write((m) => m.set('h.2.ln_1.weight', { shape: [8], data: new Float32Array(8) }));
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, `${model}: unexpected tensor \`h.2.ln_1.weight\``);
  await write((m) => m.set('transformer.wpe.weight', m.get('wpe.weight')!));
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, `${model}: tensor \`wpe.weight\` appears both`);

  await writeFile(model, Buffer.from('garbage'));
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, model);
  await rm(model);
  await rejectsWith(readGpt2Folder(dir), NotFound, model);

  const config = join(dir, 'config.json');
  await writeFile(config, '{"n_embd": 8,');
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, `${config}: not valid JSON`);
  await writeFile(config, JSON.stringify({ n_embd: 8, n_layer: 2, n_head: 3, n_positions: 16, vocab_size: 12 }));
  await rejectsWith(readGpt2Folder(dir), InvalidArgument, `${config}: \`n_embd\` (8) must be divisible`);
  await rm(config);
  await rejectsWith(readGpt2Folder(dir), NotFound, config);
  await rejectsWith(readGpt2Folder(join(dir, 'nope')), NotFound, 'nope');
  await rm(dir, { recursive: true });
});

test('writeGpt2Folder validates before writing anything', async () => {
  const root = await tempDir();
  const dir = join(root, 'model');
  const tensors = randomGpt2Tensors(TINY, 4);
  tensors.set('h.0.mlp.c_fc.weight', { shape: [32, 8], data: new Float32Array(256) });
  await rejectsWith(writeGpt2Folder(dir, TINY, tensors), InvalidArgument, 'tensor `h.0.mlp.c_fc.weight` has shape [32,8], expected [8,32]');
  await assert.rejects(readdir(dir), { code: 'ENOENT' }, 'folder not even created');
  await rm(root, { recursive: true });
});
