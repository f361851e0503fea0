/**
 * Runs fine-tune jobs one at a time, first in first out (the others wait in
 * state 'queued'). A job reads its examples, tokenizes them, holds out its
 * validation set and calls the trainer, whose callbacks become job events; on
 * success the adapter is stored as a new version and published at once.
 * The trainer runs in-process for now, awaiting one readback per step and
 * yielding to the event loop between steps, so Generate keeps being served.
 */
import type { Logger } from 'pino';
import { Cancelled, FailedPrecondition, GentuneError, InvalidArgument, Unavailable } from '../common/errors.js';
import { disposeAdapter } from '../model/adapter.js';
import type { GptModel } from '../model/gpt-model.js';
import type { LoraTarget } from '../model/lora.js';
import { resolveValidation } from '../training/data/split.js';
import type { TokenizedExample } from '../training/data/tokenize-example.js';
import { resolveHyperparameters, type TrainHyperparameters } from '../training/train-hyperparameters.js';
import type { TrainMethod } from '../training/trainable.js';
import { train, type TrainResult } from '../training/trainer.js';
import type { AdapterRegistry } from './adapter-registry.js';
import type { LimitsConfig } from './config.js';
import type { DatasetStore } from './dataset-store.js';
import { type EngineMetrics, noMetrics } from './engine-metrics.js';
import type { FineTuneMethod, FineTuneSpec, Hyperparameters, JobInfo } from './engine-api.js';
import { readExamples, tokenizeExamples } from './examples.js';
import { isFinished } from './job-state.js';
import type { JobStore } from './job-store.js';

/** PEFT's target_modules names for GPT-2 -> the modules they select ("c_proj" is both projections). */
const TARGETS: Record<string, LoraTarget[]> = {
  c_attn: ['attn.c_attn'],
  c_proj: ['attn.c_proj', 'mlp.c_proj'],
  'attn.c_proj': ['attn.c_proj'],
  c_fc: ['mlp.c_fc'],
  'mlp.c_proj': ['mlp.c_proj'],
};

interface RunningJob {
  id: string;
  controller: AbortController;
  done: Promise<void>;
}

/** The FIFO of fine-tune jobs and the one that runs. */
export class FineTuneRunner {
  private readonly queue: string[] = [];
  private current: RunningJob | null = null;
  private draining = false;

  constructor(
    private readonly model: GptModel,
    private readonly jobs: JobStore,
    private readonly datasets: DatasetStore,
    private readonly registry: AdapterRegistry,
    private readonly limits: LimitsConfig,
    private readonly log: Logger,
    private readonly metrics: EngineMetrics = noMetrics,
  ) {}

  /** Queues the jobs left queued by an earlier process, oldest first, and starts the first. */
  start(): void {
    for (const job of this.jobs.queued()) this.queue.push(job.id);
    this.pump();
  }

  /** Checks what only the engine knows, persists the job and queues it. */
  async submit(spec: FineTuneSpec): Promise<JobInfo> {
    if (this.draining) throw new Unavailable('the server is shutting down');
    this.check(spec);
    const job = await this.jobs.create(spec, this.queue.length + (this.current ? 1 : 0));
    this.queue.push(job.id);
    this.log.info({ jobId: job.id, adapter: spec.adapter }, 'fine-tune job queued');
    this.pump();
    return job;
  }

  /** Cancels a queued or running job; resolves once it is cancelled. */
  async cancel(jobId: string): Promise<JobInfo> {
    const job = this.jobs.get(jobId);
    if (isFinished(job)) throw new FailedPrecondition(`fine-tune job ${JSON.stringify(jobId)} already ${job.state}`);
    const at = this.queue.indexOf(jobId);
    if (at >= 0) {
      this.queue.splice(at, 1);
      await this.jobs.append(jobId, { type: 'cancelled' });
    } else if (this.current?.id === jobId) {
      this.current.controller.abort(new Cancelled('the fine-tune job was cancelled'));
      await this.current.done;
    }
    return this.jobs.get(jobId);
  }

  /** A queued or running job that reads the dataset, if any. */
  jobUsingDataset(datasetId: string): string | undefined {
    return this.jobs
      .unfinished()
      .find((j) => ('datasetId' in j.spec.training && j.spec.training.datasetId === datasetId) || j.spec.validationDatasetId === datasetId)?.id;
  }

