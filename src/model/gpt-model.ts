import { basename, join, resolve } from 'node:path';
import type { GptConfig } from './gpt-config.js';
import { assertWeightsFit, disposeWeights, type GptWeights, parameterCount, weightsFromHost } from './gpt-weights.js';
import { readModelFolder } from './checkpoint/hf-model-folder.js';
import { CONFIG_FILE, readModelConfig } from './checkpoint/model-files.js';
import { type ChatTemplate, fallbackChatTemplate, loadChatTemplate } from './tokenizer/chat-template.js';
import { loadTokenizer } from './tokenizer/load-tokenizer.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import { GrammarCache } from './generation/grammar-cache.js';

/** A base model resident on the backend: config, weights, its tokenizer and chat template. */
export class GptModel {
  /** Renders `messages` prompts; gentune's own template when the folder has none. */
  readonly chat: ChatTemplate;
  private grammarCache: GrammarCache | undefined;

  constructor(
    readonly config: GptConfig,
    readonly weights: GptWeights,
    readonly tokenizer: Tokenizer,
    /** A name for logs and adapter configs (the folder name). */
    readonly name: string,
    /** Absolute path of the model folder, when loaded from one. */
    readonly path?: string,
    chat?: ChatTemplate,
  ) {
    this.chat = chat ?? fallbackChatTemplate(tokenizer);
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new Error(`tokenizer has ${tokenizer.vocabSize} ids but the model only ${config.vocabSize}`);
    }
  }

  /**
   * Loads a Hugging Face model folder, GPT-2 or Llama family (config.json,
   * model.safetensors or its shards, tokenizer files).
   * @throws ResourceExhausted, before reading the weights, if they cannot fit the backend.
   */
  static async load(dir: string): Promise<GptModel> {
    const path = resolve(dir);
    assertWeightsFit(await readModelConfig(path), undefined, join(path, CONFIG_FILE));
    const [ckpt, tokenizer] = await Promise.all([readModelFolder(path), loadTokenizer(path)]);
    const chat = await loadChatTemplate(path, tokenizer);
    return new GptModel(ckpt.config, weightsFromHost(ckpt.config, ckpt.tensors), tokenizer, basename(path), path, chat);
  }

  /** Every id that ends a plain generation (the tokenizer's EOS ids). */
  get eosIds(): readonly number[] {
    return this.tokenizer.eosIds ?? [this.tokenizer.eosId];
  }

  /**
   * Structured output's compiled grammars and xgrammar's view of the
   * vocabulary; created on first use (xgrammar itself loads then).
   */
  get grammars(): GrammarCache {
    this.grammarCache ??= new GrammarCache(this.tokenizer, this.config.vocabSize);
    return this.grammarCache;
  }

  /** Parameters (tied LM head counted once). */
  get parameters(): number {
    return parameterCount(this.config);
  }

  /** Frees the weights. */
  dispose(): void {
    disposeWeights(this.weights);
    void this.grammarCache?.dispose();
    this.grammarCache = undefined;
  }
}
