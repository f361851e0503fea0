import * as tf from '@tensorflow/tfjs';
import { type KvArena, PAGE_TOKENS } from './kernels/kv-arena.js';
import { HOST_BACKENDS, HostMemory } from './kernels/host-memory.js';
import type { QkvProjection } from './attention-heads.js';

/** Kernel name of the paged attention (host backends). */
const KERNEL = 'GentunePagedAttention';

/** One sequence's cached keys and values: per layer, its pages. Shared between caches by reference count. */
interface PagedSequence {
  /** Per layer, page byte offsets in the arena. */
  pages: number[][];
  /** Tokens held. */
  length: number;
  /** Caches holding this sequence. */
  refs: number;
}

/** The rows of a forward pass, as the paged cache needs them. */
export interface PagedInput {
  batch: number;
  /** New columns per row. */
  length: number;
  /** 1 for a real token, 0 for padding ([batch * length]); padding is neither cached nor attended to. */
  valid: Uint8Array;
}

/**
 * The KV cache of a batch of sequences, kept in a {@link KvArena}'s pages
 * instead of tensors: every row holds exactly its own tokens (no padding
 * columns, no masks), appending a token writes one key and one value row in
 * place (tensors would copy the whole cache per step), and rows join, leave
 * and regroup by reference without copying. Attention for the new tokens runs
 * in the arena's WebAssembly kernel, reading q/k/v and writing the output in
 * place; for backends whose tensors live in host memory (wasm, cpu).
 */
export class PagedKvCache {
  private constructor(
    readonly arena: KvArena,
    readonly nLayer: number,
    private seqs: PagedSequence[],
  ) {}

  /** A cache of `batch` empty rows. */
  static empty(arena: KvArena, nLayer: number, batch: number): PagedKvCache {
    const seqs = Array.from({ length: batch }, () => ({ pages: Array.from({ length: nLayer }, () => []), length: 0, refs: 1 }));
    return new PagedKvCache(arena, nLayer, seqs);
  }

  /** Concatenates caches row-wise into a new cache; the inputs stay valid (rows are shared, copied on write). */
  static concat(caches: PagedKvCache[]): PagedKvCache {
    if (caches.length === 0) throw new Error('concat needs at least one cache');
    const seqs = caches.flatMap((c) => c.seqs);
    for (const s of seqs) s.refs++;
    return new PagedKvCache(caches[0].arena, caches[0].nLayer, seqs);
  }

  /** Rows. */
  get batch(): number {
    return this.seqs.length;
  }

  /** Tokens held for a row (its next position id). */
  tokens(row: number): number {
    return this.seqs[row].length;
  }

  /** A new cache holding only `rows` (in that order); this cache stays valid. */
  select(rows: number[]): PagedKvCache {
    const seqs = rows.map((r) => this.seqs[r]);
    for (const s of seqs) s.refs++;
    return new PagedKvCache(this.arena, this.nLayer, seqs);
  }