  /**
   * Starts no more jobs; lets the running one finish within `graceMs`, then
   * stops it without a terminal event (so a restart reports it interrupted).
   * Queued jobs stay queued on disk and run after the restart.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const running = this.current;
    if (!running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([running.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    running.controller.abort(new Unavailable('the server is shutting down'));
    await running.done;
  }

  private pump(): void {
    if (this.current || this.draining) return;
    const id = this.queue.shift();
    if (id === undefined) return;
    const controller = new AbortController();
    const running: RunningJob = { id, controller, done: Promise.resolve() };
    running.done = this.run(id, controller.signal)
      .catch((err: unknown) => this.log.error({ jobId: id, err }, 'fine-tune job bookkeeping failed'))
      .finally(() => {
        this.current = null;
        this.pump();
      });
    this.current = running;
  }

  private async run(jobId: string, signal: AbortSignal): Promise<void> {
    const spec = this.jobs.get(jobId).spec;
    const log = this.log.child({ jobId });
    log.info({ adapter: spec.adapter }, 'fine-tune job starting');
    let result: TrainResult | undefined;
    try {
      const { trainSet, validationSet } = await this.prepare(spec);
      if (signal.aborted) throw signal.reason;
      result = await train({
        config: this.model.config,
        weights: this.model.weights,
        baseModel: this.model.name,
        method: trainMethod(spec.method),
        train: trainSet,
        validation: validationSet,
        padId: this.model.tokenizer.eosId,
        hyperparameters: trainHyperparameters(spec.hyperparameters),
        signal,
        callbacks: {
          onStart: async (e) => {
            this.metrics.onJobStarted(jobId, spec.adapter, e.totalSteps);
            await this.jobs.append(jobId, {
              type: 'started',
              totalSteps: e.totalSteps,
              numTrainExamples: e.trainSequences,
              numValidationExamples: e.validationSequences,
              trainableParameters: e.trainableParameters,
            });
          },
          onProgress: async (e) => {
            this.metrics.onJobProgress(jobId, e);
            await this.jobs.append(jobId, { type: 'progress', ...e });
          },
          onEvaluation: async (e) => {
            this.metrics.onJobEvaluation(jobId, e.loss);
            await this.jobs.append(jobId, { type: 'evaluation', step: e.step, evalLoss: e.loss, perplexity: e.perplexity });
          },
        },
      });
      if (result.status === 'cancelled') {
        disposeAdapter(result.adapter);
        await this.ended(jobId, signal, log);
        return;
      }
      const stored = await this.registry.publish(spec.adapter, result.adapter, jobId);
      await this.jobs.append(jobId, {
        type: 'succeeded',
        adapter: spec.adapter,
        version: stored.version,
        metrics: {
          trainLoss: result.trainLoss ?? Number.NaN,
          evalLoss: result.evaluation?.loss,
          perplexity: result.evaluation?.perplexity,
          steps: result.steps,
          tokens: result.lossTokens,
          trainSeconds: result.trainSeconds,
        },
      });
      log.info({ adapter: `${spec.adapter}@${stored.version}`, steps: result.steps, trainSeconds: result.trainSeconds }, 'fine-tune job succeeded');
    } catch (err) {
      if (signal.aborted) {
        await this.ended(jobId, signal, log);
        return;
      }
      // Domain errors are safe to show; anything else is ours, and goes to the log only.
      const reason = err instanceof GentuneError ? err.message : 'internal error';
      log.error({ err }, 'fine-tune job failed');
      await this.jobs.append(jobId, { type: 'failed', reason });
    }
  }

  /** A stopped run: cancelled by the user, or cut by shutdown (then no terminal event). */
  private async ended(jobId: string, signal: AbortSignal, log: Logger): Promise<void> {
    if (signal.reason instanceof Cancelled) {
      await this.jobs.append(jobId, { type: 'cancelled' });
      log.info('fine-tune job cancelled');
    } else {
      log.warn('fine-tune job stopped by shutdown');
    }
  }

