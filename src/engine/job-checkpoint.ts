/**
 * A running fine-tune job's trainer checkpoint on disk: one safetensors file,
 * `<dataDir>/jobs/<id>/checkpoint.safetensors`, whose tensors are the
 * checkpoint's (trainable weights, AdamW moments, best weights) and whose
 * `__metadata__` holds the rest as JSON (step, data position, Rng states,
 * early-stopping record). One file, written to a temporary name, fsynced and
 * renamed over the previous one, so a kill at any moment leaves the previous
 * checkpoint or the new one, whole. The job store deletes it when the job ends.
 */
import { unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { diskError } from '../common/atomic-write.js';
import { NotFound } from '../common/errors.js';
import { readSafetensors, writeSafetensors } from '../model/checkpoint/safetensors.js';
import { TRAINER_CHECKPOINT_VERSION, type TrainerCheckpoint, type TrainerCheckpointState } from '../training/trainer-checkpoint.js';

/** File name of a job's checkpoint inside its folder. */
export const CHECKPOINT_FILE = 'checkpoint.safetensors';
/** The metadata key holding the JSON state. */
const STATE_KEY = 'gentune_trainer_state';

/** Writes (atomically replaces) the checkpoint at `path`. */
export async function writeJobCheckpoint(path: string, checkpoint: TrainerCheckpoint): Promise<void> {
  try {
    await writeSafetensors(path, checkpoint.tensors, { metadata: { [STATE_KEY]: JSON.stringify(checkpoint.state) } });
  } catch (err) {
    // `<dataDir>/jobs/<id>/checkpoint.safetensors`: a full disk names the data directory.
    throw diskError(err, dirname(dirname(dirname(path))));
  }
}

/**
 * Reads the checkpoint at `path`: undefined when there is none, or when it
 * does not read back whole (truncated, bad header, bad JSON): that is logged
 * as a warning naming the file, and the job starts over from step 0.
 */
export async function readJobCheckpoint(path: string, log: Logger): Promise<TrainerCheckpoint | undefined> {
  try {
    const { tensors, metadata } = await readSafetensors(path, { noFollow: true });
    const state = JSON.parse(metadata[STATE_KEY] ?? 'null') as TrainerCheckpointState | null;
    if (state === null || typeof state !== 'object' || state.version !== TRAINER_CHECKPOINT_VERSION || !Number.isInteger(state.step)) {
      throw new Error(`${path}: no trainer state of version ${TRAINER_CHECKPOINT_VERSION} in its metadata`);
    }
    return { state, tensors };
  } catch (err) {
    if (err instanceof NotFound) return undefined;
    log.warn({ file: path, err }, 'skipping an unreadable fine-tune checkpoint: the job starts over from step 0');
    return undefined;
  }
}

/** Deletes the checkpoint at `path`, if any. */
export async function removeJobCheckpoint(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
