import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import { Rng } from '../common/rng.js';
import type { Adapter, LoraAdapterConfig } from './adapter.js';
import type { GptConfig } from './gpt-config.js';
import { type BlockWeights, gpt2Config, gpt2Weights, type GptWeights, type LayerNormWeights, type Linear } from './gpt-weights.js';
import { type LoraModule, loraScale } from './lora.js';

/**
 * Fresh adapters to train, initialised as PEFT initialises them, so that a job
 * started here and one started in PEFT begin from the same distribution.
 */

/**
 * PEFT's `init_lora_weights`: `true` draws A like nn.Linear's default
 * (kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))) and zeroes B,
 * so the adapter starts as the identity; `'gaussian'` draws A ~ N(0, 1/r) and zeroes
 * B; `false` leaves both at nn.Linear's default (B ~ U(-1/sqrt(r), 1/sqrt(r))), a
 * non-zero adapter, useful for tests.
 */
export type LoraInit = boolean | 'gaussian';

/** Options for {@link initLoraAdapter}. */
export interface InitLoraOptions {
  /** Seed of the draws; same seed, same adapter. */
  seed: number;
  /** Default true (PEFT's default). */
  init?: LoraInit;
  /** Layers to adapt (PEFT's layers_to_transform); default all. */
  layers?: number[];
  /** Recorded as base_model_name_or_path. */
  baseModel?: string;
}

/**
 * A new LoRA adapter for a model of shape `gpt`, adapting `config.targetModules`
 * in every layer (or `options.layers`). The caller owns it (see disposeAdapter).
 * @throws InvalidArgument for a non-positive r, no targets, or a layer out of range;
 *   FailedPrecondition for a Llama-family model (GPT-2's modules only, so far).
 */
export function initLoraAdapter(model: GptConfig, config: LoraAdapterConfig, options: InitLoraOptions): Adapter & { kind: 'lora' } {
  const gpt = gpt2Config(model, 'LoRA');
  const { r } = config;
  if (!Number.isInteger(r) || r <= 0) throw new InvalidArgument(`\`r\` must be a positive integer, got ${r}`);
  if (config.targetModules.length === 0) throw new InvalidArgument('`target_modules` must name at least one module');
  const layers = options.layers ?? Array.from({ length: gpt.nLayer }, (_, i) => i);
  const out = layers.find((l) => !Number.isInteger(l) || l < 0 || l >= gpt.nLayer);
  if (out !== undefined) throw new InvalidArgument(`\`layers_to_transform\`: layer ${out} is out of range [0, ${gpt.nLayer})`);
  const init = options.init ?? true;
  const rng = new Rng(options.seed);
  const uniform = (n: number, bound: number) => Float32Array.from({ length: n }, () => (2 * rng.next() - 1) * bound);
  const d = gpt.nEmbd;
  const dims = { 'attn.c_attn': [d, 3 * d], 'attn.c_proj': [d, d], 'mlp.c_fc': [d, 4 * d], 'mlp.c_proj': [4 * d, d] } as const;
  const modules = new Map<string, LoraModule>();
  for (const layer of layers) {
    for (const target of config.targetModules) {
      const [din, dout] = dims[target];
      // Drawn in PEFT's [r, in] / [out, r] layout; our a = A^T and b = B^T hold the same numbers.
      const a = init === 'gaussian' ? Float32Array.from({ length: r * din }, () => rng.normal() / r) : uniform(r * din, 1 / Math.sqrt(din));
      const b = init === false ? uniform(dout * r, 1 / Math.sqrt(r)) : new Float32Array(dout * r);
      modules.set(`${layer}.${target}`, {
        a: tf.tidy(() => tf.transpose(tf.tensor2d(a, [r, din]))),
        b: tf.tidy(() => tf.transpose(tf.tensor2d(b, [dout, r]))),
      });
    }
  }
  return {
    kind: 'lora',
    config: { ...config, targetModules: [...config.targetModules] },
    lora: {
      r,
      alpha: config.loraAlpha,
      scale: loraScale(r, config.loraAlpha, config.useRslora),
      targets: [...config.targetModules],
      modules,
    },
    baseModel: options.baseModel ?? '',
  };
}

/**
 * A new `last_layers` adapter: copies of the base model's top `numLayers` blocks
 * and final layer norm, to be trained in place of them. The caller owns it.
 * @throws InvalidArgument if numLayers is not in [1, n_layer]; FailedPrecondition for a Llama-family model.
 */
export function initLastLayersAdapter(model: GptWeights, numLayers: number, baseModel = ''): Adapter & { kind: 'last_layers' } {
  const base = gpt2Weights(model, 'a last_layers adapter');
  const n = base.blocks.length;
  if (!Number.isInteger(numLayers) || numLayers < 1 || numLayers > n) {
    throw new InvalidArgument(`\`num_layers\` must be an integer in [1, ${n}], got ${numLayers}`);
  }
  const ln = (w: LayerNormWeights): LayerNormWeights => ({ weight: tf.clone(w.weight), bias: tf.clone(w.bias) });
  // weightT is left out: it is for frozen weights only, and these are to be trained.
  const lin = (l: Linear): Linear => ({ weight: tf.clone(l.weight), bias: tf.clone(l.bias) });
  const blocks = new Map<number, BlockWeights>();
  for (let i = n - numLayers; i < n; i++) {
    const b = base.blocks[i];
    blocks.set(i, {
      ln_1: ln(b.ln_1),
      c_attn: lin(b.c_attn),
      attn_c_proj: lin(b.attn_c_proj),
      ln_2: ln(b.ln_2),
      c_fc: lin(b.c_fc),
      mlp_c_proj: lin(b.mlp_c_proj),
    });
  }
  return { kind: 'last_layers', numLayers, blocks, lnF: ln(base.ln_f), baseModel };
}
