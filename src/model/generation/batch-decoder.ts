import type { GptConfig } from '../gpt-config.js';
import type { GptWeights } from '../gpt-weights.js';
import { forward, type ForwardInput } from '../gpt.js';
import { concatKvCaches, createKvCache, type DecodeCache, type KvCacheKind } from '../kv-cache.js';
import type { RowSegment } from '../lora.js';
import { LoraStackCache } from '../lora-stack.js';
import type { GenerationSequence, TokenOutput } from './generation-sequence.js';

/** A model as the decoder needs it. */
export interface DecoderModel {
  config: GptConfig;
  weights: GptWeights;
}

/** Decoder settings. */
export interface DecoderOptions {
  /** The KV cache kept (default `auto`: paged on host backends); see kv-cache.ts. */
  kvCache?: KvCacheKind;
}

/**
 * Sequences being prefilled into a KV cache of their own, a chunk of columns
 * per call, so that a long prompt can be interleaved with the decode steps of
 * a running batch instead of stalling it for one long forward pass. Prompts
 * are left-padded to the longest, exactly as an unchunked prefill lays them
 * out, and cut into column ranges: each chunk's forward pass reads the
 * columns before it from the cache and appends its own (positions continue),
 * so the result equals one whole-prompt pass. The last chunk samples each
 * row's first token; {@link BatchDecoder.merge} then moves the cache into the batch.
 */
export class PrefillGroup {
  /** Rows, sorted by adapter (the order outputs come in). */
  rows: GenerationSequence[];
  /** Left padding of each row, in columns. */
  private pads: number[];
  /** Padded prompt length: the longest prompt, in columns. */
  readonly columns: number;
  /** Columns already run. */
  private done = 0;
  private cache: DecodeCache;

  constructor(
    private readonly model: DecoderModel,
    seqs: GenerationSequence[],
    /** The batch decoder's stacked adapter weights (shared: same adapters). */
    private readonly stacks?: LoraStackCache,
    private readonly kvCache: KvCacheKind = 'auto',
  ) {
    if (seqs.length === 0) throw new Error('a prefill needs at least one sequence');
    this.rows = sortedByAdapter(seqs).map((i) => seqs[i]);
    this.columns = Math.max(...this.rows.map((s) => s.promptIds.length));
    this.pads = this.rows.map((s) => this.columns - s.promptIds.length);
    this.cache = createKvCache(model.config, this.rows.length, kvCache);
  }

  get size(): number {
    return this.rows.length;
  }

  /** True once the last chunk ran (its outputs were returned). */
  get complete(): boolean {
    return this.done === this.columns;
  }

  /**
   * Runs the next chunk of at most `maxColumns` columns (one forward pass, at
   * most one readback). Returns each row's first token, in `rows` order, when
   * this was the last chunk; otherwise null.
   */
  async next(maxColumns = Infinity): Promise<TokenOutput[] | null> {
    if (this.complete) throw new Error('prefill already complete');
    const start = this.done;
    const end = Math.min(this.columns, start + Math.max(1, Math.floor(maxColumns)));
    const T = end - start;
    const B = this.rows.length;
    const input: ForwardInput = { batch: B, length: T, ids: new Int32Array(B * T), positions: new Int32Array(B * T), valid: new Uint8Array(B * T) };
    this.rows.forEach((s, b) => {
      for (let c = Math.max(start, this.pads[b]); c < end; c++) {
        const j = c - this.pads[b];
        input.ids[b * T + c - start] = s.promptIds[j];
        input.positions[b * T + c - start] = j;
        input.valid[b * T + c - start] = 1;
      }
    });
    this.done = end;
    const last = end === this.columns;
    return forwardAndSample(this.model, input, this.rows, this.cache, last, this.stacks);
  }

  /** Drops finished (cancelled) rows before they complete; returns them. */
  removeFinished(): GenerationSequence[] {
    const { keep, gone } = partitionFinished(this.rows);
    if (gone.length === 0) return gone;
    this.cache = narrowCache(this.cache, keep);
    this.rows = keep.map((i) => this.rows[i]);
    this.pads = keep.map((i) => this.pads[i]);
    return gone;
  }

  /** Hands the filled cache over (to {@link BatchDecoder.merge}); the group is empty afterwards. */
  takeCache(): DecodeCache {
    if (!this.complete) throw new Error('prefill not complete');
    const cache = this.cache;
    this.cache = createKvCache(this.model.config, 0, this.kvCache);
    return cache;
  }

  /** Frees the cache. */
  dispose(): void {
    this.cache.dispose();
    this.cache = createKvCache(this.model.config, 0, this.kvCache);
    this.rows = [];
    this.pads = [];
  }
}

/**
 * A running batch: every sequence's KV cache lives in one KvCache, rows
 * grouped by adapter. New sequences are prefilled (whole with `add`, or in
 * chunks with a {@link PrefillGroup}) and merged in at a step boundary; `step`
 * runs one forward pass for all rows and samples each; `removeFinished` drops
 * finished rows and frees their cache. One readback per call.
 */
