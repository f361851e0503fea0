import * as tf from '@tensorflow/tfjs';
import type { GptConfig } from '../../src/model/gpt-config.js';
import { hfTensorShapes } from '../../src/model/gpt-config.js';
import { type GptWeights } from '../../src/model/gpt-weights.js';
import type { Tokenizer } from '../../src/model/tokenizer/tokenizer.js';

/** Random weights made on the backend (fast even at GPT-2 small size); benchmarks only. */
export function randomWeightsOnDevice(config: GptConfig, seed = 1): GptWeights {
  const t = (name: string): tf.Tensor => {
    const shape = hfTensorShapes(config).get(name)!;
    return name.includes('ln_') && name.endsWith('weight') ? tf.ones(shape) : tf.truncatedNormal(shape, 0, 0.02, 'float32', seed++);
  };
  const lin = (p: string) => ({ weight: t(`${p}.weight`) as tf.Tensor2D, bias: t(`${p}.bias`) as tf.Tensor1D });
  const ln = (p: string) => ({ weight: t(`${p}.weight`) as tf.Tensor1D, bias: t(`${p}.bias`) as tf.Tensor1D });
  const wte = t('wte.weight') as tf.Tensor2D;
  return {
    wte,
    wteT: tf.transpose(wte),
    wpe: t('wpe.weight') as tf.Tensor2D,
    blocks: Array.from({ length: config.nLayer }, (_, i) => ({
      ln_1: ln(`h.${i}.ln_1`),
      c_attn: lin(`h.${i}.attn.c_attn`),
      attn_c_proj: lin(`h.${i}.attn.c_proj`),
      ln_2: ln(`h.${i}.ln_2`),
      c_fc: lin(`h.${i}.mlp.c_fc`),
      mlp_c_proj: lin(`h.${i}.mlp.c_proj`),
    })),
    ln_f: ln('ln_f'),
  };
}

/** A tokenizer stand-in for benchmarks that never look at text. */
export function silentTokenizer(vocabSize: number): Tokenizer {
  return {
    vocabSize,
    eosId: vocabSize - 1,
    encode: (text) => Array.from(text, (c) => c.charCodeAt(0) % vocabSize),
    decode: () => '',
    tokenBytes: () => new Uint8Array(0),
  };
}

/** Prints rows as an aligned text table. */
export function printTable(rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const cell = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : v);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  console.log(cols.map((c, i) => c.padEnd(width[i])).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => cell(r[c]).padStart(width[i])).join('  '));
}
