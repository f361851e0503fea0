import { basename, resolve } from 'node:path';
import type { GptConfig } from './gpt-config.js';
import { disposeWeights, type GptWeights, parameterCount, weightsFromHost } from './gpt-weights.js';
import { readGpt2Folder } from './checkpoint/hf-gpt2-folder.js';
import { loadTokenizer } from './tokenizer/load-tokenizer.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

/** A base model resident on the backend: config, weights and its tokenizer. */
export class GptModel {
  constructor(
    readonly config: GptConfig,
    readonly weights: GptWeights,
    readonly tokenizer: Tokenizer,
    /** A name for logs and adapter configs (the folder name). */
    readonly name: string,
    /** Absolute path of the model folder, when loaded from one. */
    readonly path?: string,
  ) {
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new Error(`tokenizer has ${tokenizer.vocabSize} ids but the model only ${config.vocabSize}`);
    }
  }

  /** Loads a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer files). */
  static async load(dir: string): Promise<GptModel> {
    const path = resolve(dir);
    const [ckpt, tokenizer] = await Promise.all([readGpt2Folder(path), loadTokenizer(path)]);
    return new GptModel(ckpt.config, weightsFromHost(ckpt.config, ckpt.tensors), tokenizer, basename(path), path);
  }

  /** Parameters (tied LM head counted once). */
  get parameters(): number {
    return parameterCount(this.config);
  }

  /** Frees the weights. */
  dispose(): void {
    disposeWeights(this.weights);
  }
}
