/**
 * FineTuneRequest <-> FineTuneSpec, JobInfo -> FineTuneJob, JobEvent ->
 * FineTuneEvent. The request is validated here, one rule per field; ranges
 * are the ones documented in fine_tune.proto.
 */
import type {
  FineTuneMethod,
  FineTuneSpec,
  Hyperparameters as DomainHyperparameters,
  JobEvent,
  JobInfo,
  JobState as DomainJobState,
  LrScheduler as DomainLrScheduler,
} from '../engine/engine-api.js';
import {
  FineTuneEvent,
  FineTuneJob,
  FineTuneRequest,
  type Hyperparameters,
  JobState,
  LrScheduler,
} from '../gen/gentune/v1/fine_tune.js';
import { decodeDataSource, encodeDataSource, toDate } from './convert.js';
import type { RpcDeps } from './rpc.js';
import {
  checkAdapterName,
  checkEnum,
  checkId,
  checkItemsLimit,
  checkLimit,
  checkMaxLength,
  checkNoPath,
  checkPrintable,
  checkRange,
  checkRequires,
  checkUnique,
  parseSafeUint,
} from './validate.js';

const SCHEDULERS = new Map<number, DomainLrScheduler | undefined>([
  [LrScheduler.LR_SCHEDULER_UNSPECIFIED, undefined],
  [LrScheduler.LR_SCHEDULER_COSINE, 'cosine'],
  [LrScheduler.LR_SCHEDULER_LINEAR, 'linear'],
  [LrScheduler.LR_SCHEDULER_CONSTANT, 'constant'],
]);
const SCHEDULER_NAMES = 'LR_SCHEDULER_COSINE, LR_SCHEDULER_LINEAR, LR_SCHEDULER_CONSTANT';

/** JobState enum number -> domain state (UNSPECIFIED -> undefined = any). */
export const JOB_STATES = new Map<number, DomainJobState | undefined>([
  [JobState.JOB_STATE_UNSPECIFIED, undefined],
  [JobState.JOB_STATE_QUEUED, 'queued'],
  [JobState.JOB_STATE_RUNNING, 'running'],
  [JobState.JOB_STATE_SUCCEEDED, 'succeeded'],
  [JobState.JOB_STATE_FAILED, 'failed'],
  [JobState.JOB_STATE_CANCELLED, 'cancelled'],
]);
export const JOB_STATE_NAMES = 'JOB_STATE_QUEUED, JOB_STATE_RUNNING, JOB_STATE_SUCCEEDED, JOB_STATE_FAILED, JOB_STATE_CANCELLED';

const STATE_TO_PROTO: Record<DomainJobState, JobState> = {
  queued: JobState.JOB_STATE_QUEUED,
  running: JobState.JOB_STATE_RUNNING,
  succeeded: JobState.JOB_STATE_SUCCEEDED,
  failed: JobState.JOB_STATE_FAILED,
  cancelled: JobState.JOB_STATE_CANCELLED,
};

/** Validates the `method` oneof; absent means LoRA with its defaults. */
function decodeMethod(req: FineTuneRequest, nLayer: number): FineTuneMethod {
  const method = req.method;
  if (method?.$case === 'lastLayers') {
    const max = nLayer > 0 ? { max: nLayer } : {};
    return { kind: 'last_layers', numLayers: checkRange('num_layers', method.value.numLayers, { min: 1, ...max }) };
  }
  const lora = method?.value;
  const targets = lora?.targetModules ?? [];
  // Which names are allowed depends on the served model's family: the engine
  // checks them at submit (family-modules.ts targetNames, the one list).
  checkUnique('target_modules', targets);
  const opt = (field: string, v: number | undefined, bounds: Parameters<typeof checkRange>[2]) =>
    v === undefined ? undefined : checkRange(field, v, bounds);
  return {
    kind: 'lora',
    r: opt('r', lora?.r, { min: 1, max: 256 }),
    loraAlpha: opt('lora_alpha', lora?.loraAlpha, { min: 0, max: 1024, minExclusive: true }),
    loraDropout: opt('lora_dropout', lora?.loraDropout, { min: 0, max: 1, maxExclusive: true }),
    targetModules: targets,
  };
}

/** Validates hyperparameters; absent fields stay undefined (engine defaults). */
function decodeHyperparameters(h: Hyperparameters | undefined, deps: RpcDeps, hasValidationSet: boolean): DomainHyperparameters {
  const nPositions = deps.engine.info().model.nPositions;
  const opt = (field: string, v: number | undefined, bounds: Parameters<typeof checkRange>[2]) =>
    v === undefined ? undefined : checkRange(field, v, bounds);
  const out: DomainHyperparameters = {
    epochs: opt('epochs', h?.epochs, { min: 1, max: 1000 }),
    maxSteps: opt('max_steps', h?.maxSteps, { min: 1, max: 1_000_000 }),
    batchSize: h?.batchSize === undefined ? undefined : checkLimit('batch_size', checkRange('batch_size', h.batchSize, { min: 1 }), deps.config.limits, 'maxBatchSize'),
    gradientAccumulationSteps: opt('gradient_accumulation_steps', h?.gradientAccumulationSteps, { min: 1, max: 1024 }),
    learningRate: opt('learning_rate', h?.learningRate, { min: 0, max: 1, minExclusive: true }),
    warmupSteps: opt('warmup_steps', h?.warmupSteps, { min: 0, max: h?.maxSteps ?? 1_000_000 }),
    lrScheduler: checkEnum('lr_scheduler', h?.lrScheduler ?? 0, SCHEDULERS, SCHEDULER_NAMES),
    weightDecay: opt('weight_decay', h?.weightDecay, { min: 0, max: 1 }),
    maxSeqLen: opt('max_seq_len', h?.maxSeqLen, { min: 8, max: nPositions > 0 ? nPositions : 1_000_000 }),
    evalIntervalSteps: opt('eval_interval_steps', h?.evalIntervalSteps, { min: 0, max: 1_000_000 }),
    earlyStoppingPatience: opt('early_stopping_patience', h?.earlyStoppingPatience, { min: 0, max: 1000 }),
    seed: h?.seed === undefined ? undefined : parseSafeUint('seed', h.seed),
    completionOnlyLoss: h?.completionOnlyLoss,
    validationSplit: opt('validation_split', h?.validationSplit, { min: 0, max: 0.5 }),
    maxGradNorm: opt('max_grad_norm', h?.maxGradNorm, { min: 0, max: 1000 }),
  };
  if ((out.earlyStoppingPatience ?? 0) > 0) {
    const hasValidation = hasValidationSet || (out.validationSplit ?? 0) > 0;
    checkRequires('early_stopping_patience', out.earlyStoppingPatience, hasValidation, 'validation data (`validation_dataset_id` or `validation_split` > 0)');
  }
  return out;
}

