import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlamaConfig } from '../../../../src/model/gpt-config.js';
import type { HostTensor } from '../../../../src/model/checkpoint/safetensors.js';
import { llamaReferenceLogits } from '../../../reference/numpy-reference.js';
import { LLAMA3_LIKE, llamaConfig, llamaTensors, QWEN2_LIKE, QWEN3_LIKE, type HfConfigJson, writeLlamaFolder } from '../../../helpers/llama-model.js';

// The numpy Llama reference is what the TensorFlow.js model is checked
// against, so it is itself checked here against a second, deliberately naive
// forward pass: scalar loops over the HF tensors in float64, the rotation
// written as a turn of each channel pair (j, j + head_dim/2), each query head
// reading key/value head floor(h / group), the llama3 rule as its paper states
// it. Tiny shapes that between them switch every option on.

const TINY = { num_hidden_layers: 2, vocab_size: 11, max_position_embeddings: 64 };
const SHAPES: Record<string, HfConfigJson> = {
  // q/k/v/o biases, q_norm/k_norm, head_dim 6 x 4 heads != hidden 16, tied.
  qwen3: { ...QWEN3_LIKE, ...TINY, hidden_size: 16, intermediate_size: 24, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 6, attention_bias: true, rope_theta: 100 },
  // llama3 rope scaling (wavelengths 6.3, 35, 199, 1117 against bands at 16 and 64: kept, blended, stretched twice),
  // MLP biases, untied, one key/value head for two query heads.
  llama3: {
    ...LLAMA3_LIKE,
    ...TINY,
    hidden_size: 16,
    intermediate_size: 40,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    mlp_bias: true,
    rope_theta: 1000,
    rope_scaling: { rope_type: 'llama3', factor: 4, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
  },
  // Qwen2's q/k/v biases, linear scaling.
  qwen2: { ...QWEN2_LIKE, ...TINY, hidden_size: 16, intermediate_size: 20, num_attention_heads: 2, num_key_value_heads: 1 },
};

type Naive = { interleaved?: boolean; kvOfHead?: (h: number, group: number, nKv: number) => number };

function inverseFrequencies(c: LlamaConfig): number[] {
  const half = c.headDim / 2;
  const base = Array.from({ length: half }, (_, j) => 1 / c.rope.theta ** ((2 * j) / c.headDim));
  const s = c.rope.scaling;
  if (s.type === 'linear') return base.map((f) => f / s.factor);
  if (s.type !== 'llama3') return base;
  return base.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < s.originalMaxPositions / s.highFreqFactor) return f;
    if (wavelength > s.originalMaxPositions / s.lowFreqFactor) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

function naiveLogits(c: LlamaConfig, w: Map<string, HostTensor>, ids: number[], opts: Naive = {}): number[][] {
  const get = (name: string) => w.get(name)?.data;
  const linear = (x: number[], name: string): number[] => {
    const W = get(`${name}.weight`)!;
    const b = get(`${name}.bias`);
    const out = W.length / x.length;
    return Array.from({ length: out }, (_, o) => x.reduce((s, xi, i) => s + xi * W[o * x.length + i], b ? b[o] : 0));
  };
  const rms = (x: number[], name: string): number[] => {
    const g = get(`${name}.weight`)!;
    const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * g[i]);
  };
  const hd = c.headDim;
  const half = hd / 2;
  const inv = inverseFrequencies(c);
  const rotate = (x: number[], pos: number): number[] => {
    const out = x.slice();
    for (let j = 0; j < half; j++) {
      const [a, b] = opts.interleaved ? [2 * j, 2 * j + 1] : [j, j + half];
      const angle = pos * inv[j];
      out[a] = x[a] * Math.cos(angle) - x[b] * Math.sin(angle);
      out[b] = x[b] * Math.cos(angle) + x[a] * Math.sin(angle);
    }
    return out;
  };
  const heads = (v: number[], n: number) => Array.from({ length: n }, (_, h) => v.slice(h * hd, (h + 1) * hd));
  const group = c.nHead / c.nKvHead;
  const kvOf = opts.kvOfHead ?? ((h: number) => Math.floor(h / group));
  const embed = get('model.embed_tokens.weight')!;
  let xs = ids.map((id) => Array.from(embed.subarray(id * c.nEmbd, (id + 1) * c.nEmbd)));
  for (let l = 0; l < c.nLayer; l++) {
    const p = `model.layers.${l}.`;
    const qs: number[][][] = [];
    const ks: number[][][] = [];
    const vs: number[][][] = [];
    xs.forEach((x, t) => {
      const h = rms(x, `${p}input_layernorm`);
      let q = heads(linear(h, `${p}self_attn.q_proj`), c.nHead);
      let k = heads(linear(h, `${p}self_attn.k_proj`), c.nKvHead);
      if (c.qkNorm) {
        q = q.map((v) => rms(v, `${p}self_attn.q_norm`));
        k = k.map((v) => rms(v, `${p}self_attn.k_norm`));
      }
      qs.push(q.map((v) => rotate(v, t)));
      ks.push(k.map((v) => rotate(v, t)));
      vs.push(heads(linear(h, `${p}self_attn.v_proj`), c.nKvHead));
    });
    xs = xs.map((x, t) => {
      const y: number[] = [];
      for (let h = 0; h < c.nHead; h++) {
        const kv = kvOf(h, group, c.nKvHead);
        const scores = Array.from({ length: t + 1 }, (_, s) => qs[t][h].reduce((a, qi, i) => a + qi * ks[s][kv][i], 0) / Math.sqrt(hd));
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hd; i++) y.push(e.reduce((a, ei, s) => a + (ei / z) * vs[s][kv][i], 0));
      }
      const mid = x.map((v, i) => v + linear(y, `${p}self_attn.o_proj`)[i]);
      const h2 = rms(mid, `${p}post_attention_layernorm`);
      const gate = linear(h2, `${p}mlp.gate_proj`);
      const up = linear(h2, `${p}mlp.up_proj`);
      const m = linear(gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]), `${p}mlp.down_proj`);
      return mid.map((v, i) => v + m[i]);
    });
  }
  const head = get(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!;
  return xs.map((x) => {
    const h = rms(x, 'model.norm');
    return Array.from({ length: c.vocabSize }, (_, v) => h.reduce((s, hi, i) => s + hi * head[v * c.nEmbd + i], 0));
  });
}

