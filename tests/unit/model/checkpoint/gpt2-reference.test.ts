import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpt2Config } from '../../../../src/model/gpt-config.js';
import { randomGpt2Tensors, readGpt2Folder, writeGpt2Folder } from '../../../../src/model/checkpoint/hf-gpt2-folder.js';
import type { HostTensor } from '../../../../src/model/checkpoint/safetensors.js';
import { writeSafetensors } from '../../../../src/model/checkpoint/safetensors.js';
import { referenceLogits } from '../../../reference/numpy-reference.js';

// The numpy reference is what the TensorFlow.js model is checked against, so
// it is itself checked here against a second, deliberately naive forward pass
// (plain loops over the HF tensors, float64).

const TINY: Gpt2Config = {
  nEmbd: 8,
  nLayer: 2,
  nHead: 2,
  nPositions: 16,
  vocabSize: 12,
  layerNormEpsilon: 1e-5,
  activationFunction: 'gelu_new',
};
const TIMEOUT = { timeout: 60_000 };

/** erf to ~1e-7 (Abramowitz & Stegun 7.1.26); Math has none. */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

function naiveLogits(config: Gpt2Config, w: Map<string, HostTensor>, ids: number[]): number[][] {
  const d = config.nEmbd;
  const hd = d / config.nHead;
  const get = (name: string) => w.get(name)!.data;
  const linear = (x: number[], wName: string, bName: string): number[] => {
    const W = get(wName);
    const b = get(bName);
    const out = b.length;
    return Array.from({ length: out }, (_, j) => x.reduce((s, xi, i) => s + xi * W[i * out + j], b[j]));
  };
  const norm = (x: number[], p: string): number[] => {
    const mean = x.reduce((a, b) => a + b, 0) / d;
    const v = x.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
    return x.map((xi, i) => ((xi - mean) / Math.sqrt(v + config.layerNormEpsilon)) * get(`${p}.weight`)[i] + get(`${p}.bias`)[i]);
  };
  const gelu = config.activationFunction === 'gelu'
    ? (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2))
    : (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  let xs = ids.map((id, t) => Array.from({ length: d }, (_, c) => get('wte.weight')[id * d + c] + get('wpe.weight')[t * d + c]));
  for (let l = 0; l < config.nLayer; l++) {
    const p = `h.${l}.`;
    const qkv = xs.map((x) => linear(norm(x, `${p}ln_1`), `${p}attn.c_attn.weight`, `${p}attn.c_attn.bias`));
    const attn = xs.map((_, t) => {
      const y = new Array<number>(d).fill(0);
      for (let h = 0; h < config.nHead; h++) {
        const dot = (s: number) => {
          let acc = 0;
          for (let c = 0; c < hd; c++) acc += qkv[t][h * hd + c] * qkv[s][d + h * hd + c];
          return acc / Math.sqrt(hd);
        };
        const scores = Array.from({ length: t + 1 }, (_, s) => dot(s));
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let c = 0; c < hd; c++) y[h * hd + c] += (e[s] / z) * qkv[s][2 * d + h * hd + c];
      }
      return linear(y, `${p}attn.c_proj.weight`, `${p}attn.c_proj.bias`);
    });
    xs = xs.map((x, t) => x.map((v, c) => v + attn[t][c]));
    xs = xs.map((x) => {
      const hidden = linear(norm(x, `${p}ln_2`), `${p}mlp.c_fc.weight`, `${p}mlp.c_fc.bias`).map(gelu);
      const m = linear(hidden, `${p}mlp.c_proj.weight`, `${p}mlp.c_proj.bias`);
      return x.map((v, c) => v + m[c]);
    });
  }
  const wte = get('wte.weight');
  return xs.map((x) => {
    const h = norm(x, 'ln_f');
    return Array.from({ length: config.vocabSize }, (_, v) => h.reduce((s, hi, c) => s + hi * wte[v * d + c], 0));
  });
}

