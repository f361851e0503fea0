/**
 * One Generate request inside the decode loop: the model-level sequence plus
 * what the engine reports (chunks, timings, top alternatives).
 */
import type { AdapterLease } from './adapter-registry.js';
import { ChunkChannel } from './chunk-channel.js';
import type { GenerateChunk, TokenLogprob, TopLogprob } from './engine-api.js';
import { GenerationSequence, type SequenceAdapter, type TokenOutput } from '../model/generation/generation-sequence.js';
import type { SamplingParams } from '../model/generation/sampling-params.js';
import type { GrammarConstraint } from '../model/generation/grammar-constraint.js';
import type { Tokenizer } from '../model/tokenizer/tokenizer.js';

/** A GenerationSequence that also records the most likely alternatives of each step. */
export class ServedSequence extends GenerationSequence {
  /** Alternatives at the latest step (raw distribution), most likely first. */
  lastTop: TopLogprob[] = [];

  constructor(
    promptIds: readonly number[],
    params: SamplingParams,
    private readonly tok: Tokenizer,
    adapter: SequenceAdapter,
    maxPositions: number,
    private readonly topN: number,
    grammar?: GrammarConstraint,
  ) {
    super(promptIds, params, tok, adapter, maxPositions, grammar);
  }

  override accept(logits: Float32Array): TokenOutput {
    // Before super.accept: the logits processors rewrite the row in place.
    if (this.topN > 0) this.lastTop = topLogprobs(logits, this.topN, this.tok);
    return super.accept(logits);
  }
}

/** A request waiting for, or running in, the decode loop. */
export class ServedRequest {
  readonly out = new ChunkChannel<GenerateChunk>();
  /** Epoch milliseconds. */
  readonly arrivalMs = Date.now();
  joinedMs?: number;
  firstTokenMs?: number;
  lastTokenMs?: number;
  /** The consumer stopped reading (its generator was closed). */
  abandoned = false;
  private finished = false;

  constructor(
    readonly requestId: string,
    readonly seq: ServedSequence,
    readonly signal: AbortSignal,
    /** Batch lane: rows of one lane share a BatchDecoder. */
    readonly lane: string,
    readonly lease: AdapterLease | undefined,
    private readonly tokenizer: Tokenizer,
    private readonly logprobs: boolean,
    /**
     * A background row (Evaluate's generations): admitted after every waiting
     * Generate, outside the queue limit and the request metrics; its caller
     * holds the adapter (`lease` is then undefined).
     */
    readonly background = false,
  ) {}

  /** The client went away (or the server is draining): leave at the next step. */
  get wantsOut(): boolean {
    return this.abandoned || this.signal.aborted;
  }

  /** Emits one step's token; after the token that ends the sequence, the finish chunk. */
  deliver(out: TokenOutput): void {
    const now = Date.now();
    this.firstTokenMs ??= now;
    this.lastTokenMs = now;
    const chunk: GenerateChunk = { text: out.text, tokenIds: [out.tokenId] };
    if (this.logprobs) {
      const lp: TokenLogprob = {
        tokenId: out.tokenId,
        token: this.tokenizer.decode([out.tokenId]),
        logprob: out.logprob ?? 0,
        topLogprobs: this.seq.lastTop,
      };
      chunk.logprobs = [lp];
    }
    this.out.push(chunk);
    // The finish rides on a chunk of its own, so every token chunk looks alike.
    if (out.finishReason) this.finish({ text: '', tokenIds: [] });
  }

  /**
   * Ends the stream after the sequence left the batch (or never joined):
   * sends the finish chunk unless the last token was followed by one, and
   * gives the adapter back.
   */
  close(): void {
    if (!this.finished) {
      this.seq.cancel();
      this.finish({ text: '', tokenIds: [] });
    }
    this.lease?.release();
  }

  /** Ends the stream with an error (the decode step failed). */
  fail(err: unknown): void {
    this.finished = true;
    this.seq.release();
    this.out.fail(err);
    this.lease?.release();
  }

  private finish(chunk: GenerateChunk): void {
    this.finished = true;
    const end = Date.now();
    const since = (t: number | undefined) => Math.max(0, (t ?? end) - this.arrivalMs);
    chunk.finish = {
      reason: this.seq.finishReason ?? 'cancelled',
      usage: {
        promptTokens: this.seq.promptIds.length,
        generatedTokens: this.seq.generated.length,
        timeToFirstTokenMs: since(this.firstTokenMs),
        totalMs: since(this.lastTokenMs),
        queueMs: since(this.joinedMs),
      },
      adapter: this.lease?.label ?? '',
    };
    this.out.push(chunk);
    this.out.end();
  }
}

/** The `n` most likely tokens of a raw logits row with their log probabilities. */
export function topLogprobs(logits: Float32Array, n: number, tokenizer: Tokenizer): TopLogprob[] {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  // Keep the best n in a small sorted list: n <= 20, one pass over the vocabulary.
  const best: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (best.length === n && logits[i] <= logits[best[n - 1]]) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]] < logits[i]) at--;
    best.splice(at, 0, i);
    if (best.length > n) best.pop();
  }
  return best.map((id) => ({ tokenId: id, token: tokenizer.decode([id]), logprob: logits[id] - logZ }));
}
