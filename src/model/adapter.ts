import type { BlockWeights, LayerNormWeights } from './gpt-weights.js';
import { disposeLora, type LoraTarget, type LoraWeights } from './lora.js';

/** Settings of a LoRA adapter, PEFT's names in camelCase. */
export interface LoraAdapterConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: LoraTarget[];
  /** rsLoRA: scale alpha / sqrt(r) instead of alpha / r. */
  useRslora: boolean;
}

/**
 * A trained adapter resident on the backend: LoRA matrices, or (the classic
 * recipe) replacement weights for the top `numLayers` blocks and the final
 * layer norm.
 */
export type Adapter =
  | { kind: 'lora'; config: LoraAdapterConfig; lora: LoraWeights; baseModel: string }
  | { kind: 'last_layers'; numLayers: number; blocks: Map<number, BlockWeights>; lnF: LayerNormWeights; baseModel: string };

/** Frees an adapter's tensors. */
export function disposeAdapter(adapter: Adapter): void {
  if (adapter.kind === 'lora') {
    disposeLora(adapter.lora);
    return;
  }
  for (const b of adapter.blocks.values()) {
    for (const n of [b.ln_1, b.ln_2]) {
      n.weight.dispose();
      n.bias.dispose();
    }
    for (const l of [b.c_attn, b.attn_c_proj, b.c_fc, b.mlp_c_proj]) {
      l.weight.dispose();
      l.bias.dispose();
      l.weightT?.dispose();
    }
  }
  adapter.lnF.weight.dispose();
  adapter.lnF.bias.dispose();
}