  /** Reads and tokenizes the training (and validation) examples. */
  private async prepare(spec: FineTuneSpec): Promise<{ trainSet: TokenizedExample[]; validationSet: TokenizedExample[] }> {
    const h = spec.hyperparameters;
    const maxSeqLen = h.maxSeqLen ?? Math.min(512, this.model.config.nPositions);
    const completionOnly = h.completionOnlyLoss ?? true;
    const tokenize = async (source: FineTuneSpec['training'], field: string) =>
      tokenizeExamples(await readExamples(source, this.datasets, field), this.model.tokenizer, maxSeqLen, completionOnly);
    const train = await tokenize(spec.training, 'dataset_id');
    const validation = spec.validationDatasetId === undefined
      ? undefined
      : await tokenize({ datasetId: spec.validationDatasetId }, 'validation_dataset_id');
    const split = resolveValidation(train, {
      validation,
      validationRatio: validation ? undefined : h.validationSplit,
      seed: h.seed ?? 42,
    });
    return { trainSet: split.train, validationSet: split.validation };
  }

  /** What the server cannot check: the base model, stored datasets, lengths against the model. */
  private check(spec: FineTuneSpec): void {
    const { config, name } = this.model;
    if (spec.baseModel !== '' && spec.baseModel !== name) {
      throw new FailedPrecondition(`\`base_model\` ${JSON.stringify(spec.baseModel)} is not the served model ${JSON.stringify(name)}`);
    }
    if ('datasetId' in spec.training) this.datasets.get(spec.training.datasetId, 'dataset_id');
    if (spec.validationDatasetId !== undefined) this.datasets.get(spec.validationDatasetId, 'validation_dataset_id');
    const maxSeqLen = spec.hyperparameters.maxSeqLen;
    if (maxSeqLen !== undefined && maxSeqLen > config.nPositions) {
      throw new InvalidArgument(`\`max_seq_len\` must be <= n_positions ${config.nPositions}, got ${maxSeqLen}`);
    }
    const batchSize = spec.hyperparameters.batchSize;
    if (batchSize !== undefined && batchSize > this.limits.maxBatchSize) {
      throw new InvalidArgument(`\`batch_size\` must be <= limits.max_batch_size ${this.limits.maxBatchSize}, got ${batchSize}`);
    }
    if (spec.method.kind === 'last_layers' && !(spec.method.numLayers >= 1 && spec.method.numLayers <= config.nLayer)) {
      throw new InvalidArgument(`\`num_layers\` must be in 1..${config.nLayer}, got ${spec.method.numLayers}`);
    }
    const h = spec.hyperparameters;
    const hasValidation = spec.validationDatasetId !== undefined || (h.validationSplit ?? 0) > 0;
    // Fails now, naming the field, rather than when the job starts.
    resolveHyperparameters(trainHyperparameters(h), trainMethod(spec.method), hasValidation);
  }
}

/** The engine's method (PEFT names, defaults unset) -> the trainer's. */
export function trainMethod(m: FineTuneMethod): TrainMethod {
  if (m.kind === 'last_layers') return { kind: 'last_layers', numLayers: m.numLayers };
  const names = m.targetModules.length > 0 ? m.targetModules : ['c_attn'];
  const targets = new Set<LoraTarget>();
  names.forEach((n, i) => {
    const t = TARGETS[n];
    if (!t) throw new InvalidArgument(`\`target_modules[${i}]\` must be one of ${Object.keys(TARGETS).join(', ')}, got ${JSON.stringify(n)}`);
    for (const x of t) targets.add(x);
  });
  return { kind: 'lora', r: m.r ?? 8, alpha: m.loraAlpha ?? 16, dropout: m.loraDropout ?? 0.05, targetModules: [...targets] };
}

/** The engine's hyperparameters -> the trainer's (maxSeqLen, completion-only and the split are applied here). */
function trainHyperparameters(h: Hyperparameters): TrainHyperparameters {
  return {
    epochs: h.epochs,
    maxSteps: h.maxSteps,
    batchSize: h.batchSize,
    gradientAccumulationSteps: h.gradientAccumulationSteps,
    learningRate: h.learningRate,
    warmupSteps: h.warmupSteps,
    schedule: h.lrScheduler,
    weightDecay: h.weightDecay,
    maxGradNorm: h.maxGradNorm,
    evalIntervalSteps: h.evalIntervalSteps,
    earlyStoppingPatience: h.earlyStoppingPatience,
    seed: h.seed,
  };
}
