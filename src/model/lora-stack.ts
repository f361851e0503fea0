/**
 * The LoRA delta of a batch whose rows use several adapters, as one matMul
 * pair per projection instead of one pair per adapter: the A matrices of the
 * adapters are concatenated along r ([in, sum r]), the B matrices along r too
 * ([sum r, out]), and a row mask ([rows, sum r]) keeps only the row's own
 * adapter's r columns, scaled by its alpha / r:
 *
 *   delta = ((x @ A_cat) * mask) @ B_cat
 *
 * which equals, row by row, scale_i * (x @ A_i) @ B_i. On wasm every op costs
 * tens of microseconds of dispatch however small it is, so 8 adapters' slices,
 * matMul pairs and concat cost far more than one pair over a slightly wider r
 * (bench/lora-mix.ts: about 3x less time for the deltas of a 16-row,
 * 8-adapter decode step of gentune-mini). The extra multiply-adds over other
 * adapters' columns are wasted, which a wide model with many large-rank
 * adapters would feel; at r = 8 they are noise next to the base matMuls.
 * Inference only: training has one adapter per batch and keeps its
 * custom-gradient path.
 */
import * as tf from '@tensorflow/tfjs';
import type { LoraModule, LoraWeights, RowSegment } from './lora-weights.js';

/** One projection's stacked weights: A and B of every adapter of the stack that adapts it. */
interface StackedModule {
  /** [in, width]. */
  a: tf.Tensor2D;
  /** [width, out]. */
  b: tf.Tensor2D;
  /** Where each adapter's columns are: offset and rank, in columns. */
  columns: Map<LoraWeights, { offset: number; rank: number }>;
  /** Sum of the ranks, in columns. */
  width: number;
  /** Identifies which adapters sit at which columns: projections alike share masks. */
  signature: string;
}

/** Adapters stacked together, their projections built on first use. */
class Stack {
  readonly members: Set<LoraWeights>;
  readonly modules = new Map<string, StackedModule | null>();
  /** Masks of the current row layout, by `${layout}#${module signature}`. */
  readonly masks = new Map<string, tf.Tensor2D>();
  layout = '';

  constructor(readonly adapters: LoraWeights[]) {
    this.members = new Set(adapters);
  }

  /** True once one of its adapters was freed (evicted, replaced): the stack must go. */
  get stale(): boolean {
    return this.adapters.some(isDisposed);
  }

  dispose(): void {
    for (const m of this.modules.values()) {
      m?.a.dispose();
      m?.b.dispose();
    }
    this.modules.clear();
    this.clearMasks();
  }

  clearMasks(): void {
    for (const t of this.masks.values()) t.dispose();
    this.masks.clear();
  }
}

/**
 * Stacks kept by a {@link LoraStackCache}: a batch changes adapter sets as
 * requests come and go. Each stack is a copy of its adapters' weights (not
 * counted in the registry's adapter budget), so only a couple are kept.
 */
const MAX_STACKS = 2;
/** A new stack also takes the adapters of the last one, up to this many, so that a batch whose set shrinks and grows back reuses it. */
const MAX_STACK_ADAPTERS = 16;

/**
 * Stacked adapter weights kept across decode steps, per distinct adapter set
 * (least recently used dropped beyond a few), with the row masks of the
 * current batch layout. A stack holding an adapter that was freed is dropped
 * at the next lookup. Owned by one batch decoder; `dispose` frees every
 * tensor it made.
 */
export class LoraStackCache {
  /** Most recently used last. */
  private stacks: Stack[] = [];

  /** Tensors held (stacked weights and masks). */
  get numTensors(): number {
    let n = 0;
    for (const s of this.stacks) n += 2 * [...s.modules.values()].filter(Boolean).length + s.masks.size;
    return n;
  }

  /** A stack holding every adapter of `needed` (made and kept when there is none). */
  lookup(needed: LoraWeights[]): Stack {
    this.stacks = this.stacks.filter((s) => {
      if (!s.stale) return true;
      s.dispose();
      return false;
    });
    let hit: Stack | undefined;
    for (const s of this.stacks) if (needed.every((l) => s.members.has(l))) hit = s;
    if (hit) {
      this.stacks.splice(this.stacks.indexOf(hit), 1);
      this.stacks.push(hit);
      return hit;
    }
    const previous = this.stacks.at(-1)?.adapters ?? [];
    const union = [...new Set([...needed, ...previous])];
    const stack = new Stack(union.length <= MAX_STACK_ADAPTERS ? union : needed);
    this.stacks.push(stack);
    while (this.stacks.length > MAX_STACKS) this.stacks.shift()!.dispose();
    return stack;
  }