  /**
   * Attention of layer `layer` for the new tokens of a forward pass: appends
   * their keys and values to each row's pages and returns the attention
   * output [batch * length, nHead * headDim] (zeros for padding). `qkv` is
   * the layer's projection: GPT-2's fused c_attn output [batch * length, 3d],
   * or separate q [batch * length, nHead * headDim] and k, v [batch *
   * length, nKvHead * headDim] with positions already encoded (the Llama
   * family's rotary keys are cached rotated). One kernel, working on the
   * tensors in place (host backends only). Call {@link commit} once after
   * the last layer.
   */
  attend(layer: number, qkv: QkvProjection, input: PagedInput): tf.Tensor2D {
    const { queryWidth, kvWidth } = this.arena;
    const rows = input.batch * input.length;
    const expect = (what: string, t: tf.Tensor2D, width: number) => {
      if (t.shape[0] !== rows || t.shape[1] !== width) throw new Error(`${what} is [${t.shape}], the cache expects [${rows},${width}]`);
    };
    if ('fused' in qkv) {
      if (queryWidth !== kvWidth) throw new Error('a fused qkv projection has as many key/value heads as query heads');
      expect('qkv', qkv.fused, 3 * queryWidth);
    } else {
      expect('q', qkv.q, queryWidth);
      expect('k', qkv.k, kvWidth);
      expect('v', qkv.v, kvWidth);
    }
    for (let b = 0; b < input.batch; b++) {
      let n = this.seqs[b].length;
      for (let i = 0; i < input.length; i++) n += input.valid[b * input.length + i];
      if (n > this.arena.maxTokens) throw new Error(`a row exceeds the context of ${this.arena.maxTokens} tokens`);
    }
    if (layer === 0) this.ownRows();
    const inputs: tf.NamedTensorMap = 'fused' in qkv ? { qkv: qkv.fused } : { q: qkv.q, k: qkv.k, v: qkv.v };
    return tf.engine().runKernel(KERNEL, inputs, { cache: this, layer, input } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  }

  /** The kernel's body: output allocated first, then the views (see HostMemory). */
  private attendInPlace(host: HostMemory, inputs: tf.NamedTensorInfoMap, layer: number, input: PagedInput): tf.TensorInfo {
    const { queryWidth: qw, kvWidth: kw } = this.arena;
    const info = host.output([input.batch * input.length, qw]);
    const out = host.view(info) as Float32Array;
    out.fill(0);
    // Row r's query, key and value: in GPT-2's fused rows [q | k | v] of 3 * qw floats, or in three tensors.
    const fused = inputs.qkv && (host.view(inputs.qkv) as Float32Array);
    const [q, k, v] = fused ? [fused, fused, fused] : [inputs.q!, inputs.k!, inputs.v!].map((t) => host.view(t) as Float32Array);
    const [qStride, kvStride] = fused ? [3 * qw, 3 * qw] : [qw, kw];
    const [kAt, vAt] = fused ? [qw, 2 * qw] : [0, 0];
    for (let b = 0; b < input.batch; b++) {
      const seq = this.seqs[b];
      const pages = seq.pages[layer];
      let t = seq.length;
      for (let i = 0; i < input.length; i++) {
        const r = b * input.length + i;
        if (!input.valid[r]) continue;
        if (pages.length * PAGE_TOKENS <= t) pages.push(this.arena.allocPage());
        this.arena.appendAndAttend(pages, t, q, r * qStride, k, r * kvStride + kAt, v, r * kvStride + vAt, out, r * qw);
        t++;
      }
    }
    return info;
  }

  /** Registers the attention kernel on the host backends (once, at module load). */
  static {
    const kernelFunc = ({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
      const { cache, layer, input } = attrs as unknown as { cache: PagedKvCache; layer: number; input: PagedInput };
      return cache.attendInPlace(new HostMemory(backend), inputs, layer, input);
    };
    for (const backendName of HOST_BACKENDS) tf.registerKernel({ kernelName: KERNEL, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }

  /** Records the new tokens of the forward pass that {@link attend} saw, per row. */
  commit(input: PagedInput): void {
    for (let b = 0; b < input.batch; b++) {
      let n = 0;
      for (let i = 0; i < input.length; i++) n += input.valid[b * input.length + i];
      this.seqs[b].length += n;
    }
  }

  /** Releases the rows (their pages go back to the arena when no other cache holds them). */
  dispose(): void {
    for (const s of this.seqs) {
      if (--s.refs > 0) continue;
      for (const layer of s.pages) for (const page of layer) this.arena.releasePage(page);
      s.pages = [];
    }
    this.seqs = [];
  }

  /** Copy on write: a row shared with another cache gets pages of its own before it is appended to. */
  private ownRows(): void {
    this.seqs = this.seqs.map((s) => {
      if (s.refs === 1) return s;
      s.refs--;
      const pages = s.pages.map((layer) =>
        layer.map((page) => {
          const copy = this.arena.allocPage();
          this.arena.copyPage(page, copy);
          return copy;
        }),
      );
      return { pages, length: s.length, refs: 1 };
    });
  }
}
