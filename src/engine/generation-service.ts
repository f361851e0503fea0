/**
 * Generate, as a pipeline: validate what only the engine can (prompt length
 * in tokens, context length, the adapter) -> queue (bounded) -> the decode
 * loop, which streams chunks back. The last chunk carries finish and usage.
 */
import type { Logger } from 'pino';
import { InvalidArgument, ResourceExhausted, Unavailable } from '../common/errors.js';
import type { GptModel } from '../model/gpt-model.js';
import type { SequenceAdapter } from '../model/generation/generation-sequence.js';
import { sequenceGrammar } from '../model/generation/generate.js';
import type { GrammarConstraint } from '../model/generation/grammar-constraint.js';
import type { SamplingParams as ModelSampling } from '../model/generation/sampling-params.js';
import type { AdapterLease, AdapterRegistry } from './adapter-registry.js';
import type { LimitsConfig } from './config.js';
import { limitLabel } from './limit-label.js';
import { checkPromptBytes, maxTokenBytes, promptBytesBound, type PromptBytesBound } from './prompt-bytes.js';
import { DecodeLoop } from './decode-loop.js';
import { type EngineMetrics, noMetrics } from './engine-metrics.js';
import type { GenerateChunk, GenerateParams, SamplingParams } from './engine-api.js';
import { ServedRequest, ServedSequence } from './served-sequence.js';

/** The lane of base-model and LoRA rows; each `last_layers` adapter has its own. */
const SHARED_LANE = 'shared';

/** Optional hooks of {@link GenerationService}. */
export interface GenerationHooks {
  /** See DecodeLoop's onStepBoundary. */
  onStepBoundary?: () => void;
  /**
   * Brings an adapter name's stored versions up to date before a request
   * without a version resolves it (the store's synchronous listing), so a
   * version published a moment ago serves the next request.
   */
  refreshAdapter?: (name: string) => Promise<void>;
}

/** Serves Generate requests with continuous batching. */
export class GenerationService {
  private readonly loop: DecodeLoop;
  private accepting = true;
  /** Checked before a prompt is tokenized (the front doors check it too, before the prompt crosses threads). */
  private readonly promptBytes: PromptBytesBound;

  constructor(
    private readonly model: GptModel,
    private readonly registry: AdapterRegistry,
    private readonly limits: LimitsConfig,
    private readonly log: Logger,
    metrics: EngineMetrics = noMetrics,
    private readonly hooks: GenerationHooks = {},
  ) {
    this.promptBytes = promptBytesBound(limits, model.config.nPositions, maxTokenBytes(model.tokenizer));
    this.loop = new DecodeLoop(model, limits.maxBatchSize, log, metrics, limits.prefillChunk, hooks.onStepBoundary);
  }

  /** The model backend's fatal failure, if it had one (see DecodeLoop.backendFault). */
  get backendFault(): Error | undefined {
    return this.loop.backendFault;
  }

  /** Requests waiting plus running. */
  get load(): number {
    return this.loop.load;
  }

  /** Sequences in the batch, and requests waiting for a slot. */
  get sequences(): { running: number; waiting: number } {
    return { running: this.loop.runningCount, waiting: this.loop.waitingCount };
  }

  /**
   * Streams one generation. Throws InvalidArgument (prompt too long, context
   * exceeded), NotFound (adapter), ResourceExhausted (queue full) or
   * Unavailable (draining) before the first chunk. When `signal` aborts, the
   * stream ends with finish.reason 'cancelled'.
   */
  async *generate(req: GenerateParams, signal: AbortSignal): AsyncGenerator<GenerateChunk> {
    const served = await this.admit(req, signal);
    try {
      for (;;) {
        const item = await served.out.next();
        if (item.done) return;
        yield item.value;
      }
    } finally {
      // The consumer stopped early: leave the batch at the next step.
      if (!served.out.isEnded) served.abandoned = true;
    }
  }

  /**
   * Completes one prompt as a background row of the decode loop: Evaluate's
   * generations batch with Generate's rows instead of running a decoder of
   * their own, while every waiting Generate is admitted first. `params` are
   * the model's sampling settings (EOS ids included); `lease` stays the
   * caller's. Resolves to the generated text.
   * @throws the signal's reason when it aborts; Unavailable when the server
   *   drains or the backend failed.
   */
  async complete(promptIds: number[], params: ModelSampling, lease: AdapterLease | undefined, signal: AbortSignal): Promise<string> {
    this.checkServing();
    const adapter = sequenceAdapter(lease);
    const grammar = await sequenceGrammar(this.model, params);
    if (signal.aborted) {
      grammar?.dispose();
      throw signal.reason;
    }
    const seq = new ServedSequence(promptIds, params, this.model.tokenizer, adapter, this.model.config.nPositions, 0, grammar);
    const served = new ServedRequest('', seq, signal, laneOf(adapter), undefined, this.model.tokenizer, false, true);
    this.loop.submit(served);
    let text = '';
    for (;;) {
      const item = await served.out.next();
      if (item.done) break;
      text += item.value.text;
      if (item.value.finish?.reason === 'cancelled') {
        if (signal.aborted) throw signal.reason;
        throw new Unavailable('the server is shutting down');
      }
    }
    return text;
  }

  /** Stops accepting requests; lets running ones finish within `graceMs`, then cancels them. */
  async drain(graceMs: number): Promise<void> {
    this.accepting = false;
    const idle = this.loop.idle();
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      idle.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (late) {
      this.loop.cancelAll();
      await this.loop.idle();
    }
  }

  /** Unavailable while draining, or once the model backend failed. */
  private checkServing(): void {
    if (!this.accepting) throw new Unavailable('the server is shutting down');
    const fault = this.loop.backendFault;
    if (fault) throw new Unavailable(fault.message, { cause: fault });
  }

