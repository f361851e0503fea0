import type { GptConfig } from '../gpt-config.js';
import type { GptWeights } from '../gpt-weights.js';
import { forward, type ForwardInput } from '../gpt.js';
import { KvCache } from '../kv-cache.js';
import type { RowSegment } from '../lora.js';
import type { GenerationSequence, TokenOutput } from './generation-sequence.js';

/** A model as the decoder needs it. */
export interface DecoderModel {
  config: GptConfig;
  weights: GptWeights;
}

/**
 * A running batch: every sequence's KV cache lives in one KvCache, rows
 * grouped by adapter. `add` prefills new sequences and merges them in at a
 * step boundary; `step` runs one forward pass for all rows and samples each;
 * `remove` drops finished rows and frees their cache. One readback per call.
 */
export class BatchDecoder {
  rows: GenerationSequence[] = [];
  private cache = new KvCache(0);

  constructor(private readonly model: DecoderModel) {}

  get size(): number {
    return this.rows.length;
  }

  /** Columns held by the cache (longest live row plus padding). */
  get cacheLength(): number {
    return this.cache.length;
  }

  /**
   * Prefills `seqs` (left-padded to their longest prompt), samples each one's
   * first token, and merges them into the batch. Returns outputs in `seqs` order.
   */
  async add(seqs: GenerationSequence[]): Promise<TokenOutput[]> {
    if (seqs.length === 0) return [];
    const order = sortedByAdapter(seqs);
    const ordered = order.map((i) => seqs[i]);
    const T = Math.max(...ordered.map((s) => s.promptIds.length));
    const B = ordered.length;
    const input: ForwardInput = {
      batch: B,
      length: T,
      ids: new Int32Array(B * T),
      positions: new Int32Array(B * T),
      valid: new Uint8Array(B * T),
    };
    ordered.forEach((s, b) => {
      const pad = T - s.promptIds.length;
      s.promptIds.forEach((id, j) => {
        input.ids[b * T + pad + j] = id;
        input.positions[b * T + pad + j] = j;
        input.valid[b * T + pad + j] = 1;
      });
    });
    const fresh = new KvCache(B);
    const outputs = await this.run(input, ordered, fresh);
    const merged = KvCache.concat([this.cache, fresh]);
    this.cache.dispose();
    fresh.dispose();
    this.cache = merged;
    this.rows = [...this.rows, ...ordered];
    this.regroup();
    const byInput: TokenOutput[] = new Array(seqs.length);
    order.forEach((orig, k) => (byInput[orig] = outputs[k]));
    return byInput;
  }

  /** One decode step for every row. Returns outputs in `rows` order (as before the call). */
  async step(): Promise<TokenOutput[]> {
    const B = this.rows.length;
    if (B === 0) return [];
    const input: ForwardInput = {
      batch: B,
      length: 1,
      ids: Int32Array.from(this.rows, (s) => s.lastId),
      positions: Int32Array.from(this.rows, (s) => s.length - 1),
      valid: new Uint8Array(B).fill(1),
    };
    return this.run(input, this.rows, this.cache);
  }

  /** Drops finished (or cancelled) rows and frees their cache columns. Returns the removed sequences. */
  removeFinished(): GenerationSequence[] {
    const keep: number[] = [];
    const gone: GenerationSequence[] = [];
    this.rows.forEach((s, i) => (s.finished ? gone.push(s) : keep.push(i)));
    if (gone.length === 0) return gone;
    const next = this.cache.select(keep);
    this.cache.dispose();
    this.cache = next;
    this.rows = keep.map((i) => this.rows[i]);
    return gone;
  }

  /** Frees the cache; the decoder is empty afterwards. */
  dispose(): void {
    this.cache.dispose();
    this.cache = new KvCache(0);
    this.rows = [];
  }

  private async run(input: ForwardInput, rows: GenerationSequence[], cache: KvCache): Promise<TokenOutput[]> {
    const groups = segmentsOf(rows);
    const full = rows.find((r) => r.adapter.blocks);
    if (full && groups.length > 1) throw new Error('last_layers adapters cannot share a batch with other adapters');
    const logits = forward(this.model.config, this.model.weights, input, {
      cache,
      segments: groups,
      blockOverrides: full?.adapter.blocks,
      lnF: full?.adapter.lnF,
      output: 'last',
    });
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    const V = this.model.config.vocabSize;
    return rows.map((s, b) => s.accept(data.subarray(b * V, (b + 1) * V)));
  }

  /** Keeps rows sorted by adapter key so each adapter is one contiguous segment. */
  private regroup(): void {
    const order = sortedByAdapter(this.rows);
    if (order.every((v, i) => v === i)) return;
    const next = this.cache.select(order);
    this.cache.dispose();
    this.cache = next;
    this.rows = order.map((i) => this.rows[i]);
  }
}

function sortedByAdapter(seqs: GenerationSequence[]): number[] {
  return seqs.map((_, i) => i).sort((a, b) => (seqs[a].adapter.key < seqs[b].adapter.key ? -1 : seqs[a].adapter.key > seqs[b].adapter.key ? 1 : a - b));
}

function segmentsOf(rows: GenerationSequence[]): RowSegment[] {
  const out: RowSegment[] = [];
  rows.forEach((s, i) => {
    const last = out[out.length - 1];
    if (last && rows[last.start].adapter.key === s.adapter.key) last.count++;
    else out.push({ start: i, count: 1, lora: s.adapter.lora });
  });
  return out;
}