/** Validates a FineTuneRequest into a spec. */
export function decodeFineTuneRequest(req: FineTuneRequest, deps: RpcDeps): FineTuneSpec {
  if (req.baseModel !== '') {
    checkMaxLength('base_model', req.baseModel, 128);
    checkNoPath('base_model', req.baseModel);
    checkPrintable('base_model', req.baseModel);
  }
  const adapter = checkAdapterName('adapter', req.adapter);
  checkItemsLimit('examples', req.examples, deps.config.limits, 'maxDatasetExamples', 'examples');
  const training = decodeDataSource(req.datasetId, req.examples);
  const validationDatasetId = req.validationDatasetId === '' ? undefined : checkId('validation_dataset_id', req.validationDatasetId);
  return {
    baseModel: req.baseModel,
    adapter,
    training,
    validationDatasetId,
    method: decodeMethod(req, deps.engine.info().model.nLayer),
    hyperparameters: decodeHyperparameters(req.hyperparameters, deps, validationDatasetId !== undefined),
  };
}

/** The inverse of {@link decodeFineTuneRequest}, to echo a job's request. */
export function encodeFineTuneSpec(spec: FineTuneSpec): FineTuneRequest {
  const h = spec.hyperparameters;
  const scheduler = [...SCHEDULERS].find(([, v]) => v === h.lrScheduler)?.[0] ?? 0;
  return FineTuneRequest.fromPartial({
    baseModel: spec.baseModel,
    adapter: spec.adapter,
    ...encodeDataSource(spec.training),
    validationDatasetId: spec.validationDatasetId ?? '',
    method:
      spec.method.kind === 'lora'
        ? {
            $case: 'lora',
            value: { r: spec.method.r, loraAlpha: spec.method.loraAlpha, loraDropout: spec.method.loraDropout, targetModules: spec.method.targetModules },
          }
        : { $case: 'lastLayers', value: { numLayers: spec.method.numLayers } },
    hyperparameters: { ...h, lrScheduler: scheduler, seed: h.seed === undefined ? undefined : String(h.seed) },
  });
}

/** Engine job -> proto FineTuneJob. */
export function encodeJob(job: JobInfo): FineTuneJob {
  return FineTuneJob.fromPartial({
    id: job.id,
    state: STATE_TO_PROTO[job.state],
    request: encodeFineTuneSpec(job.spec),
    createdAt: toDate(job.createdAtMs),
    startedAt: toDate(job.startedAtMs),
    finishedAt: toDate(job.finishedAtMs),
    step: job.step,
    totalSteps: job.totalSteps,
    loss: job.loss,
    adapterVersion: job.adapterVersion,
    error: job.error ?? '',
    metrics: job.metrics,
  });
}

/** The oneof payload of an engine event. */
function encodeEventBody(e: JobEvent): FineTuneEvent['event'] {
  switch (e.type) {
    case 'queued':
      return { $case: 'queued', value: { position: e.position } };
    case 'started': {
      const { totalSteps, numTrainExamples, numValidationExamples, trainableParameters, resumedFromStep } = e;
      return { $case: 'started', value: { totalSteps, numTrainExamples, numValidationExamples, trainableParameters, resumedFromStep } };
    }
    case 'progress': {
      const { step, totalSteps, epoch, loss, learningRate, gradNorm, tokensPerSecond, etaSeconds } = e;
      return {
        $case: 'progress',
        value: { step, totalSteps, epoch, loss, learningRate, gradNorm, tokensPerSecond, etaSeconds },
      };
    }
    case 'evaluation':
      return { $case: 'evaluation', value: { step: e.step, evalLoss: e.evalLoss, perplexity: e.perplexity } };
    case 'checkpoint':
      return { $case: 'checkpoint', value: { step: e.step } };
    case 'succeeded':
      return { $case: 'succeeded', value: { adapter: e.adapter, version: e.version, metrics: e.metrics } };
    case 'failed':
      return { $case: 'failed', value: { reason: e.reason } };
    case 'cancelled':
      return { $case: 'cancelled', value: {} };
  }
}

/** Engine event -> proto FineTuneEvent. */
export function encodeJobEvent(e: JobEvent): FineTuneEvent {
  return FineTuneEvent.fromPartial({ jobId: e.jobId, sequence: e.sequence, time: toDate(e.timeMs), event: encodeEventBody(e) });
}

/** True for succeeded / failed / cancelled: the last event of a job. */
export function isTerminal(e: JobEvent): boolean {
  return e.type === 'succeeded' || e.type === 'failed' || e.type === 'cancelled';
}
