import type { Adapter } from '../model/adapter.js';
import type { ForwardInput, ForwardOptions } from '../model/gpt.js';
import type { LoraTrainingOptions } from '../model/lora.js';
import type { Batch } from './data/collate.js';

/**
 * The model input for a training or evaluation batch. Attention stays within
 * each example of a packed row (`segmentIds`), and positions restart at 0 at
 * each example, so a packed example is seen exactly as it would be alone.
 * Padding is right-aligned and never attended to.
 */
export function forwardInputOf(batch: Batch): ForwardInput {
  const { size, seqLen, inputIds, attentionMask, segmentIds } = batch;
  const positions = new Int32Array(size * seqLen);
  for (let b = 0; b < size; b++) {
    let start = b * seqLen;
    for (let t = 0; t < seqLen; t++) {
      const i = b * seqLen + t;
      if (t > 0 && segmentIds[i] !== segmentIds[i - 1]) start = i;
      positions[i] = attentionMask[i] ? i - start : 0;
    }
  }
  return { batch: size, length: seqLen, ids: inputIds, positions, valid: attentionMask, segmentIds };
}

/**
 * Forward options that apply an adapter to every row of a batch of `rows`
 * rows; none for the bare base model. `loraTraining` turns LoRA dropout on.
 */
export function adapterForwardOptions(
  adapter: Adapter | undefined,
  rows: number,
  loraTraining?: LoraTrainingOptions,
): ForwardOptions {
  if (!adapter) return {};
  if (adapter.kind === 'lora') return { segments: [{ start: 0, count: rows, lora: adapter.lora }], loraTraining };
  return { blockOverrides: adapter.blocks, lnF: adapter.lnF };
}
