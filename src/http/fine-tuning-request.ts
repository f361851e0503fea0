/**
 * POST /v1/fine_tuning/jobs bodies -> FineTuneSpec. The body's shape is
 * OpenAI's (zod, strict: an unknown parameter is a 400 naming it); the
 * values are then checked by the gRPC side's own rules
 * (src/server/fine-tune-codec.ts, one rule per field), so the two doors
 * accept exactly the same jobs. Those rules name proto fields (`epochs`,
 * `r`); {@link renameFields} rewrites the names into this body's paths
 * (`hyperparameters.n_epochs`, `gentune.r`) so the caller sees its own field.
 *
 * OpenAI's hyperparameters: `n_epochs`, `batch_size` and
 * `learning_rate_multiplier`, each a number or "auto" (= gentune's default).
 * The multiplier scales gentune's default learning rate for the method:
 * 1.0 = 2e-4 for LoRA, 5e-5 for last_layers (see defaultLearningRate).
 *
 * gentune's own settings go under the extension field `gentune` (the names
 * of the gRPC FineTuneRequest, snake_case, lr_scheduler as a word).
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { GentuneError, InvalidArgument, NotFound } from '../common/errors.js';
import type { FineTuneSpec } from '../engine/engine-api.js';
import { FineTuneRequest, LrScheduler } from '../gen/gentune/v1/fine_tune.js';
import { decodeFineTuneRequest } from '../server/fine-tune-codec.js';
import { checkRange } from '../server/validate.js';
import { defaultLearningRate } from '../training/train-hyperparameters.js';
import type { HttpDeps } from './http-call.js';
import { parseRequest } from './zod-request.js';

const auto = <T extends z.ZodType>(n: T) => z.union([z.literal('auto'), n]);

/** OpenAI's three hyperparameters, each a number or "auto". */
const OpenAiHyperparameters = z.strictObject({
  n_epochs: auto(z.number().int()).optional(),
  batch_size: auto(z.number().int()).optional(),
  learning_rate_multiplier: auto(z.number()).optional(),
});

/** The extension field: gentune's method and training settings (gRPC FineTuneRequest names). */
export const GentuneSettings = z.strictObject({
  method: z.enum(['lora', 'last_layers']).optional(),
  r: z.number().int().optional(),
  lora_alpha: z.number().optional(),
  lora_dropout: z.number().optional(),
  target_modules: z.array(z.string()).optional(),
  num_layers: z.number().int().optional(),
  max_steps: z.number().int().optional(),
  gradient_accumulation_steps: z.number().int().optional(),
  warmup_steps: z.number().int().optional(),
  lr_scheduler: z.enum(['cosine', 'linear', 'constant']).optional(),
  weight_decay: z.number().optional(),
  max_seq_len: z.number().int().optional(),
  eval_interval_steps: z.number().int().optional(),
  early_stopping_patience: z.number().int().optional(),
  completion_only_loss: z.boolean().optional(),
  validation_split: z.number().optional(),
  max_grad_norm: z.number().optional(),
});
export type GentuneSettings = z.output<typeof GentuneSettings>;

const CreateJob = z.strictObject({
  model: z.string(),
  training_file: z.string(),
  validation_file: z.string().nullable().optional(),
  hyperparameters: OpenAiHyperparameters.optional(),
  suffix: z.string().nullable().optional(),
  seed: z.number().int().min(0).nullable().optional(),
  method: z
    .strictObject({
      type: z.string(),
      supervised: z.strictObject({ hyperparameters: OpenAiHyperparameters.optional() }).optional(),
    })
    .optional(),
  // OpenAI's `metadata`: gentune stores no free-form job data, so only "none" is accepted.
  metadata: z.null().optional(),
  gentune: GentuneSettings.optional(),
});

const SCHEDULERS = { cosine: LrScheduler.LR_SCHEDULER_COSINE, linear: LrScheduler.LR_SCHEDULER_LINEAR, constant: LrScheduler.LR_SCHEDULER_CONSTANT } as const;

/** Proto field -> this body's path; `%` stands for where the hyperparameters were given. */
const FIELD_NAMES: Record<string, string> = {
  adapter: 'suffix',
  job_id: 'fine_tuning_job_id',
  dataset_id: 'training_file',
  validation_dataset_id: 'validation_file',
  epochs: '%.n_epochs',
  batch_size: '%.batch_size',
  learning_rate: '%.learning_rate_multiplier',
  seed: 'seed',
  ...Object.fromEntries(Object.keys(GentuneSettings.shape).filter((k) => k !== 'method').map((k) => [k, `gentune.${k}`])),
};

/**
 * Rewrites the backticked proto field names of a domain error's message into
 * the OpenAI body's paths ("`r` must be ..." -> "`gentune.r` must be ...").
 * @param hyperparameters where the caller put the hyperparameters.
 */
