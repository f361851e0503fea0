import * as tf from '@tensorflow/tfjs';
import type { GptConfig } from './gpt-config.js';
import { KvArena, kvArenaFor } from './kernels/kv-arena.js';
import { onHostBackend } from './kernels/host-memory.js';
import { PagedKvCache } from './paged-kv-cache.js';
import { attentionHeads } from './attention-heads.js';

/** Keys (stored transposed) and values of one layer for every row of a batch. */
export interface LayerKv {
  /** Keys transposed, [batch, heads, headDim, length]: q @ kT needs no transposeB. */
  kT: tf.Tensor4D;
  /** Values, [batch, heads, length, headDim]. */
  v: tf.Tensor4D;
}

/**
 * The KV cache of a batch of sequences of different lengths. All rows share one
 * column count (`length`); a row shorter than the longest has masked columns
 * (`valid[row][col] === 0`), so rows can join (merge) and leave (select) at any
 * step. The cache owns its tensors: dispose() frees them.
 */
export class KvCache {
  layers: LayerKv[] = [];
  /** Per row, 1 where the column holds a real token. */
  valid: Uint8Array[];
  /** Columns currently held. */
  length = 0;

  constructor(readonly batch: number) {
    this.valid = Array.from({ length: batch }, () => new Uint8Array(0));
  }

  /** Replaces a layer's tensors (disposing the old ones); used by the forward pass. */
  setLayer(i: number, kv: LayerKv): void {
    const old = this.layers[i];
    if (old) {
      old.kT.dispose();
      old.v.dispose();
    }
    this.layers[i] = kv;
  }

  /** Records `n` new columns with their validity per row ([batch * n], row-major). */
  appendValidity(n: number, valid: Uint8Array): void {
    this.valid = this.valid.map((old, b) => {
      const next = new Uint8Array(old.length + n);
      next.set(old);
      next.set(valid.subarray(b * n, (b + 1) * n), old.length);
      return next;
    });
    this.length += n;
  }

  /** A new cache holding only `rows` (in that order); this cache is left intact. */
  select(rows: number[]): KvCache {
    const out = new KvCache(rows.length);
    out.length = this.length;
    out.valid = rows.map((r) => this.valid[r].slice());
    // Rows leave or regroup a few at a time, so `rows` is a few runs of
    // consecutive rows: a slice per run (a block copy) and one concat. On wasm
    // that is 5-20x faster than a gather, which copies element by element.
    const runs: [number, number][] = [];
    for (const r of rows) {
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === r) last[1]++;
      else runs.push([r, 1]);
    }
    const pick = (t: tf.Tensor4D): tf.Tensor4D =>
      tf.tidy(() => {
        if (runs.length === 1 && runs[0][0] === 0 && runs[0][1] === this.batch) return tf.clone(t);
        const parts = runs.map(([start, n]) => tf.slice(t, [start, 0, 0, 0], [n, -1, -1, -1]));
        return (parts.length === 1 ? parts[0] : tf.concat(parts, 0)) as tf.Tensor4D;
      });
    out.layers = rows.length === 0 ? [] : this.layers.map((l) => ({ kT: pick(l.kT), v: pick(l.v) }));
    out.trim();
    return out;
  }

  /**
   * Drops leading columns that no row uses (after rows left or were
   * left-padded), so the cache does not grow past the longest live row.
   */
  trim(): void {
    if (this.batch === 0) return;
    let lead = this.length;
    for (const v of this.valid) {
      const first = v.indexOf(1);
      lead = Math.min(lead, first === -1 ? v.length : first);
    }
    if (lead === 0) return;
    const keep = this.length - lead;
    this.layers = this.layers.map((l) => {
      const kv = {
        kT: tf.slice(l.kT, [0, 0, 0, lead], [-1, -1, -1, keep]) as tf.Tensor4D,
        v: tf.slice(l.v, [0, 0, lead, 0], [-1, -1, keep, -1]) as tf.Tensor4D,
      };
      l.kT.dispose();
      l.v.dispose();
      return kv;
    });
    this.valid = this.valid.map((v) => v.slice(lead));
    this.length = keep;
  }

  /**
   * Concatenates caches row-wise into a new cache, left-padding the shorter
   * ones with masked columns. The inputs are left intact.
   */
  static concat(caches: KvCache[]): KvCache {
    const parts = caches.filter((c) => c.batch > 0);
    const batch = parts.reduce((n, c) => n + c.batch, 0);
    const out = new KvCache(batch);
    if (parts.length === 0) return out;
    const length = Math.max(...parts.map((c) => c.length));
    out.length = length;
    out.valid = parts.flatMap((c) =>
      c.valid.map((v) => {
        const padded = new Uint8Array(length);
        padded.set(v, length - v.length);
        return padded;
      }),
    );
    const nLayers = Math.max(...parts.map((c) => c.layers.length));
    for (let i = 0; i < nLayers; i++) {
      out.layers.push(
        tf.tidy(() => {
          const kTs = parts.map((c) => {
            const pad = length - c.length;
            return pad === 0 ? c.layers[i].kT : tf.pad(c.layers[i].kT, [[0, 0], [0, 0], [0, 0], [pad, 0]]);
          });
          const vs = parts.map((c) => {
            const pad = length - c.length;
            return pad === 0 ? c.layers[i].v : tf.pad(c.layers[i].v, [[0, 0], [0, 0], [pad, 0], [0, 0]]);
          });
          return { kT: tf.concat(kTs, 0) as tf.Tensor4D, v: tf.concat(vs, 0) as tf.Tensor4D };
        }),
      );
    }
    return out;
  }

  /** Frees every tensor. */
  dispose(): void {
    for (const l of this.layers) {
      l.kT.dispose();
      l.v.dispose();
    }
    this.layers = [];
  }
}

/** Which KV cache a decoder keeps: `paged` (host backends), `tensor`, or `auto` (paged where it applies). */
export type KvCacheKind = 'auto' | 'paged' | 'tensor';

/** A decoder's KV cache: tensors (any backend) or pages in host memory (wasm, cpu). */
export type DecodeCache = KvCache | PagedKvCache;

/**
 * Whether `auto` picks the paged cache for this model on the current backend:
 * on host backends, for heads of a multiple of 8 floats (GPT-2's and the
 * Llama family's alike: the kernel reads grouped-query heads and keys
 * cached after their rotary positions).
 */
export function pagedCacheApplies(config: GptConfig): boolean {
  return onHostBackend() && KvArena.supports(attentionHeads(config));
}

/** An empty cache of `batch` rows of the given kind. */
export function createKvCache(config: GptConfig, batch: number, kind: KvCacheKind = 'auto'): DecodeCache {
  const paged = kind === 'paged' || (kind === 'auto' && pagedCacheApplies(config));
  if (!paged) return new KvCache(batch);
  if (!onHostBackend()) throw new Error(`the paged KV cache needs a host-memory backend (wasm, cpu), not ${tf.getBackend()}`);
  return PagedKvCache.empty(kvArenaFor(attentionHeads(config), config.nPositions), config.nLayer, batch);
}

/** Concatenates caches of one kind row-wise; the inputs stay valid (dispose them). */
export function concatKvCaches(caches: DecodeCache[]): DecodeCache {
  if (caches.every((c) => c instanceof PagedKvCache)) return PagedKvCache.concat(caches);
  if (caches.every((c) => c instanceof KvCache)) return KvCache.concat(caches);
  throw new Error('cannot concatenate paged and tensor KV caches');
}
