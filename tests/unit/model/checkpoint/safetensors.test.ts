import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgument, NotFound } from '../../../../src/common/errors.js';
import { Rng } from '../../../../src/common/rng.js';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from '../../../../src/model/checkpoint/dtype.js';
import { readSafetensors, writeSafetensors } from '../../../../src/model/checkpoint/safetensors.js';
import type { HostTensor } from '../../../../src/model/checkpoint/safetensors.js';
import { REFERENCE_SCRIPT } from '../../../reference/numpy-reference.js';

const TIMEOUT = { timeout: 60_000 };

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'gentune-safetensors-'));
}

function python(code: string, input = ''): string {
  const r = spawnSync('/usr/bin/python3', ['-c', code], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function sample(seed: number): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const t = (shape: number[], scale = 1): HostTensor => ({
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()),
  });
  return new Map([
    ['b.weight', t([3, 5])],
    ['a.bias', t([7], 100)],
    ['scalar', t([])],
    ['empty', t([0, 4])],
    ['z.big', t([2, 3, 4], 1e-3)],
  ]);
}

/** A safetensors file from a raw header (object or text) and data bytes. */
async function craft(path: string, header: unknown, data: Uint8Array, headerLength?: bigint): Promise<void> {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  await writeFile(path, Buffer.concat([prefix, json, data]));
}

