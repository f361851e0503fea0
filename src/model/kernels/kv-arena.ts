import { ATTENTION_WASM } from './attention-wasm.js';
import { growMemory, instantiateKernel } from './wasm-kernel.js';
import type { AttentionHeads } from '../attention-heads.js';

/** Tokens per KV page. */
export const PAGE_TOKENS = 16;

interface AttentionExports {
  memory: WebAssembly.Memory;
  scores(q: number, table: number, n: number, p: number, kvd: number, hd: number, nKv: number, group: number, scale: number, out: number): void;
  mix(p: number, table: number, n: number, pp: number, kvd: number, hd: number, nKv: number, group: number, vOff: number, out: number): void;
}

/**
 * The memory of the paged KV caches of one model shape, and the attention
 * kernel (attention.wat, WebAssembly SIMD) that reads them. A page holds the
 * keys and then the values of {@link PAGE_TOKENS} tokens of one layer; a
 * sequence's layer is a list of page byte offsets, so a sequence grows a page
 * at a time and leaves without copying anything. Pages are reused from a
 * free list; the memory grows in steps and never shrinks (wasm memory cannot),
 * up to 4 GiB. Used on backends whose tensors live in host memory (wasm,
 * cpu), where tfjs's batched matmul and concat made attention most of a
 * decode step. Key and value rows hold the model's key/value heads
 * (grouped-query attention: fewer than the query heads, each shared by
 * nHead / nKvHead of them); keys are stored as the model made them (after
 * rotary positions, for the Llama family).
 */
export class KvArena {
  /** Bytes of one page (keys and values of PAGE_TOKENS tokens, one layer). */
  readonly pageBytes: number;
  /** Byte offset of the values inside a page. */
  readonly valueOffset: number;
  /** Floats of a query and of an output row: nHead * headDim. */
  readonly queryWidth: number;
  /** Floats of a key and of a value row: nKvHead * headDim. */
  readonly kvWidth: number;
  readonly nHead: number;
  readonly nKvHead: number;
  readonly headDim: number;
  /** Pages handed out and not yet released. */
  pagesInUse = 0;
  private readonly kernel: AttentionExports;
  private f32!: Float32Array;
  private i32!: Int32Array;
  private readonly free: number[] = [];
  /** First byte never handed out. */
  private top: number;
  private readonly qOff: number;
  private readonly outOff: number;
  private readonly tableOff: number;
  private readonly scoresOff: number;
  private readonly group: number;
  private readonly scale: number;

  /**
   * @param heads query heads, key/value heads (dividing them) and head size (a multiple of 8 floats).
   * @param maxTokens longest sequence (the model's context), in tokens.
   */
  constructor(
    heads: AttentionHeads,
    readonly maxTokens: number,
  ) {
    if (!KvArena.supports(heads)) {
      throw new Error(`paged attention needs a head size that is a multiple of 8 and key/value heads dividing the query heads, got ${heads.nHead} x ${heads.headDim} over ${heads.nKvHead}`);
    }
    ({ nHead: this.nHead, nKvHead: this.nKvHead, headDim: this.headDim } = heads);
    this.group = this.nHead / this.nKvHead;
    this.queryWidth = this.nHead * this.headDim;
    this.kvWidth = this.nKvHead * this.headDim;
    this.scale = 1 / Math.sqrt(this.headDim);
    this.valueOffset = PAGE_TOKENS * this.kvWidth * 4;
    this.pageBytes = 2 * this.valueOffset;
    this.kernel = instantiateKernel<AttentionExports>(ATTENTION_WASM);
    // Scratch at the bottom: one query, one output row, a page table, the scores.
    const align = (n: number) => Math.ceil(n / 16) * 16;
    this.qOff = 0;
    this.outOff = align(this.queryWidth * 4);
    this.tableOff = this.outOff + align(this.queryWidth * 4);
    this.scoresOff = this.tableOff + align(Math.ceil(maxTokens / PAGE_TOKENS) * 4);
    this.top = this.scoresOff + align(this.nHead * maxTokens * 4);
    this.ensure(this.top);
  }

  /** Whether a model with these heads can use paged attention (the kernel takes heads 8 floats at a time). */
  static supports({ nHead, nKvHead, headDim }: AttentionHeads): boolean {
    return Number.isInteger(headDim) && headDim > 0 && headDim % 8 === 0 && Number.isInteger(nHead / nKvHead);
  }

