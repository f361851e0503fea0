import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { disposeAdapter } from '../../../../src/model/adapter.js';
import { initLoraAdapter } from '../../../../src/model/adapter-init.js';
import { loadAdapter, saveAdapter } from '../../../../src/model/checkpoint/peft-adapter.js';
import { readGpt2Folder } from '../../../../src/model/checkpoint/hf-gpt2-folder.js';
import { forward, type ForwardInput } from '../../../../src/model/gpt.js';
import { disposeWeights, type GptWeights, weightsFromHost } from '../../../../src/model/gpt-weights.js';
import type { LoraWeights } from '../../../../src/model/lora.js';
import { testBackend, TINY, tinyModelFolder } from '../../../helpers/tiny-model.js';
import { makePeftAdapter, maxAbsDiff, peftLogits, rowInput, take } from './peft-reference.js';

let root: string;
let modelDir: string;
let base: GptWeights;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'gentune-mixed-'));
  modelDir = await tinyModelFolder(TINY, 61);
  const ckpt = await readGpt2Folder(modelDir);
  base = weightsFromHost(ckpt.config, ckpt.tensors);
});

after(async () => {
  disposeWeights(base);
  await rm(root, { recursive: true, force: true });
  await rm(modelDir, { recursive: true, force: true });
});

test('one forward over rows with two different adapters and a base row equals each row run alone', { timeout: 120_000 }, async () => {
  // Adapter 1 from PEFT's side (c_attn, alpha/r); adapter 2 made here, saved and
  // reloaded (every target, rsLoRA, another rank).
  const dir1 = join(root, 'one');
  await makePeftAdapter(modelDir, dir1, { r: 4, lora_alpha: 8, target_modules: ['c_attn'], seed: 11 });
  const made = initLoraAdapter(TINY, { r: 3, loraAlpha: 5, loraDropout: 0, targetModules: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'], useRslora: true }, { seed: 12, init: false });
  const dir2 = join(root, 'two');
  await saveAdapter(dir2, made, TINY);
  disposeAdapter(made);
  const a1 = await loadAdapter(dir1, TINY);
  const a2 = await loadAdapter(dir2, TINY);
  if (a1.kind !== 'lora' || a2.kind !== 'lora') throw new Error('expected lora');

  const rows = [
    [10, 20, 30, 40, 50, 60, 70],
    [7, 8, 9, 1, 2, 3, 4],
    [100, 200, 3, 256, 0, 42, 42],
  ];
  const T = rows[0].length;
  const batch: ForwardInput = {
    batch: 3,
    length: T,
    ids: Int32Array.from(rows.flat()),
    positions: Int32Array.from(rows.flatMap((r) => r.map((_, i) => i))),
    valid: new Uint8Array(3 * T).fill(1),
  };
  const start = tf.memory().numTensors;
  const mixed = await take(
    forward(TINY, base, batch, {
      segments: [
        { start: 0, count: 1, lora: a1.lora },
        { start: 1, count: 1 },
        { start: 2, count: 1, lora: a2.lora },
      ],
    }),
  );
  const alone = async (ids: number[], lora?: LoraWeights) =>
    take(forward(TINY, base, rowInput(ids), lora ? { segments: [{ start: 0, count: 1, lora }] } : {}));
  const expected = [await alone(rows[0], a1.lora), await alone(rows[1]), await alone(rows[2], a2.lora)];
  const V = TINY.vocabSize;
  for (let r = 0; r < 3; r++) {
    const got = mixed.subarray(r * T * V, (r + 1) * T * V);
    const diff = maxAbsDiff(got, expected[r]);
    assert.ok(diff < 1e-4, `row ${r}: max |mixed - alone| = ${diff}`);
  }
  // Each adapted row is also what numpy PEFT computes, and the adapters differ from each other and from the base.
  assert.ok(maxAbsDiff(expected[0], (await peftLogits(modelDir, dir1, rows[0])).flat()) < 1e-4);
  assert.ok(maxAbsDiff(expected[2], (await peftLogits(modelDir, dir2, rows[2])).flat()) < 1e-4);
  assert.ok(maxAbsDiff(await alone(rows[0]), expected[0]) > 1e-2);
  assert.ok(maxAbsDiff(await alone(rows[2], a1.lora), expected[2]) > 1e-2);
  assert.equal(tf.memory().numTensors, start, 'forward frees its intermediates');
  disposeAdapter(a1);
  disposeAdapter(a2);
});