async function rejectsInvalid(path: string, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(readSafetensors(path), (err: unknown) => {
    assert.ok(err instanceof InvalidArgument, `expected InvalidArgument, got ${String(err)}`);
    assert.ok(err.message.includes(path), `message names the file: ${err.message}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

test('F32 round trip is exact, with metadata, scalars and empty tensors; layout follows the spec', TIMEOUT, async () => {
  const dir = await tempDir();
  const path = join(dir, 'm.safetensors');
  const tensors = sample(1);
  await writeSafetensors(path, tensors, { metadata: { format: 'pt', note: 'héllo' } });
  const { tensors: back, metadata } = await readSafetensors(path);
  assert.deepEqual(metadata, { format: 'pt', note: 'héllo' });
  assert.deepEqual([...back.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, t] of tensors) assert.deepEqual(back.get(name), t, name);

  const bytes = await readFile(path);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0, 'header padded to 8-byte alignment');
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  assert.match(text, /^\{.*\} *$/);
  const header = JSON.parse(text);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const byOffset = [...names].sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0] || header[a].data_offsets[1] - header[b].data_offsets[1]);
  assert.deepEqual(byOffset, [...names].sort(), 'tensors laid out in sorted name order');
  assert.deepEqual(header['b.weight'], { dtype: 'F32', shape: [3, 5], data_offsets: [28, 88] }); // after a.bias (7 floats)
  assert.equal(bytes.length, 8 + n + 4 * (15 + 7 + 1 + 0 + 24));
  await rm(dir, { recursive: true });
});

test('F16 and BF16 round trips round like the converters; writes are atomic', TIMEOUT, async () => {
  const dir = await tempDir();
  const tensors = sample(2);
  tensors.set('special', { shape: [5], data: new Float32Array([Infinity, -Infinity, 70000, 1e-9, -0]) });
  for (const dtype of ['F16', 'BF16'] as const) {
    const path = join(dir, `${dtype}.safetensors`);
    await writeSafetensors(path, new Map([['old', { shape: [1], data: new Float32Array([1]) }]]));
    await writeSafetensors(path, tensors, { dtype });
    const { tensors: back, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, {});
    assert.equal(back.has('old'), false, 'file replaced');
    const rt = dtype === 'F16'
      ? (x: Float32Array) => float16ToFloat32(float32ToFloat16(x))
      : (x: Float32Array) => bfloat16ToFloat32(float32ToBfloat16(x));
    for (const [name, t] of tensors) {
      const b = back.get(name)!;
      assert.deepEqual(b.shape, t.shape);
      assert.deepEqual(b.data, rt(t.data), `${dtype} ${name}`);
    }
    const bytes = await readFile(path);
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString());
    assert.equal(header['a.bias'].dtype, dtype);
    assert.equal(header['a.bias'].data_offsets[1] - header['a.bias'].data_offsets[0], 14);
  }
  assert.deepEqual((await readdir(dir)).sort(), ['BF16.safetensors', 'F16.safetensors'], 'no temporary files left');
  await rm(dir, { recursive: true });
});

test('writeSafetensors rejects bad tensors and names', async () => {
  const dir = await tempDir();
  const path = join(dir, 'x.safetensors');
  const bad = new Map([['w', { shape: [2, 3], data: new Float32Array(5) }]]);
  await assert.rejects(writeSafetensors(path, bad), (e: unknown) => e instanceof InvalidArgument && /`w`.*5 values.*needs 6/.test(e.message));
  const meta = new Map([['__metadata__', { shape: [1], data: new Float32Array(1) }]]);
  await assert.rejects(writeSafetensors(path, meta), InvalidArgument);
  await assert.rejects(writeSafetensors(path, sample(1), { dtype: 'F64' as 'F32' }), InvalidArgument);
  assert.deepEqual(await readdir(dir), [], 'nothing written');
  await rm(dir, { recursive: true });
});

test('reads a file written by an independent numpy writer (F32, F16, BF16, unsorted header, no padding)', TIMEOUT, async () => {
  const dir = await tempDir();
  const path = join(dir, 'numpy.safetensors');
  const values = [0.5, -1.25, 3.140625, 1e-3, -65504, 2 ** -20];
  python(
    `import json, struct, sys, numpy as np
path, vals = sys.argv[1], np.array(json.loads(sys.argv[2]), dtype=np.float32)
bf16 = (vals.view(np.uint32) >> 16).astype('<u2')  # truncation: its own rounding, on purpose
blobs = [('z_f16', 'F16', [3, 2], vals.astype('<f2').tobytes()),
         ('a_f32', 'F32', [2, 3], vals.astype('<f4').tobytes()),
         ('m_bf16', 'BF16', [6], bf16.tobytes())]
header, data = {'__metadata__': {'format': 'np', 'who': 'numpy'}}, b''
for name, dt, shape, b in blobs:
    header[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [len(data), len(data) + len(b)]}
    data += b
h = json.dumps(header).encode()
open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
`.replace('sys.argv[1]', JSON.stringify(path)).replace('sys.argv[2]', JSON.stringify(JSON.stringify(values))),
  );
  const { tensors, metadata } = await readSafetensors(path);
  assert.deepEqual(metadata, { format: 'np', who: 'numpy' });
  assert.deepEqual(tensors.get('a_f32'), { shape: [2, 3], data: new Float32Array(values) });
  assert.deepEqual(tensors.get('z_f16'), { shape: [3, 2], data: float16ToFloat32(float32ToFloat16(new Float32Array(values))) });
  const truncated = new Uint32Array(new Float32Array(values).buffer).map((b) => (b >>> 16) << 16);
  assert.deepEqual(tensors.get('m_bf16'), { shape: [6], data: new Float32Array(truncated.buffer) });
  await rm(dir, { recursive: true });
});

test('files written here read back identically with the independent numpy reader', TIMEOUT, async () => {
  const dir = await tempDir();
  const tensors = sample(3);
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const path = join(dir, `${dtype}.safetensors`);
    await writeSafetensors(path, tensors, { dtype, metadata: { format: 'pt' } });
    const out = python(
      `import json, sys
sys.path.insert(0, ${JSON.stringify(join(REFERENCE_SCRIPT, '..'))})
from gpt2_reference import read_safetensors
t, meta = read_safetensors(${JSON.stringify(path)})
print(json.dumps({'meta': meta, 't': {k: {'shape': list(v.shape), 'data': v.ravel().tolist()} for k, v in t.items()}}))`,
    );
    const parsed = JSON.parse(out) as { meta: unknown; t: Record<string, { shape: number[]; data: number[] }> };
    assert.deepEqual(parsed.meta, { format: 'pt' });
    const { tensors: mine } = await readSafetensors(path);
    assert.deepEqual(Object.keys(parsed.t).sort(), [...tensors.keys()].sort());
    for (const [name, t] of mine) {
      assert.deepEqual(parsed.t[name].shape, t.shape, `${dtype} ${name}`);
      assert.deepEqual(parsed.t[name].data, [...t.data], `${dtype} ${name}`);
    }
  }
  await rm(dir, { recursive: true });
});

test('every malformation is an InvalidArgument naming the file and the tensor', TIMEOUT, async () => {
  const dir = await tempDir();
  const p = (name: string) => join(dir, name);
  const f32 = (n: number) => new Uint8Array(4 * n);
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  await assert.rejects(readSafetensors(p('absent.safetensors')), NotFound);
  await writeFile(p('short'), Buffer.from([1, 2, 3]));
  await rejectsInvalid(p('short'), /too short/);
  await craft(p('len-beyond'), ok, f32(2), 10_000n);
  await rejectsInvalid(p('len-beyond'), /header length 10000 bytes is beyond the file/);
  await craft(p('len-huge'), ok, f32(2), 2n ** 64n - 1n);
  await rejectsInvalid(p('len-huge'), /beyond the file/);
  await craft(p('garbage-json'), '{"w": {"dtype": "F32", ', f32(2));
  await rejectsInvalid(p('garbage-json'), /not valid JSON/);
  await craft(p('not-object'), '[1, 2]', new Uint8Array(0));
  await rejectsInvalid(p('not-object'), /does not start with/);
  await writeFile(p('bad-utf8'), Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]));
  await rejectsInvalid(p('bad-utf8'), /UTF-8/);
  await craft(p('i64'), { w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, f32(2));
  await rejectsInvalid(p('i64'), /tensor `w` has unsupported dtype "I64"/);
  await craft(p('f64'), { w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, f32(2));
  await rejectsInvalid(p('f64'), /`w` has unsupported dtype "F64"/);
  await craft(p('unknown'), { w: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, f32(1));
  await rejectsInvalid(p('unknown'), /`w` has unknown dtype "toString"/);
  await craft(p('no-dtype'), { w: { shape: [1], data_offsets: [0, 4] } }, f32(1));
  await rejectsInvalid(p('no-dtype'), /`w` has no dtype/);
  await craft(p('bad-shape'), { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1));
  await rejectsInvalid(p('bad-shape'), /`w` has an invalid shape/);
  await craft(p('bad-offsets'), { w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1));
  await rejectsInvalid(p('bad-offsets'), /`w` has invalid data_offsets/);
  await craft(p('size-mismatch'), { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2));
  await rejectsInvalid(p('size-mismatch'), /`w` has data_offsets \[0,8\] \(8 bytes\) but shape \[3\] of F32 needs 12 bytes/);
  await craft(p('out-of-range'), { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2));
  await rejectsInvalid(p('out-of-range'), /`w` data_offsets \[0,16\] go past the end of the data \(8 bytes\)/);
  await craft(p('overlap'), {
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, f32(3));
  await rejectsInvalid(p('overlap'), /`b` .*overlaps/);
  await craft(p('gap'), {
    a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
  }, f32(3));
  await rejectsInvalid(p('gap'), /`b` .*gap/);
  await craft(p('trailing'), ok, f32(3));
  await rejectsInvalid(p('trailing'), /4 bytes after the last tensor/);
  await craft(p('bad-meta'), { __metadata__: { n: 1 }, ...ok }, f32(2));
  await rejectsInvalid(p('bad-meta'), /__metadata__.n` must be a string/);
  await craft(p('bad-entry'), { w: 3 }, new Uint8Array(0));
  await rejectsInvalid(p('bad-entry'), /`w` header entry must be an object/);

  // A real file, truncated: the last tensor runs past the end.
  const real = p('real.safetensors');
  await writeSafetensors(real, sample(4));
  const size = (await readFile(real)).length;
  await truncate(real, size - 3);
  await rejectsInvalid(real, /tensor `z\.big` .*truncated/);
  await truncate(real, 30);
  await rejectsInvalid(real, /beyond the file/);
  await rm(dir, { recursive: true });
});

test('include skips tensors without decoding them, whatever their dtype, but still checks the layout', async () => {
  const dir = await tempDir();
  const path = join(dir, 'mixed.safetensors');
  const w = new Float32Array([1.5, -2]);
  const header = {
    mask: { dtype: 'BOOL', shape: [2, 2], data_offsets: [0, 4] },
    w: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    nibbles: { dtype: 'F4', shape: [4], data_offsets: [12, 14] },
  };
  await craft(path, header, Buffer.concat([Buffer.from([1, 0, 1, 1]), Buffer.from(w.buffer), Buffer.from([0, 0])]));
  await rejectsInvalid(path, /tensor `mask` has unsupported dtype "BOOL"/);
  const { tensors } = await readSafetensors(path, { include: (name) => name === 'w' });
  assert.deepEqual([...tensors], [['w', { shape: [2], data: w }]]);
  await craft(path, { ...header, nibbles: { dtype: 'F4', shape: [3], data_offsets: [12, 14] } }, Buffer.alloc(14));
  await assert.rejects(readSafetensors(path, { include: (name) => name === 'w' }), (e: unknown) =>
    e instanceof InvalidArgument && /`nibbles` has shape \[3\] of F4, which is not a whole number of bytes/.test(e.message));
  await rm(dir, { recursive: true });
});

test('random garbage and corrupted files never crash or hang the reader', TIMEOUT, async () => {
  const dir = await tempDir();
  const rng = new Rng(99);
  const real = join(dir, 'real.safetensors');
  await writeSafetensors(real, sample(5), { dtype: 'F16', metadata: { format: 'pt' } });
  const original = await readFile(real);
  const path = join(dir, 'fuzz.safetensors');
  let succeeded = 0;
  for (let i = 0; i < 400; i++) {
    let bytes: Buffer;
    if (i % 4 === 0) {
      bytes = Buffer.from(Array.from({ length: rng.int(64) }, () => rng.int(256)));
    } else {
      bytes = Buffer.from(original);
      const flips = 1 + rng.int(4);
      // Mostly in the length prefix and header, where the parsing happens.
      for (let f = 0; f < flips; f++) bytes[rng.int(Math.min(bytes.length, 8 + 400))] = rng.int(256);
      if (i % 7 === 0) bytes = bytes.subarray(0, rng.int(bytes.length));
    }
    await writeFile(path, bytes);
    try {
      await readSafetensors(path);
      succeeded++;
    } catch (err) {
      assert.ok(err instanceof InvalidArgument, `case ${i}: ${String(err)}`);
      assert.ok(err.message.startsWith(path), err.message);
    }
  }
  assert.ok(succeeded < 400);
  await rm(dir, { recursive: true });
});

test('blocking reads (the serving thread’s) return the same tensors and fail with the same errors as asynchronous ones', TIMEOUT, async () => {
  const dir = await tempDir();
  const outcome = async (path: string, blocking: boolean) =>
    readSafetensors(path, { blocking }).then(
      ({ tensors, metadata }) => ({ tensors: [...tensors].map(([n, t]) => [n, t.shape, [...t.data]]), metadata }),
      (err: Error) => ({ error: err.constructor.name, message: err.message }),
    );
  const real = join(dir, 'real.safetensors');
  await writeSafetensors(real, sample(4), { metadata: { format: 'pt' } });
  const f16 = join(dir, 'f16.safetensors');
  await writeSafetensors(f16, sample(5), { dtype: 'F16' });
  const truncated = join(dir, 'truncated.safetensors');
  await writeFile(truncated, (await readFile(real)).subarray(0, -3));
  await craft(join(dir, 'garbage-json'), '{"w": {"dtype": "F32", ', new Uint8Array(8));
  const paths = [real, f16, truncated, join(dir, 'garbage-json'), join(dir, 'absent.safetensors')];
  const outcomes = await Promise.all(paths.map(async (p) => [await outcome(p, false), await outcome(p, true)]));
  for (const [i, [async, blocking]] of outcomes.entries()) assert.deepEqual(blocking, async, paths[i]);
  // Both kinds of outcome were exercised.
  assert.ok('tensors' in outcomes[0]![0]! && (outcomes[0]![0]!.tensors as unknown[]).length > 0);
  assert.deepEqual(outcomes.slice(2).map(([a]) => 'error' in a! && a.error), ['InvalidArgument', 'InvalidArgument', 'NotFound']);
  await rm(dir, { recursive: true });
});