const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.flatMap((row, t) => row.map((x, v) => Math.abs(x - b[t][v]))));

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'gentune-llama-reference-'));
});
after(() => rm(root, { recursive: true, force: true }));

for (const [name, json] of Object.entries(SHAPES)) {
  test(`the numpy Llama reference matches a naive forward pass (${name})`, async () => {
    const dir = join(root, name);
    const config = llamaConfig(json);
    const tensors = llamaTensors(json, 21);
    await writeLlamaFolder(dir, json, tensors);
    const ids = [1, 5, 3, 0, 10, 5, 5, 2, 7, 9, 4, 6];
    const [ref, prefix] = await llamaReferenceLogits(dir, [ids, ids.slice(0, 4)]);
    assert.equal(ref.length, ids.length);
    assert.ok(ref.every((row) => row.length === config.vocabSize && row.every(Number.isFinite)));
    // The reference takes rope's frequencies in float32 as transformers does; the naive pass in float64.
    const diff = maxDiff(ref, naiveLogits(config, tensors, ids));
    assert.ok(diff < 1e-5, `max |numpy - naive| = ${diff}`);
    assert.ok(maxDiff(prefix, ref.slice(0, 4)) < 1e-12, 'causal: a prefix does not see what follows');
    // The conventions the check pins are ones it can tell apart.
    assert.ok(maxDiff(ref, naiveLogits(config, tensors, ids, { interleaved: true })) > 1e-2, 'rotate-half, not interleaved pairs');
    if (config.nKvHead > 1) {
      const modulo = naiveLogits(config, tensors, ids, { kvOfHead: (h, _g, nKv) => h % nKv });
      assert.ok(maxDiff(ref, modulo) > 1e-2, 'query head h reads key/value head h / group, not h % kv');
    }
  });
}

test('the numpy Llama reference rejects ids outside the vocabulary or the context', async () => {
  const dir = join(root, 'ids');
  await writeLlamaFolder(dir, SHAPES.qwen2, llamaTensors(SHAPES.qwen2, 1));
  await assert.rejects(llamaReferenceLogits(dir, [[1, 11]]), /ids must be/);
  await assert.rejects(llamaReferenceLogits(dir, [new Array(65).fill(0)]), /ids must be/);
  await assert.rejects(llamaReferenceLogits(join(dir, 'missing'), [[1]]), /exited with 1/);
});
