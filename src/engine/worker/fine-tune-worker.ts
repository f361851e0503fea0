/**
 * A fine-tune job's thread (worker_threads entry; started by
 * fine-tune-thread.ts). TensorFlow.js runs ops synchronously on the calling
 * thread and a training step can take seconds, so each job trains here, on
 * its own backend instance and its own copy of the frozen base weights:
 * the serving thread keeps decoding, the main thread keeps doing I/O.
 *
 * It initialises the backend the serving engine chose, loads the base model
 * folder, reads and tokenizes the job's examples, trains, and posts every
 * event as it happens. The adapter is stored exactly as the in-process
 * engine stores it (AdapterStore.save: PEFT layout written into a hidden
 * temporary folder, then renamed into place as the name's next version);
 * the serving thread then publishes it from the store. A 'cancel' message
 * aborts the trainer's signal: the run stops at the next step boundary. A
 * 'suspend' message (shutdown) has it write its checkpoint at the next step
 * boundary first (into the job's folder, as the in-process engine does).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../../model/backend.js';
import { disposeAdapter } from '../../model/adapter.js';
import { GptModel } from '../../model/gpt-model.js';
import { readSftJsonlFile } from '../../training/data/jsonl-reader.js';
import type { NumberedExample } from '../../training/data/sft-example.js';
import { AdapterStore } from '../adapter-store.js';
import { leaseStillHeld } from '../job-lease.js';
import type { DataSource } from '../engine-api.js';
import { inlineExamples } from '../examples.js';
import type { FineTuneWorkerInput, FineTuneWorkerResult, FromFineTuneWorker, ToFineTuneWorker } from './fine-tune-protocol.js';
import { finalMetrics, trainJob } from '../job-training.js';
import { relayLogger } from './log-relay.js';
import { fromWireError, toWireError } from './wire-error.js';

const port = parentPort!;
const input = workerData as FineTuneWorkerInput;
const controller = new AbortController();
const suspender = new AbortController();
const post = (message: FromFineTuneWorker): void => port.postMessage(message);
const log = relayLogger(input.logLevel, input.logBindings, (line) => post({ t: 'log', line }));

port.on('message', (message: ToFineTuneWorker) => {
  if (message.t === 'cancel') controller.abort(fromWireError(message.reason));
  else if (message.t === 'suspend') suspender.abort();
});

/** Examples of a source: a stored dataset's JSONL file (its path came with the input) or inline examples. */
async function read(source: DataSource): Promise<NumberedExample[]> {
  if (!('datasetId' in source)) return inlineExamples(source.examples);
  const out: NumberedExample[] = [];
  for await (const record of readSftJsonlFile(input.datasetFiles[source.datasetId])) out.push(record);
  return out;
}

async function run(): Promise<FineTuneWorkerResult> {
  await initBackend(input.backend, { dawnOptions: input.dawnOptions });
  const model = await GptModel.load(input.modelDir);
  try {
    const result = await trainJob(
      model,
      { id: input.jobId, spec: input.spec, checkpointPath: input.checkpointPath },
      read,
      {
        // Posted, not awaited: the runner appends them to the job's log, in order, while training goes on.
        onStart: async (event) => post({ t: 'started', event }),
        onProgress: async (event) => post({ t: 'progress', event }),
        onEvaluation: async (event) => post({ t: 'evaluation', event }),
        onCheckpoint: async ({ step }) => post({ t: 'checkpoint', step }),
      },
      { signal: controller.signal, suspend: suspender.signal },
      { checkpointIntervalMs: input.checkpointIntervalMs, log },
    );
    if (result.status === 'cancelled' || result.status === 'suspended') return result;
    const { adapter, ...rest } = result;
    try {
      // No watch: this store only writes one version; the serving thread's store is the one that serves.
      const store = await AdapterStore.open(input.adaptersDir, model.config, log, { watch: false, removeLeftovers: false });
      // Once per job: a version this job stored already (before a crash) is the one.
      const earlier = store.versionOfJob(input.spec.adapter, input.jobId);
      if (earlier) return { ...rest, version: earlier.version };
      const lease = input.lease;
      const stored = await store.save(input.spec.adapter, adapter, input.jobId, finalMetrics(rest), lease && (() => leaseStillHeld(lease)));
      return { ...rest, version: stored.version };
    } finally {
      disposeAdapter(adapter);
    }
  } finally {
    model.dispose();
  }
}

run().then(
  (result) => post({ t: 'end', result }),
  (err: unknown) => post({ t: 'failed', error: toWireError(err) }),
);
