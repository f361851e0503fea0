import * as tf from '@tensorflow/tfjs';
import { type LoraStackCache, stackedLoraDelta } from './lora-stack.js';
import type { LoraWeights, RowSegment } from './lora-weights.js';
import { hostLoraDelta, hostLoraSupports, type HostLoraRun } from './kernels/host-lora.js';
import { onHostBackend } from './kernels/host-memory.js';
import { matMul, recordingGradients } from './matmul.js';

/**
 * Rows (tokens) up to which a batch on several adapters takes the stacked
 * path. Decode steps are a token per row: there the per-op cost on wasm
 * dominates and stacking wins (about 3x at 16 rows on 8 adapters); a prefill
 * of many tokens is compute-bound, where the stacked B product's wasted
 * columns cost what the grouped path's slices and concat do (bench/lora-mix.ts
 * --tokens 32: equal at 512 rows), so it keeps the exact-flop grouped path.
 */
export const STACKED_MAX_ROWS = 256;

export { GPT2_LORA_TARGETS, LLAMA_LORA_TARGETS, type LoraModule, type LoraTarget, type LoraWeights, type RowSegment } from './lora-weights.js';

/** The scale PEFT applies: alpha / r, or alpha / sqrt(r) when rsLoRA is on. */
export function loraScale(r: number, alpha: number, rsLora = false): number {
  return rsLora ? alpha / Math.sqrt(r) : alpha / r;
}

/** Frees an adapter's tensors. */
export function disposeLora(lora: LoraWeights): void {
  for (const m of lora.modules.values()) {
    m.a.dispose();
    m.b.dispose();
  }
}

/** Bytes an adapter occupies on the backend (float32). */
export function loraBytes(lora: LoraWeights): number {
  let n = 0;
  for (const m of lora.modules.values()) n += m.a.size + m.b.size;
  return n * 4;
}


/** Options for LoRA during training. */
export interface LoraTrainingOptions {
  /** Dropout probability on the LoRA input (PEFT's lora_dropout). */
  dropout: number;
  /** Seed source for dropout masks; called once per use. */
  nextSeed: () => number;
}

/**
 * The LoRA delta for one projection over a batch flattened to [rows * tokensPerRow, in],
 * or null when no segment adapts this module. Training, and batches of more
 * than STACKED_MAX_ROWS rows, run a matMul pair per adapter. Up to that, on
 * the host backends one kernel does every adapter's rows (kernels/host-lora.ts);
 * elsewhere a batch on one adapter runs its matMul pair directly and several
 * adapters, or adapters mixed with base rows, one stacked pair (lora-stack.ts),
 * whose weights and masks `stacks` keeps across decode steps.
 */
export function loraDelta(
  x: tf.Tensor2D,
  key: string,
  segments: RowSegment[],
  tokensPerRow: number,
  outDim: number,
  training?: LoraTrainingOptions,
  stacks?: LoraStackCache,
): tf.Tensor2D | null {
  if (training || x.shape[0] > STACKED_MAX_ROWS || recordingGradients()) return groupedLoraDelta(x, key, segments, tokensPerRow, outDim, training);
  // Host backends: one kernel doing each adapter's rows with its own weights (kernels/host-lora.ts).
  const runs = onHostBackend() ? hostRuns(key, segments, tokensPerRow, outDim) : undefined;
  if (runs) return runs.length === 0 ? null : hostLoraDelta(x, runs, outDim);
  const whole = segments.length === 1 && segments[0].start === 0 && segments[0].count * tokensPerRow === x.shape[0];
  if (whole) return groupedLoraDelta(x, key, segments, tokensPerRow, outDim);
  return stackedLoraDelta(x, key, segments, tokensPerRow, stacks);
}

/** The runs of rows each adapter adapts in `key`, for hostLoraDelta; undefined if a rank or width does not fit the kernel. */
function hostRuns(key: string, segments: RowSegment[], tokensPerRow: number, outDim: number) {
  const runs: { run: HostLoraRun; a: tf.Tensor2D; b: tf.Tensor2D }[] = [];
  for (const s of segments) {
    const m = s.lora?.modules.get(key);
    if (!m || !s.lora) continue;
    if (!hostLoraSupports(m.a.shape[1], outDim)) return undefined;
    runs.push({ run: { start: s.start * tokensPerRow, count: s.count * tokensPerRow, scale: s.lora.scale }, a: m.a, b: m.b });
  }
  return runs;
}

/**
 * The LoRA delta computed segment by segment: a slice, a matMul pair and a
 * scale per segment, zeros for base rows, one concat. Differentiable (the
 * matMuls take transpose-free custom gradients, see matmul.ts).
 */
export function groupedLoraDelta(
  x: tf.Tensor2D,
  key: string,
  segments: RowSegment[],
  tokensPerRow: number,
  outDim: number,
  training?: LoraTrainingOptions,
): tf.Tensor2D | null {
  if (!segments.some((s) => s.lora?.modules.has(key))) return null;
  const totalRows = x.shape[0] / tokensPerRow;
  const parts: tf.Tensor2D[] = [];
  let row = 0;
  // Rows not covered by any segment (gaps) use the base model: a zero delta.
  const zeros = (rows: number) => parts.push(tf.zeros([rows * tokensPerRow, outDim]));
  for (const s of segments) {
    if (s.start > row) zeros(s.start - row);
    row = s.start + s.count;
    const m = s.lora?.modules.get(key);
    if (!m || !s.lora) {
      zeros(s.count);
      continue;
    }
    const whole = s.start === 0 && s.count === totalRows;
    let xs = whole ? x : (tf.slice(x, [s.start * tokensPerRow, 0], [s.count * tokensPerRow, -1]) as tf.Tensor2D);
    if (training && training.dropout > 0) xs = tf.dropout(xs, training.dropout, undefined, training.nextSeed()) as tf.Tensor2D;
    parts.push(matMul(matMul(xs, m.a), m.b).mul(s.lora.scale) as tf.Tensor2D);
  }
  if (row < totalRows) zeros(totalRows - row);
  return parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor2D);
}
