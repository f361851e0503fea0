import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { TextStreamDecoder } from '../tokenizer/text-stream-decoder.js';
import type { LoraWeights } from '../lora.js';
import type { DecoderBlockWeights, FinalNormWeights } from '../gpt-weights.js';
import type { GrammarConstraint } from './grammar-constraint.js';
import { type LogitsProcessor, logSoftmaxAt } from './logits-processors.js';
import { GreedySampler, MultinomialSampler, type Sampler } from './sampler.js';
import { logitsProcessors, type SamplingParams } from './sampling-params.js';
import { type FinishReason, StopSequenceMatcher } from './stopping-criteria.js';

/** The adapter a sequence runs with; `key` groups rows that share weights. */
export interface SequenceAdapter {
  key: string;
  lora?: LoraWeights;
  /** A `last_layers` adapter: replacement blocks by layer index and final norm. */
  blocks?: Map<number, DecoderBlockWeights>;
  lnF?: FinalNormWeights;
}

/** What one decode step produced for one sequence. */
export interface TokenOutput {
  tokenId: number;
  /** Text that became final with this token (may be empty: held-back UTF-8 or a possible stop prefix). */
  text: string;
  /** log p(token) under the model's unprocessed distribution (natural log), when asked for. */
  logprob?: number;
  /** Set when the sequence ended with this token. */
  finishReason?: FinishReason;
}

/**
 * One request's generation state: its ids, sampling chain, stopping criteria
 * and text streamer. The decode loop feeds it one logits row per step.
 */
export class GenerationSequence {
  readonly generated: number[] = [];
  finishReason?: FinishReason;
  private readonly processors: LogitsProcessor[];
  private readonly sampler: Sampler;
  private readonly decoder: TextStreamDecoder;
  private readonly stops: StopSequenceMatcher;
  private readonly context: number[];
  private readonly eosIds: ReadonlySet<number>;

  constructor(
    readonly promptIds: readonly number[],
    readonly params: SamplingParams,
    private readonly tokenizer: Tokenizer,
    readonly adapter: SequenceAdapter = { key: '' },
    /** Context length of the model: generation stops with `length` when it is full. */
    private readonly maxPositions = Infinity,
    /**
     * Structured output: the grammar this sequence's tokens must follow
     * (owned: disposed when the sequence ends, see {@link release}).
     */
    readonly grammar?: GrammarConstraint,
  ) {
    if (promptIds.length === 0) throw new Error('a sequence needs at least one prompt token');
    this.processors = logitsProcessors(params, promptIds.length);
    this.sampler = params.temperature === 0 ? new GreedySampler() : new MultinomialSampler(params.seed);
    this.decoder = new TextStreamDecoder(tokenizer);
    this.stops = new StopSequenceMatcher(params.stop);
    this.context = [...promptIds];
    this.eosIds = new Set(params.eosIds ?? [tokenizer.eosId]);
  }

  /** Tokens held so far (prompt + generated). */
  get length(): number {
    return this.context.length;
  }

  /** The id to feed at the next decode step. */
  get lastId(): number {
    return this.context[this.context.length - 1];
  }

  get finished(): boolean {
    return this.finishReason !== undefined;
  }

  /** Samples the next token from this row's logits (modified in place) and applies the stopping criteria. */
  accept(logits: Float32Array): TokenOutput {
    const raw = this.params.logprobs ? logits.slice() : undefined;
    // The grammar mask goes first, so top-k / top-p choose among allowed tokens only.
    this.grammar?.apply(logits);
    for (const p of this.processors) p.process(logits, this.context);
    const tokenId = this.sampler.sample(logits);
    this.grammar?.accept(tokenId);
    const out: TokenOutput = { tokenId, text: '' };
    if (raw) out.logprob = logSoftmaxAt(raw, tokenId);
    this.generated.push(tokenId);
    this.context.push(tokenId);
    // A grammar only allows a stop token once complete; having taken it, it ends the sequence.
    if ((this.params.stopAtEos && this.eosIds.has(tokenId)) || this.grammar?.terminated) {
      out.text = this.stops.push(this.decoder.flush()).text + this.stops.flush();
      return this.finish(out, 'eos');
    }
    const { text, stopped } = this.stops.push(this.decoder.push(tokenId));
    out.text = text;
    if (stopped) return this.finish(out, 'stop_sequence');
    if (this.generated.length >= this.params.maxNewTokens || this.context.length >= this.maxPositions) {
      const rest = this.stops.push(this.decoder.flush());
      out.text += rest.text + (rest.stopped ? '' : this.stops.flush());
      return this.finish(out, rest.stopped ? 'stop_sequence' : 'length');
    }
    return out;
  }

  /** Ends the sequence from outside (client cancelled or deadline passed). */
  cancel(): void {
    this.finishReason ??= 'cancelled';
    this.release();
  }

  /**
   * Frees what the sequence holds outside tensors (its grammar matcher);
   * idempotent. Called when it finishes or is cancelled, and by its owner
   * when it is dropped for an error.
   */
  release(): void {
    this.grammar?.dispose();
  }

  private finish(out: TokenOutput, reason: FinishReason): TokenOutput {
    this.finishReason = reason;
    out.finishReason = reason;
    this.release();
    return out;
  }
}