  /** Bytes of wasm memory the arena holds (in use, free and scratch). */
  get bytes(): number {
    return this.kernel.memory.buffer.byteLength;
  }

  /** A page's byte offset: a free one, or a new one (growing the memory). */
  allocPage(): number {
    this.pagesInUse++;
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const page = this.top;
    this.ensure(page + this.pageBytes);
    this.top += this.pageBytes;
    return page;
  }

  /** Returns a page to the free list. */
  releasePage(page: number): void {
    this.pagesInUse--;
    this.free.push(page);
  }

  /** Copies a whole page (keys and values) onto another. */
  copyPage(from: number, to: number): void {
    this.f32.copyWithin(to / 4, from / 4, (from + this.pageBytes) / 4);
  }

  /**
   * Appends one token's key and value at position `t` of a layer whose pages
   * are `pages` (the page for `t` must exist) and writes its attention output
   * (over positions 0..t, [queryWidth] floats) to `out` at `outAt`. The
   * token's query is `q` from `qAt` ([queryWidth] floats), its key and value
   * `k` from `kAt` and `v` from `vAt` ([kvWidth] floats each).
   */
  appendAndAttend(pages: readonly number[], t: number, q: Float32Array, qAt: number, k: Float32Array, kAt: number, v: Float32Array, vAt: number, out: Float32Array, outAt: number): void {
    const { queryWidth, kvWidth, f32 } = this;
    const row = pages[Math.floor(t / PAGE_TOKENS)] + (t % PAGE_TOKENS) * kvWidth * 4;
    f32.set(q.subarray(qAt, qAt + queryWidth), this.qOff / 4);
    f32.set(k.subarray(kAt, kAt + kvWidth), row / 4);
    f32.set(v.subarray(vAt, vAt + kvWidth), (row + this.valueOffset) / 4);
    const n = t + 1;
    const tableAt = this.tableOff / 4;
    for (let p = 0; p * PAGE_TOKENS < n; p++) this.i32[tableAt + p] = pages[p];
    const { headDim, nKvHead, group } = this;
    this.kernel.scores(this.qOff, this.tableOff, n, PAGE_TOKENS, kvWidth, headDim, nKvHead, group, this.scale, this.scoresOff);
    this.softmax(n);
    this.kernel.mix(this.scoresOff, this.tableOff, n, PAGE_TOKENS, kvWidth, headDim, nKvHead, group, this.valueOffset, this.outOff);
    out.set(f32.subarray(this.outOff / 4, this.outOff / 4 + queryWidth), outAt);
  }

  /** Softmax in place over each head's `n` scores. */
  private softmax(n: number): void {
    const s = this.f32;
    for (let h = 0; h < this.nHead; h++) {
      const from = this.scoresOff / 4 + h * n;
      const to = from + n;
      let max = -Infinity;
      for (let i = from; i < to; i++) if (s[i] > max) max = s[i];
      let sum = 0;
      for (let i = from; i < to; i++) {
        const e = Math.exp(s[i] - max);
        s[i] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let i = from; i < to; i++) s[i] *= inv;
    }
  }

  /** Grows the memory to hold `bytes`, renewing the views. */
  private ensure(bytes: number): void {
    const memory = this.kernel.memory;
    growMemory(memory, bytes, 'KV cache');
    if (this.f32?.buffer !== memory.buffer) {
      this.f32 = new Float32Array(memory.buffer);
      this.i32 = new Int32Array(memory.buffer);
    }
  }
}

const arenas = new Map<string, KvArena>();

/** The arena of a model shape (one per thread and shape, created on first use). */
export function kvArenaFor(heads: AttentionHeads, maxTokens: number): KvArena {
  const key = `${heads.nHead}/${heads.nKvHead}/${heads.headDim}/${maxTokens}`;
  let arena = arenas.get(key);
  if (!arena) {
    arena = new KvArena(heads, maxTokens);
    arenas.set(key, arena);
  }
  return arena;
}

/** Paged KV cache memory of this thread, in bytes: held by the arenas, and in pages in use. */
export function kvCacheMemory(): { kvCacheBytes: number; kvCacheBytesInUse: number } {
  let kvCacheBytes = 0;
  let kvCacheBytesInUse = 0;
  for (const arena of arenas.values()) {
    kvCacheBytes += arena.bytes;
    kvCacheBytesInUse += arena.pagesInUse * arena.pageBytes;
  }
  return { kvCacheBytes, kvCacheBytesInUse };
}