export class BatchDecoder {
  rows: GenerationSequence[] = [];
  private cache: DecodeCache;
  /** Stacked weights of the adapter sets this batch ran (kept across steps, freed with the decoder). */
  private readonly stacks = new LoraStackCache();
  private readonly kvCache: KvCacheKind;

  constructor(
    private readonly model: DecoderModel,
    options: DecoderOptions = {},
  ) {
    this.kvCache = options.kvCache ?? 'auto';
    this.cache = createKvCache(model.config, 0, this.kvCache);
  }

  get size(): number {
    return this.rows.length;
  }

  /**
   * Prefills `seqs` (left-padded to their longest prompt) in chunks of at most
   * `chunkColumns` columns, samples each one's first token, and merges them
   * into the batch. Returns outputs in `seqs` order.
   */
  async add(seqs: GenerationSequence[], chunkColumns = Infinity): Promise<TokenOutput[]> {
    if (seqs.length === 0) return [];
    const group = this.prefill(seqs);
    try {
      let outs: TokenOutput[] | null = null;
      while (!outs) outs = await group.next(chunkColumns);
      const byRow = new Map(group.rows.map((s, k) => [s, outs![k]] as const));
      this.merge(group);
      return seqs.map((s) => byRow.get(s)!);
    } finally {
      group.dispose();
    }
  }

  /** A prefill of `seqs` into a cache of their own; run it with `next`, then {@link merge} it. */
  prefill(seqs: GenerationSequence[]): PrefillGroup {
    return new PrefillGroup(this.model, seqs, this.stacks, this.kvCache);
  }

  /** Moves a complete prefill's rows and cache into the batch (at a step boundary). */
  merge(group: PrefillGroup): void {
    const rows = group.rows;
    const fresh = group.takeCache();
    group.dispose();
    const merged = concatKvCaches([this.cache, fresh]);
    this.cache.dispose();
    fresh.dispose();
    this.cache = merged;
    this.rows = [...this.rows, ...rows];
    this.regroup();
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
    return (await forwardAndSample(this.model, input, this.rows, this.cache, true, this.stacks))!;
  }

  /** Drops finished (or cancelled) rows and frees their cache columns. Returns the removed sequences. */
  removeFinished(): GenerationSequence[] {
    const { keep, gone } = partitionFinished(this.rows);
    if (gone.length === 0) return gone;
    this.cache = narrowCache(this.cache, keep);
    this.rows = keep.map((i) => this.rows[i]);
    return gone;
  }

  /** Frees the cache and stacked adapter weights; the decoder is empty afterwards. */
  dispose(): void {
    this.cache.dispose();
    this.cache = createKvCache(this.model.config, 0, this.kvCache);
    this.stacks.dispose();
    this.rows = [];
  }

  /** Keeps rows sorted by adapter key so each adapter is one contiguous segment. */
  private regroup(): void {
    const order = sortedByAdapter(this.rows);
    if (order.every((v, i) => v === i)) return;
    this.cache = narrowCache(this.cache, order);
    this.rows = order.map((i) => this.rows[i]);
  }
}

/**
 * One forward pass of `input` over `cache` (appended to). With `sample`, reads
 * back each row's last logits and samples from them; otherwise reads nothing
 * back (a middle prefill chunk only fills the cache) and returns null.
 */
async function forwardAndSample(
  model: DecoderModel,
  input: ForwardInput,
  rows: GenerationSequence[],
  cache: DecodeCache,
  sample: boolean,
  loraStacks?: LoraStackCache,
): Promise<TokenOutput[] | null> {
  const groups = segmentsOf(rows);
  const full = rows.find((r) => r.adapter.blocks);
  if (full && groups.length > 1) throw new Error('last_layers adapters cannot share a batch with other adapters');
  const logits = forward(model.config, model.weights, input, {
    cache,
    segments: groups,
    blockOverrides: full?.adapter.blocks,
    lnF: full?.adapter.lnF,
    output: 'last',
    loraStacks,
  });
  if (!sample) {
    logits.dispose();
    return null;
  }
  // Grammar masks are computed while the logits are read back (on a GPU backend the two overlap).
  let data: Float32Array;
  try {
    [data] = (await Promise.all([logits.data(), prepareGrammars(rows)])) as [Float32Array, void];
  } finally {
    logits.dispose();
  }
  const V = model.config.vocabSize;
  return rows.map((s, b) => s.accept(data.subarray(b * V, (b + 1) * V)));
}

/** The next-token masks of the rows that decode under a grammar. */
async function prepareGrammars(rows: GenerationSequence[]): Promise<void> {
  for (const s of rows) if (s.grammar) await s.grammar.prepare();
}

/** Indices of the rows still running, and the finished sequences. */
function partitionFinished(rows: GenerationSequence[]): { keep: number[]; gone: GenerationSequence[] } {
  const keep: number[] = [];
  const gone: GenerationSequence[] = [];
  rows.forEach((s, i) => (s.finished ? gone.push(s) : keep.push(i)));
  return { keep, gone };
}

/** The cache holding only `rows` (in that order); the old cache is freed. */
function narrowCache(cache: DecodeCache, rows: number[]): DecodeCache {
  const next = cache.select(rows);
  cache.dispose();
  return next;
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