  /** Frees every stack. */
  dispose(): void {
    for (const s of this.stacks) s.dispose();
    this.stacks = [];
  }
}

/**
 * The stacked LoRA delta of projection `key` over `x` ([rows * tokensPerRow, in]),
 * or null when no segment adapts it. With a cache, the stacked weights and
 * masks are kept (tf.keep) for the next steps; without one, they are made and
 * freed with the caller's tidy scope.
 */
export function stackedLoraDelta(
  x: tf.Tensor2D,
  key: string,
  segments: RowSegment[],
  tokensPerRow: number,
  cache?: LoraStackCache,
): tf.Tensor2D | null {
  const needed = distinctAdapters(segments, key);
  if (needed.length === 0) return null;
  const stack = cache ? cache.lookup(needed) : new Stack(needed);
  let m = stack.modules.get(key);
  if (m === undefined) {
    m = stackModule(stack.adapters, key);
    if (m && cache) {
      tf.keep(m.a);
      tf.keep(m.b);
    }
    stack.modules.set(key, m);
  }
  if (!m) return null;
  const rows = x.shape[0];
  const layout = layoutOf(segments, tokensPerRow, rows);
  if (stack.layout !== layout) {
    stack.clearMasks();
    stack.layout = layout;
  }
  let mask = stack.masks.get(m.signature);
  if (!mask) {
    mask = tf.tensor2d(maskValues(m, segments, tokensPerRow, rows), [rows, m.width]);
    if (cache) {
      tf.keep(mask);
      stack.masks.set(m.signature, mask);
    }
  }
  return tf.matMul(tf.mul(tf.matMul(x, m.a), mask), m.b);
}

/** The adapters of `segments` that adapt `key`, in order of first appearance. */
function distinctAdapters(segments: RowSegment[], key: string): LoraWeights[] {
  const out: LoraWeights[] = [];
  for (const s of segments) if (s.lora?.modules.has(key) && !out.includes(s.lora)) out.push(s.lora);
  return out;
}

function stackModule(adapters: LoraWeights[], key: string): StackedModule | null {
  const parts: [LoraWeights, LoraModule][] = [];
  for (const l of adapters) {
    const m = l.modules.get(key);
    if (m) parts.push([l, m]);
  }
  if (parts.length === 0) return null;
  const columns = new Map<LoraWeights, { offset: number; rank: number }>();
  let width = 0;
  for (const [l, m] of parts) {
    columns.set(l, { offset: width, rank: m.a.shape[1] });
    width += m.a.shape[1];
  }
  const signature = parts.map(([l]) => `${adapters.indexOf(l)}:${columns.get(l)!.offset}`).join(',');
  const a = parts.length === 1 ? tf.clone(parts[0][1].a) : (tf.concat(parts.map(([, m]) => m.a), 1) as tf.Tensor2D);
  const b = parts.length === 1 ? tf.clone(parts[0][1].b) : (tf.concat(parts.map(([, m]) => m.b), 0) as tf.Tensor2D);
  return { a, b, columns, width, signature };
}

/** Which rows use which adapter: masks are valid while it stays the same. */
function layoutOf(segments: RowSegment[], tokensPerRow: number, rows: number): string {
  let s = `${rows}/${tokensPerRow}`;
  for (const seg of segments) s += `|${seg.start}+${seg.count}:${seg.lora ? idOf(seg.lora) : '-'}`;
  return s;
}

/** [rows, width]: the adapter's scale on its own columns of each of its rows, 0 elsewhere (base rows: all 0). */
function maskValues(m: StackedModule, segments: RowSegment[], tokensPerRow: number, rows: number): Float32Array {
  const values = new Float32Array(rows * m.width);
  for (const s of segments) {
    const at = s.lora ? m.columns.get(s.lora) : undefined;
    if (!at || !s.lora) continue;
    for (let row = s.start * tokensPerRow; row < (s.start + s.count) * tokensPerRow; row++) {
      values.fill(s.lora.scale, row * m.width + at.offset, row * m.width + at.offset + at.rank);
    }
  }
  return values;
}

const ids = new WeakMap<LoraWeights, number>();
let nextId = 1;

/** A stable small id per adapter object (for layout signatures). */
function idOf(lora: LoraWeights): number {
  let id = ids.get(lora);
  if (id === undefined) ids.set(lora, (id = nextId++));
  return id;
}

function isDisposed(lora: LoraWeights): boolean {
  for (const m of lora.modules.values()) return m.a.isDisposed;
  return false;
}