export function renameFields(err: unknown, hyperparameters: string): unknown {
  if (!(err instanceof GentuneError)) return err;
  const message = err.message.replace(/`([a-z_]+)((?:\[\d+\])?)`/g, (whole, name: string, index: string) => {
    const path = FIELD_NAMES[name];
    return path === undefined ? whole : `\`${path.replace('%', hyperparameters)}${index}\``;
  });
  if (message === err.message) return err;
  // Only the code matters from here on (http-error.ts maps codes).
  return new GentuneError(err.code, message, { cause: err });
}

/** A decoded request, with where the hyperparameters came from (for error names). */
export interface DecodedJobRequest {
  spec: FineTuneSpec;
  /** "hyperparameters" or "method.supervised.hyperparameters". */
  hyperparametersField: string;
}

/**
 * Validates a create-job body into a spec.
 * @throws InvalidArgument naming the field; NotFound naming `model` for another base model.
 */
export function decodeCreateJob(body: unknown, deps: HttpDeps): DecodedJobRequest {
  const req = parseRequest(CreateJob, body);
  const served = deps.engine.info().model.name;
  if (req.model !== served) throw new NotFound(`\`model\` ${JSON.stringify(req.model.slice(0, 80))}: gentune fine-tunes its served base model ${JSON.stringify(served)} only`);
  if (req.method !== undefined && req.method.type !== 'supervised') {
    throw new InvalidArgument(`\`method.type\` must be "supervised" (gentune trains with supervised fine-tuning only), got ${JSON.stringify(req.method.type.slice(0, 80))}`);
  }
  const nested = req.method?.supervised?.hyperparameters;
  if (nested !== undefined && req.hyperparameters !== undefined) {
    throw new InvalidArgument('set `hyperparameters` or `method.supervised.hyperparameters`, not both');
  }
  const hyperparametersField = nested !== undefined ? 'method.supervised.hyperparameters' : 'hyperparameters';
  const hp = nested ?? req.hyperparameters ?? {};
  const g = req.gentune ?? {};
  const method = g.method ?? 'lora';
  const number = <T>(v: T | 'auto' | undefined) => (v === 'auto' ? undefined : v);
  const multiplier = number(hp.learning_rate_multiplier);
  const baseLr = defaultLearningRate({ kind: method });
  // The rule on learning_rate is (0, 1]; here it reads in multiplier units.
  if (multiplier !== undefined) checkRange(`${hyperparametersField}.learning_rate_multiplier`, multiplier, { min: 0, minExclusive: true, max: 1 / baseLr });
  const methodSettings: Record<string, unknown> = method === 'lora' ? { r: g.r, lora_alpha: g.lora_alpha, lora_dropout: g.lora_dropout, target_modules: g.target_modules } : { num_layers: g.num_layers };
  for (const [k, v] of Object.entries(method === 'lora' ? { num_layers: g.num_layers } : { r: g.r, lora_alpha: g.lora_alpha, lora_dropout: g.lora_dropout, target_modules: g.target_modules })) {
    if (v !== undefined) throw new InvalidArgument(`\`gentune.${k}\` does not apply to \`gentune.method\` "${method}"`);
  }
  if (method === 'last_layers' && methodSettings.num_layers === undefined) throw new InvalidArgument('`gentune.num_layers` is required with `gentune.method` "last_layers"');
  const proto = FineTuneRequest.fromPartial({
    baseModel: served,
    adapter: req.suffix ?? `ft-${randomBytes(4).toString('hex')}`,
    datasetId: req.training_file,
    validationDatasetId: req.validation_file ?? '',
    method:
      method === 'lora'
        ? { $case: 'lora', value: { r: g.r, loraAlpha: g.lora_alpha, loraDropout: g.lora_dropout, targetModules: g.target_modules ?? [] } }
        : { $case: 'lastLayers', value: { numLayers: g.num_layers ?? 0 } },
    hyperparameters: {
      epochs: number(hp.n_epochs),
      batchSize: number(hp.batch_size),
      learningRate: multiplier === undefined ? undefined : multiplier * baseLr,
      maxSteps: g.max_steps,
      gradientAccumulationSteps: g.gradient_accumulation_steps,
      warmupSteps: g.warmup_steps,
      lrScheduler: g.lr_scheduler === undefined ? LrScheduler.LR_SCHEDULER_UNSPECIFIED : SCHEDULERS[g.lr_scheduler],
      weightDecay: g.weight_decay,
      maxSeqLen: g.max_seq_len,
      evalIntervalSteps: g.eval_interval_steps,
      earlyStoppingPatience: g.early_stopping_patience,
      seed: req.seed === undefined || req.seed === null ? undefined : String(req.seed),
      completionOnlyLoss: g.completion_only_loss,
      validationSplit: g.validation_split,
      maxGradNorm: g.max_grad_norm,
    },
  });
  try {
    return { spec: decodeFineTuneRequest(proto, deps), hyperparametersField };
  } catch (err) {
    throw renameFields(err, hyperparametersField);
  }
}
