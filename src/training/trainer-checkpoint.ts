import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import type { HostTensors } from '../model/gpt-weights.js';
import type { AdamW } from './adamw.js';
import type { BatcherState } from './data/batcher.js';
import type { LossEvaluation } from './evaluate-loss.js';
import { readTensors } from './host-readback.js';
import type { Trainable, TrainMethod } from './trainable.js';

/** Format version of {@link TrainerCheckpointState}. */
export const TRAINER_CHECKPOINT_VERSION = 1;

/** The JSON half of a trainer checkpoint: everything but the tensors. */
export interface TrainerCheckpointState {
  version: typeof TRAINER_CHECKPOINT_VERSION;
  /** Optimizer steps completed. */
  step: number;
  /** Optimizer steps the run plans (a resumed run must plan the same). */
  totalSteps: number;
  method: TrainMethod;
  /** Parameter names in optimizer order; the keys of the tensors. */
  parameters: string[];
  /** Where the training batcher stands: the next batch follows. */
  batcher: BatcherState;
  /** State of the Rng that seeds LoRA dropout. */
  dropoutRngState: number;
  /** AdamW steps taken (equals `step` unless a step had no loss tokens). */
  optimizerStep: number;
  /** Loss of the latest step (nats per loss token), or null before the first. */
  lastLoss: number | null;
  /** Loss tokens trained on so far. */
  lossTokens: number;
  /** Seconds of training before this checkpoint (summed over resumed runs). */
  trainSeconds: number;
  /** Early stopping: the evaluation with the lowest validation loss so far and its step, or null. */
  best: (LossEvaluation & { step: number }) | null;
  /** Evaluations since the best one. */
  evalsWithoutImprovement: number;
  /** Step of the latest evaluation, or null. */
  lastEvalStep: number | null;
}

/**
 * Everything needed to resume a run exactly: JSON state plus float32 host
 * arrays keyed `param/<name>`, `adam_m/<name>`, `adam_v/<name>`, and
 * `best/<name>` when the best weights are kept apart from the current ones.
 * Both halves serialise as they are (JSON.stringify; safetensors).
 */
export interface TrainerCheckpoint {
  state: TrainerCheckpointState;
  tensors: HostTensors;
}

/**
 * Reads a checkpoint of the live run: parameters, moments and the optional
 * best snapshot come back in one readback.
 */
export async function captureCheckpoint(
  state: Omit<TrainerCheckpointState, 'version' | 'parameters' | 'method' | 'optimizerStep'>,
  trainable: Trainable,
  optimizer: AdamW,
  best: readonly tf.Tensor[] | undefined,
): Promise<TrainerCheckpoint> {
  const params = trainable.params;
  const { m, v } = optimizer.moments;
  const groups: [string, readonly tf.Tensor[]][] = [
    ['param', params.map((p) => p.variable)],
    ['adam_m', m],
    ['adam_v', v],
  ];
  if (best) groups.push(['best', best]);
  const data = await readTensors(groups.flatMap(([, ts]) => ts));
  const tensors: HostTensors = new Map();
  let k = 0;
  for (const [prefix] of groups) {
    for (const p of params) tensors.set(`${prefix}/${p.name}`, { shape: p.variable.shape.slice(), data: data[k++] });
  }
  return {
    state: {
      ...state,
      version: TRAINER_CHECKPOINT_VERSION,
      method: trainable.method,
      parameters: params.map((p) => p.name),
      optimizerStep: optimizer.stepCount,
    },
    tensors,
  };
}

/**
 * Loads a checkpoint's parameters and optimizer state into a run built with
 * the same method. With `withBest`, also returns the best snapshot (backend
 * tensors the caller frees) when the checkpoint holds one.
 */
export function restoreCheckpoint(
  cp: TrainerCheckpoint,
  trainable: Trainable,
  optimizer: AdamW,
  withBest: boolean,
): tf.Tensor[] | undefined {
  const { state, tensors } = cp;
  if (state.version !== TRAINER_CHECKPOINT_VERSION) {
    throw new InvalidArgument(`trainer checkpoint version must be ${TRAINER_CHECKPOINT_VERSION}, got ${state.version}`);
  }
  if (canonicalJson(state.method) !== canonicalJson(trainable.method)) {
    throw new InvalidArgument(
      `the checkpoint was trained with method ${JSON.stringify(state.method)}, not ${JSON.stringify(trainable.method)}`,
    );
  }
  const names = trainable.params.map((p) => p.name);
  if (JSON.stringify(state.parameters) !== JSON.stringify(names)) {
    throw new InvalidArgument('the checkpoint parameters do not match the model (different base model shape?)');
  }
  const get = (prefix: string, name: string): Float32Array => {
    const t = tensors.get(`${prefix}/${name}`);
    if (!t) throw new InvalidArgument(`trainer checkpoint is missing tensor \`${prefix}/${name}\``);
    return t.data;
  };
  trainable.assign(names.map((n) => get('param', n)));
  optimizer.loadState({
    step: state.optimizerStep,
    m: names.map((n) => get('adam_m', n)),
    v: names.map((n) => get('adam_v', n)),
  });
  if (!withBest || !tensors.has(`best/${names[0]}`)) return undefined;
  return trainable.params.map((p) => tf.tensor(get('best', p.name), p.variable.shape, 'float32'));
}

/** JSON with object keys sorted, for comparing settings regardless of key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
