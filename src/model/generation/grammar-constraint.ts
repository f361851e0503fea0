/**
 * Constrained decoding for one sequence: at each step only the tokens that
 * keep the output a valid prefix of the grammar survive (the rest of the
 * logits row becomes -Infinity), and the stop tokens only where the grammar
 * is complete. A logits processor in spirit, but with an asynchronous part:
 * xgrammar's mask call is async, so the decoder awaits {@link prepare} for
 * every row next to the step's logits readback, and the synchronous
 * {@link apply} / {@link accept} run inside the sampling of that step.
 */
import type { GrammarMatcher } from '@mlc-ai/web-xgrammar';
import type { Utf8TokenMask } from './utf8-token-mask.js';

let live = 0;

/** GrammarMatchers created and not yet disposed, in this thread (the leak tests count them back to 0). */
export function liveGrammarMatchers(): number {
  return live;
}

/** The grammar state of one sequence; owns its xgrammar GrammarMatcher (wasm memory: call {@link dispose}). */
export class GrammarConstraint {
  private mask: Int32Array | undefined;
  /** UTF-8 decoder state of the output so far (see utf8-token-mask.ts). */
  private utf8State = 0;
  private disposed = false;

  constructor(
    private readonly matcher: GrammarMatcher,
    private readonly utf8: Utf8TokenMask,
    /** Logits width: the model's vocab_size (may exceed the tokenizer's). */
    private readonly width: number,
  ) {
    live++;
  }

  /** True once the grammar accepted a stop token: nothing may follow. */
  get terminated(): boolean {
    return !this.disposed && this.matcher.isTerminated();
  }

  /** Computes the allowed tokens of the next step (await it before {@link apply}). */
  async prepare(): Promise<void> {
    if (this.disposed || this.mask) return;
    try {
      this.mask = await this.matcher.getNextTokenBitmask();
    } catch (err) {
      // A wasm trap here is xgrammar's, not the model backend's: don't let the
      // decode loop read it as a backend fault (WebAssembly.RuntimeError).
      throw new Error(`grammar mask failed: ${String(err)}`);
    }
  }

  /** Sets every token the grammar (or UTF-8) does not allow next to -Infinity, ids past the tokenizer's vocabulary included. */
  apply(logits: Float32Array): void {
    const grammar = this.mask;
    if (!grammar) throw new Error('GrammarConstraint.apply before prepare');
    const utf8 = this.utf8.mask(this.utf8State);
    // Never leave the row empty: should UTF-8 and the grammar disagree (they
    // should not), the grammar alone decides.
    let any = false;
    for (let w = 0; w < grammar.length && !any; w++) any = (grammar[w] & utf8[w]) !== 0;
    const n = Math.min(logits.length, this.width);
    for (let w = 0; w * 32 < n; w++) {
      const allowed = any ? grammar[w] & utf8[w] : grammar[w];
      if (allowed === -1) continue;
      const end = Math.min(n, w * 32 + 32);
      for (let id = w * 32; id < end; id++) if (((allowed >>> (id & 31)) & 1) === 0) logits[id] = -Infinity;
    }
    for (let id = n; id < logits.length; id++) logits[id] = -Infinity;
  }

  /** Advances the grammar by the sampled token; throws if the grammar rejects it (a bug: the mask allowed it). */
  accept(tokenId: number): void {
    this.mask = undefined;
    if (!this.matcher.acceptToken(tokenId)) throw new Error(`the grammar rejected token ${tokenId}, which its mask allowed`);
    this.utf8State = Math.max(0, this.utf8.next(this.utf8State, tokenId));
  }

  /** Frees the matcher; idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.mask = undefined;
    this.matcher.dispose();
    live--;
  }
}
