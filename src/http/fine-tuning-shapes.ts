/**
 * Engine jobs and events in OpenAI's fine-tuning shapes: the job object,
 * its events (message and metrics) and its checkpoints. Times are epoch
 * seconds, as OpenAI sends them.
 *
 * Checkpoints: a gentune job has one servable checkpoint, the adapter
 * version it published on success (`name@version`, the job's
 * `fine_tuned_model`). The checkpoints a job saves while training are
 * resume points, not models (nothing can serve them), so they are events,
 * not checkpoints.
 */
import type { FineTuneSpec, JobEvent, JobInfo } from '../engine/engine-api.js';
import { DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_SEED, defaultLearningRate } from '../training/train-hyperparameters.js';
import type { GentuneSettings } from './fine-tuning-request.js';

const seconds = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));

/** OpenAI's hyperparameters of a job, resolved to the values it trains with. */
export interface OpenAiHyperparameters {
  n_epochs: number;
  batch_size: number;
  learning_rate_multiplier: number;
}

/** The `fine_tuned_model` of a succeeded job: the published adapter as `name@version`. */
export function fineTunedModel(job: JobInfo): string | null {
  return job.state === 'succeeded' && job.adapterVersion !== undefined ? `${job.spec.adapter}@${job.adapterVersion}` : null;
}

function hyperparameters(spec: FineTuneSpec): OpenAiHyperparameters {
  const h = spec.hyperparameters;
  const base = defaultLearningRate(spec.method);
  return {
    n_epochs: h.epochs ?? DEFAULT_EPOCHS,
    batch_size: h.batchSize ?? DEFAULT_BATCH_SIZE,
    // Rounded so that 2 * 2e-4 / 2e-4 reads 2, not 2.0000000000000004.
    learning_rate_multiplier: h.learningRate === undefined ? 1 : Number((h.learningRate / base).toPrecision(12)),
  };
}