  /** Validates, resolves the adapter and queues the request. */
  private async admit(req: GenerateParams, signal: AbortSignal): Promise<ServedRequest> {
    this.checkServing();
    const promptIds = this.promptIds(req.prompt);
    req = { ...req, sampling: this.fitContext(promptIds.length, req.sampling) };
    this.checkQueue();
    let lease: AdapterLease | undefined;
    let grammar: GrammarConstraint | undefined;
    if (req.adapter?.version === undefined && req.adapter && this.hooks.refreshAdapter) await this.hooks.refreshAdapter(req.adapter.name);
    if (req.adapter) lease = await this.registry.acquire(req.adapter, 'adapter');
    try {
      if (signal.aborted) throw signal.reason;
      this.checkQueue();
      const adapter = sequenceAdapter(lease);
      const chat = typeof req.prompt === 'object' && !Array.isArray(req.prompt);
      const params = { ...modelSampling(req.sampling, req.logprobs), eosIds: chat ? this.model.chat.endOfTurnIds : this.model.eosIds };
      grammar = await sequenceGrammar(this.model, params);
      if (signal.aborted) throw signal.reason;
      const seq = new ServedSequence(promptIds, params, this.model.tokenizer, adapter, this.model.config.nPositions, req.logprobs ? req.topLogprobs : 0, grammar);
      const served = new ServedRequest(req.requestId, seq, signal, laneOf(adapter), lease, this.model.tokenizer, req.logprobs);
      this.loop.submit(served);
      return served;
    } catch (err) {
      grammar?.dispose();
      lease?.release();
      throw err;
    }
  }

  /** Prompt text, ids or messages -> ids, checked against the vocabulary and limits.maxPromptTokens. */
  private promptIds(prompt: GenerateParams['prompt']): number[] {
    const { vocabSize } = this.model.config;
    let ids: number[];
    let field = 'prompt';
    if (typeof prompt === 'string') {
      checkPromptBytes(field, prompt, this.promptBytes);
      ids = this.model.tokenizer.encode(prompt);
    } else if (!Array.isArray(prompt)) {
      field = 'messages';
      checkPromptBytes(field, prompt.messages.map((m) => m.content), this.promptBytes);
      // The template's markup (<|im_start|>, BOS) must be control tokens, so the
      // rendered text is encoded with special tokens parsed, as transformers'
      // apply_chat_template does (a spelled-out <|im_end|> in a message counts too).
      const text = this.model.chat.render(prompt.messages, { addGenerationPrompt: true });
      ids = this.model.tokenizer.encode(text, { parseSpecialTokens: true });
    } else {
      field = 'prompt_token_ids';
      prompt.forEach((id, i) => {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new InvalidArgument(`\`prompt_token_ids[${i}]\` must be a token id in 0..${vocabSize - 1}, got ${id}`);
        }
      });
      ids = prompt;
    }
    if (ids.length > this.limits.maxPromptTokens) {
      throw new InvalidArgument(`\`${field}\` must be at most ${limitLabel('maxPromptTokens', this.limits.maxPromptTokens)} tokens, got ${ids.length}`);
    }
    // GPT-2 starts unconditional text after <|endoftext|>.
    return ids.length > 0 ? ids : [this.model.tokenizer.eosId];
  }

  /**
   * The prompt and every new token must fit in the context window (n_positions).
   * A default max_new_tokens (the request left it out) is capped to the room the
   * prompt leaves, as generate.proto promises; an explicit one that does not fit
   * is an error naming it.
   */
  private fitContext(promptTokens: number, sampling: SamplingParams): SamplingParams {
    const context = this.model.config.nPositions;
    const room = context - promptTokens;
    if (sampling.maxNewTokensDefaulted === true && sampling.maxNewTokens > room && room >= 1) return { ...sampling, maxNewTokens: room };
    if (promptTokens + sampling.maxNewTokens > context) {
      throw new InvalidArgument(
        `\`max_new_tokens\` ${sampling.maxNewTokens} plus the prompt's ${promptTokens} tokens exceeds the context length of ${context} tokens`,
      );
    }
    return sampling;
  }

  /** Requests beyond the free batch slots wait; at most limits.maxQueue of them. */
  private checkQueue(): void {
    if (this.loop.load >= this.limits.maxBatchSize + this.limits.maxQueue) {
      throw new ResourceExhausted(`the generation queue is full: at most ${limitLabel('maxQueue', this.limits.maxQueue)} requests wait for a batch slot`);
    }
  }
}

/** The decode loop's lane of a row: the shared one, or its `last_layers` adapter's own. */
function laneOf(adapter: SequenceAdapter): string {
  return adapter.blocks ? `last_layers:${adapter.key}` : SHARED_LANE;
}

/** How a batch row uses an adapter; the lease's label groups rows sharing weights. */
function sequenceAdapter(lease: AdapterLease | undefined): SequenceAdapter {
  if (!lease) return { key: '' };
  const a = lease.adapter;
  return a.kind === 'lora' ? { key: lease.label, lora: a.lora } : { key: lease.label, blocks: a.blocks, lnF: a.lnF };
}

/** Engine sampling settings -> the model's (random seed when unset; always stop at EOS). */
export function modelSampling(s: SamplingParams, logprobs: boolean): ModelSampling {
  return {
    maxNewTokens: s.maxNewTokens,
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    repetitionPenalty: s.repetitionPenalty,
    presencePenalty: s.presencePenalty,
    frequencyPenalty: s.frequencyPenalty,
    seed: s.seed ?? Math.floor(Math.random() * 2 ** 32),
    stop: s.stop,
    logprobs,
    stopAtEos: true,
    responseFormat: s.responseFormat,
  };
}