function assertClose(actual: number[][], expected: number[][], tol: number): void {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let t = 0; t < actual.length; t++) {
    assert.equal(actual[t].length, expected[t].length);
    for (let v = 0; v < actual[t].length; v++) worst = Math.max(worst, Math.abs(actual[t][v] - expected[t][v]));
  }
  assert.ok(worst <= tol, `max |diff| ${worst} > ${tol}`);
}

test('the numpy reference gives [T, vocab] logits that match a naive forward pass', TIMEOUT, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gentune-reference-'));
  const tensors = randomGpt2Tensors(TINY, 11);
  await writeGpt2Folder(dir, TINY, tensors);
  const ids = [1, 5, 3, 0, 11, 5, 5];
  const logits = await referenceLogits(dir, ids);
  assert.equal(logits.length, ids.length);
  for (const row of logits) {
    assert.equal(row.length, TINY.vocabSize);
    assert.ok(row.every(Number.isFinite));
  }
  assertClose(logits, naiveLogits(TINY, tensors, ids), 1e-9);
  // Causal: a prefix's logits do not depend on what follows.
  assertClose(await referenceLogits(dir, ids.slice(0, 3)), logits.slice(0, 3), 1e-12);
  // Rows differ from each other, so positions and attention really take part.
  assert.ok(Math.abs(logits[1][0] - logits[5][0]) > 1e-6);
  await rm(dir, { recursive: true });
});

test('the numpy reference honours exact gelu, layer_norm_epsilon, the transformer. prefix, F16 and BF16', TIMEOUT, async () => {
  const root = await mkdtemp(join(tmpdir(), 'gentune-reference-'));
  const config: Gpt2Config = { ...TINY, nLayer: 1, activationFunction: 'gelu', layerNormEpsilon: 1e-3 };
  const tensors = randomGpt2Tensors(config, 12);
  // N(0, 0.02) weights keep MLP inputs near 0, where the two gelus agree to 1e-8: widen them.
  tensors.get('h.0.mlp.c_fc.weight')!.data.forEach((x, i, a) => (a[i] = 40 * x));
  const ids = [2, 7, 7, 1];
  const exact = join(root, 'gelu');
  await writeGpt2Folder(exact, config, tensors);
  const gelu = await referenceLogits(exact, ids);
  assertClose(gelu, naiveLogits(config, tensors, ids), 1e-6); // erf above is good to ~1e-7
  const approx = naiveLogits({ ...config, activationFunction: 'gelu_new' }, tensors, ids);
  const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.flatMap((row, t) => row.map((x, v) => Math.abs(x - b[t][v]))));
  // Both alternatives differ from the reference by far more than the tolerance above: the test can tell.
  assert.ok(maxDiff(gelu, approx) > 5e-6, 'gelu differs from gelu_new');
  assert.ok(maxDiff(gelu, naiveLogits({ ...config, layerNormEpsilon: 1e-5 }, tensors, ids)) > 1e-3, 'eps matters');

  const prefixed = new Map([...tensors].map(([k, v]) => [`transformer.${k}`, v]));
  prefixed.set('lm_head.weight', tensors.get('wte.weight')!);
  await writeSafetensors(join(exact, 'model.safetensors'), prefixed, { metadata: { format: 'pt' } });
  assertClose(await referenceLogits(exact, ids), gelu, 0);

  for (const dtype of ['F16', 'BF16'] as const) {
    const dir = join(root, dtype);
    await writeGpt2Folder(dir, TINY, randomGpt2Tensors(TINY, 13), { dtype });
    const widened = await readGpt2Folder(dir); // what the model will load
    assertClose(await referenceLogits(dir, ids), naiveLogits(TINY, widened.tensors, ids), 1e-9);
  }
  await rm(root, { recursive: true });
});

test('the numpy reference rejects ids outside the vocabulary or the context', TIMEOUT, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gentune-reference-'));
  await writeGpt2Folder(dir, TINY, randomGpt2Tensors(TINY, 14));
  await assert.rejects(referenceLogits(dir, [1, 12]), /ids must be/);
  await assert.rejects(referenceLogits(dir, new Array(17).fill(0)), /ids must be/);
  await assert.rejects(referenceLogits(join(dir, 'missing'), [1]), /exited with 1/);
  await rm(dir, { recursive: true });
});