/** The job's gentune settings, echoed under the extension field (undefined ones left out). */
function gentuneSettings(spec: FineTuneSpec): GentuneSettings {
  const h = spec.hyperparameters;
  const m = spec.method;
  const method = m.kind === 'lora'
    ? { method: 'lora' as const, r: m.r, lora_alpha: m.loraAlpha, lora_dropout: m.loraDropout, target_modules: m.targetModules.length > 0 ? m.targetModules : undefined }
    : { method: 'last_layers' as const, num_layers: m.numLayers };
  const all: GentuneSettings = {
    ...method,
    max_steps: h.maxSteps,
    gradient_accumulation_steps: h.gradientAccumulationSteps,
    warmup_steps: h.warmupSteps,
    lr_scheduler: h.lrScheduler,
    weight_decay: h.weightDecay,
    max_seq_len: h.maxSeqLen,
    eval_interval_steps: h.evalIntervalSteps,
    early_stopping_patience: h.earlyStoppingPatience,
    completion_only_loss: h.completionOnlyLoss,
    validation_split: h.validationSplit,
    max_grad_norm: h.maxGradNorm,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as GentuneSettings;
}

/** Engine job -> OpenAI `fine_tuning.job`. */
export function jobObject(job: JobInfo, servedModel: string) {
  const hp = hyperparameters(job.spec);
  const training = job.spec.training;
  return {
    id: job.id,
    object: 'fine_tuning.job' as const,
    model: job.spec.baseModel || servedModel,
    created_at: seconds(job.createdAtMs)!,
    finished_at: seconds(job.finishedAtMs),
    fine_tuned_model: fineTunedModel(job),
    organization_id: 'gentune',
    result_files: [] as string[],
    // gentune validates files at upload, so a job never sits in 'validating_files'.
    status: job.state,
    validation_file: job.spec.validationDatasetId ?? null,
    training_file: 'datasetId' in training ? training.datasetId : null,
    hyperparameters: hp,
    trained_tokens: job.metrics?.tokens ?? null,
    error: job.state === 'failed' ? { code: 'job_failed', message: job.error ?? 'the job failed', param: null } : null,
    seed: job.spec.hyperparameters.seed ?? DEFAULT_SEED,
    estimated_finish: null,
    integrations: null,
    method: { type: 'supervised' as const, supervised: { hyperparameters: hp } },
    metadata: null,
    user_provided_suffix: job.spec.adapter,
    /** gentune's extension: the settings it trains with, and progress in optimizer steps. */
    gentune: { ...gentuneSettings(job.spec), step: job.step, total_steps: job.totalSteps },
  };
}

/** One entry of GET /v1/fine_tuning/jobs/{id}/events. */
export interface OpenAiJobEvent {
  object: 'fine_tuning.job.event';
  /** `ftevent-<job id>-<sequence>`: the `after` cursor. */
  id: string;
  created_at: number;
  level: 'info' | 'warn' | 'error';
  message: string;
  type: 'message' | 'metrics';
  data: Record<string, unknown>;
}

/** The event id of sequence `n` of a job's log. */
export function eventId(jobId: string, sequence: number): string {
  return `ftevent-${jobId}-${sequence}`;
}

/** The sequence an event id names, or undefined when it is not one of `jobId`'s. */
export function eventSequence(jobId: string, id: string): number | undefined {
  const prefix = `ftevent-${jobId}-`;
  if (!id.startsWith(prefix) || !/^\d{1,9}$/.test(id.slice(prefix.length))) return undefined;
  return Number(id.slice(prefix.length));
}

const fixed = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

/** Engine event -> OpenAI event: progress and evaluation as `metrics` (OpenAI's names: train_loss, valid_loss), the rest as messages. */
export function eventObject(e: JobEvent): OpenAiJobEvent {
  const base = { object: 'fine_tuning.job.event' as const, id: eventId(e.jobId, e.sequence), created_at: seconds(e.timeMs)! };
  const message = (text: string, data: Record<string, unknown> = {}, level: OpenAiJobEvent['level'] = 'info'): OpenAiJobEvent => ({ ...base, level, message: text, type: 'message', data });
  switch (e.type) {
    case 'queued':
      return message(`Job queued (position ${e.position})`, { position: e.position });
    case 'started':
      return message(
        `${e.resumedFromStep === undefined ? 'Training started' : `Training resumed from step ${e.resumedFromStep}`}: ${e.totalSteps} steps, ${e.numTrainExamples} training and ${e.numValidationExamples} validation examples, ${e.trainableParameters} trainable parameters`,
        { total_steps: e.totalSteps, num_train_examples: e.numTrainExamples, num_validation_examples: e.numValidationExamples, trainable_parameters: e.trainableParameters },
      );
    case 'progress':
      return {
        ...base, level: 'info', type: 'metrics', message: `Step ${e.step}/${e.totalSteps}: training loss=${fixed(e.loss)}`,
        data: { step: e.step, total_steps: e.totalSteps, epoch: e.epoch, train_loss: e.loss, learning_rate: e.learningRate, grad_norm: e.gradNorm, tokens_per_second: e.tokensPerSecond, eta_seconds: e.etaSeconds },
      };
    case 'evaluation':
      return { ...base, level: 'info', type: 'metrics', message: `Step ${e.step}: validation loss=${fixed(e.evalLoss)}`, data: { step: e.step, valid_loss: e.evalLoss, perplexity: e.perplexity } };
    case 'checkpoint':
      return message(`Saved a resume point at step ${e.step}`, { step: e.step });
    case 'succeeded':
      return message(`New fine-tuned model created: ${e.adapter}@${e.version}. The job has successfully completed`, {
        fine_tuned_model: `${e.adapter}@${e.version}`, train_loss: e.metrics.trainLoss, valid_loss: e.metrics.evalLoss ?? null, steps: e.metrics.steps, trained_tokens: e.metrics.tokens, train_seconds: e.metrics.trainSeconds,
      });
    case 'failed':
      return message(`The job failed: ${e.reason}`, {}, 'error');
    case 'cancelled':
      return message('The job was cancelled');
  }
}

/** The checkpoints of a job (see the file comment): its published adapter version, if it succeeded. */
export function checkpointObjects(job: JobInfo) {
  const model = fineTunedModel(job);
  if (model === null) return [];
  const m = job.metrics;
  return [{
    object: 'fine_tuning.job.checkpoint' as const,
    id: `ftckpt-${job.id}-${job.adapterVersion}`,
    created_at: seconds(job.finishedAtMs ?? job.createdAtMs)!,
    fine_tuned_model_checkpoint: model,
    step_number: m?.steps ?? job.step,
    metrics: { step: m?.steps ?? job.step, train_loss: m?.trainLoss ?? job.loss ?? null, valid_loss: m?.evalLoss ?? null, full_valid_loss: m?.evalLoss ?? null },
    fine_tuning_job_id: job.id,
  }];
}
