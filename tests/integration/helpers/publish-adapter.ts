/** The base shape and adapter publish-loop.ts writes: ~4 MB of LoRA weights, so a kill often lands mid-write. */
import type { LoraAdapterConfig } from '../../../src/model/adapter.js';
import type { GptConfig } from '../../../src/model/gpt-config.js';

export const PUBLISH_BASE: GptConfig = { nEmbd: 256, nLayer: 8, nHead: 4, nPositions: 64, vocabSize: 512, layerNormEpsilon: 1e-5, activationFunction: 'gelu_new' };
export const PUBLISH_LORA: LoraAdapterConfig = { r: 32, loraAlpha: 32, loraDropout: 0, targetModules: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'], useRslora: false };
export const PUBLISH_SEED = 11;
