import * as tf from '@tensorflow/tfjs';
import type { DecoderBlockWeights, FinalNormWeights } from './gpt-weights.js';
import type { LoraTarget, LoraWeights } from './lora.js';

/** Settings of a LoRA adapter, PEFT's names in camelCase. */
export interface LoraAdapterConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /** Modules of the base model's family (family-modules.ts). */
  targetModules: LoraTarget[];
  /** rsLoRA: scale alpha / sqrt(r) instead of alpha / r. */
  useRslora: boolean;
}

/**
 * A trained adapter resident on the backend: LoRA matrices, or (the classic
 * recipe) replacement weights for the top `numLayers` blocks and the final
 * norm, of the base model's family.
 */
export type Adapter =
  | { kind: 'lora'; config: LoraAdapterConfig; lora: LoraWeights; baseModel: string }
  | { kind: 'last_layers'; numLayers: number; blocks: Map<number, DecoderBlockWeights>; lnF: FinalNormWeights; baseModel: string };

/** Every tensor an adapter holds. */
export function adapterTensors(adapter: Adapter): tf.Tensor[] {
  if (adapter.kind === 'lora') return [...adapter.lora.modules.values()].flatMap((m) => [m.a, m.b]);
  const out: tf.Tensor[] = [];
  // Blocks and norms are plain records of tensors (weights, biases, gains, any weightT), nested once for the Llama family.
  const walk = (x: unknown): void => {
    if (x instanceof tf.Tensor) out.push(x);
    else if (typeof x === 'object' && x !== null) Object.values(x).forEach(walk);
  };
  for (const b of adapter.blocks.values()) walk(b);
  walk(adapter.lnF);
  return out;
}

/** Frees an adapter's tensors. */
export function disposeAdapter(adapter: Adapter): void {
  for (const t of adapterTensors(adapter)) t.dispose();
}
