/** `gentune finetune` and `gentune jobs list|get|watch|cancel`. */
import { basename } from 'node:path';
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { FineTuneJob, type FineTuneRequest, JobState, LrScheduler } from '../gen/gentune/v1/fine_tune.js';
import type { DeepPartial } from '../gen/gentune/v1/datasets.js';
import { resolveDatasetId } from './dataset-ref.js';
import { renderJobEvents } from './job-progress.js';
import { clientOptions, fmt, intArg, listArg, numArg, printProto, table, withClient, type ClientOptions } from './output.js';

interface FineTuneOptions extends ClientOptions {
  adapter: string;
  dataset?: string;
  file?: string;
  validationDataset?: string;
  baseModel?: string;
  method: 'lora' | 'last-layers';
  r?: number;
  loraAlpha?: number;
  loraDropout?: number;
  targetModules?: string[];
  numLayers?: number;
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  gradAccum?: number;
  learningRate?: number;
  warmupSteps?: number;
  lrScheduler?: 'cosine' | 'linear' | 'constant';
  weightDecay?: number;
  maxSeqLen?: number;
  evalInterval?: number;
  earlyStoppingPatience?: number;
  seed?: number;
  completionOnlyLoss: boolean;
  validationSplit?: number;
  maxGradNorm?: number;
  detach?: boolean;
}

const SCHEDULERS = { cosine: LrScheduler.LR_SCHEDULER_COSINE, linear: LrScheduler.LR_SCHEDULER_LINEAR, constant: LrScheduler.LR_SCHEDULER_CONSTANT };
const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;

/** The FineTuneRequest the flags describe (dataset id already resolved). */
function buildRequest(o: FineTuneOptions, datasetId: string): DeepPartial<FineTuneRequest> {
  return {
    adapter: o.adapter,
    baseModel: o.baseModel ?? '',
    datasetId,
    validationDatasetId: o.validationDataset ?? '',
    method:
      o.method === 'last-layers'
        ? { $case: 'lastLayers', value: { numLayers: o.numLayers ?? 1 } }
        : { $case: 'lora', value: { r: o.r, loraAlpha: o.loraAlpha, loraDropout: o.loraDropout, targetModules: o.targetModules ?? [] } },
    hyperparameters: {
      epochs: o.epochs,
      maxSteps: o.maxSteps,
      batchSize: o.batchSize,
      gradientAccumulationSteps: o.gradAccum,
      learningRate: o.learningRate,
      warmupSteps: o.warmupSteps,
      lrScheduler: o.lrScheduler ? SCHEDULERS[o.lrScheduler] : undefined,
      weightDecay: o.weightDecay,
      maxSeqLen: o.maxSeqLen,
      evalIntervalSteps: o.evalInterval,
      earlyStoppingPatience: o.earlyStoppingPatience,
      seed: o.seed === undefined ? undefined : String(o.seed),
      completionOnlyLoss: o.completionOnlyLoss,
      validationSplit: o.validationSplit,
      maxGradNorm: o.maxGradNorm,
    },
  };
}

export function fineTuneCommand(): Command {
  const int = (flag: string, desc: string, min = 0) => new Option(`${flag} <n>`, desc).argParser(intArg(flag, min));
  const num = (flag: string, desc: string) => new Option(`${flag} <x>`, desc).argParser(numArg(flag));
  const cmd = new Command('finetune')
    .description('fine-tune an adapter (SFT) and follow the job with a progress bar')
    .requiredOption('--adapter <name>', 'name of the adapter to produce')
    .option('--dataset <id|name>', 'an uploaded dataset, by id or name (the newest of that name)')
    .option('--file <path.jsonl>', 'upload this JSONL file first and train on it')
    .option('--validation-dataset <id>', 'id of an uploaded validation dataset')
    .option('--base-model <name>', 'must match the served model (default: it)')
    .addOption(new Option('--method <method>', 'what to train').choices(['lora', 'last-layers']).default('lora'))
    .addOption(int('--r', 'LoRA rank', 1))
    .addOption(num('--lora-alpha', 'LoRA alpha'))
    .addOption(num('--lora-dropout', 'LoRA dropout'))
    .option('--target-modules <list>', 'LoRA modules, comma-separated (c_attn,c_proj,c_fc,...)', listArg)
    .addOption(int('--num-layers', 'top blocks to train (last-layers)', 1))
    .addOption(int('--epochs', 'passes over the data', 1))
    .addOption(int('--max-steps', 'optimizer steps (overrides --epochs)', 1))
    .addOption(int('--batch-size', 'sequences per micro-batch', 1))
    .addOption(int('--grad-accum', 'micro-batches per optimizer step', 1))
    .addOption(num('--learning-rate', 'peak learning rate'))
    .addOption(int('--warmup-steps', 'linear warmup steps'))
    .addOption(new Option('--lr-scheduler <name>', 'schedule after warmup').choices(Object.keys(SCHEDULERS)))
    .addOption(num('--weight-decay', 'AdamW weight decay'))
    .addOption(int('--max-seq-len', 'truncate sequences to this many tokens', 1))
    .addOption(int('--eval-interval', 'evaluate every N steps (0 = at the end)'))
    .addOption(int('--early-stopping-patience', 'evaluations without improvement before stopping'))
    .addOption(int('--seed', 'random seed'))
    .option('--no-completion-only-loss', 'train on prompt tokens too')
    .addOption(num('--validation-split', 'fraction held out for validation (0..0.5)'))
    .addOption(num('--max-grad-norm', 'gradient clipping norm (0 = off)'))
    .option('--detach', 'print the job id and return without following it');
  return clientOptions(cmd).action(async (opts: FineTuneOptions) => {
    await withClient(opts, async (client) => {
      if ((opts.dataset === undefined) === (opts.file === undefined)) throw new Error('give exactly one of --dataset and --file');
      let datasetId = opts.dataset === undefined ? '' : await resolveDatasetId(client, opts.dataset, opts.timeout);
      if (opts.file) {
        const ds = await client.uploadDataset({ name: basename(opts.file) }, readFileSync(opts.file), { timeoutMs: opts.timeout });
        if (!opts.json) process.stdout.write(`uploaded ${opts.file} as dataset ${ds.id} (${ds.numExamples} examples)\n`);
        datasetId = ds.id;
      }
      return renderJobEvents(client.fineTune(buildRequest(opts, datasetId)), { ...opts, announceOnInterrupt: true });
    });
  });
}

function stateName(state: JobState): string {
  return JobState[state]?.replace('JOB_STATE_', '').toLowerCase() ?? String(state);
}

/** `jobs get` without --json: one "field: value" line each, the names `jobs list` uses for its columns. */
function describeJob(j: FineTuneJob): string {
  const m = j.metrics;
  const fields: [string, string][] = [
    ['id', j.id],
    ['state', stateName(j.state)],
    ['adapter', (j.request?.adapter ?? '') + (j.adapterVersion ? `@${j.adapterVersion}` : '')],
    ['dataset', j.request?.datasetId || '-'],
    ['step', `${j.step}/${j.totalSteps}`],
    ['loss', fmt(j.loss)],
    ['created', j.createdAt?.toISOString() ?? '-'],
    ['started', j.startedAt?.toISOString() ?? '-'],
    ['finished', j.finishedAt?.toISOString() ?? '-'],
  ];
  if (m) fields.push(['metrics', `train loss ${fmt(m.trainLoss)}, eval loss ${fmt(m.evalLoss)}, ${m.steps} steps, ${fmt(m.trainSeconds)} s`]);
  if (j.error) fields.push(['error', j.error]);
  const width = Math.max(...fields.map(([k]) => k.length)) + 1;
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}\n`).join('');
}

function jobRow(j: FineTuneJob): string[] {
  return [
    j.id,
    stateName(j.state),
    j.request?.adapter + (j.adapterVersion ? `@${j.adapterVersion}` : ''),
    `${j.step}/${j.totalSteps}`,
    fmt(j.loss),
    j.createdAt?.toISOString() ?? '-',
  ];
}

export function jobsCommand(): Command {
  const jobs = new Command('jobs').description('fine-tune jobs');
  jobs.addCommand(
    clientOptions(
      new Command('list')
        .description('list jobs, newest first')
        .addOption(new Option('--state <state>', 'only jobs in this state').choices(STATES))
        .option('--adapter <name>', 'only jobs producing this adapter')
        .addOption(new Option('--limit <n>', 'at most this many').argParser(intArg('--limit', 1, 1000))),
    ).action(async (opts: ClientOptions & { state?: (typeof STATES)[number]; adapter?: string; limit?: number }) => {
      await withClient(opts, async (client) => {
        const state = opts.state ? JobState[`JOB_STATE_${opts.state.toUpperCase()}` as keyof typeof JobState] : 0;
        const list = await client.listFineTuneJobs({ state, adapter: opts.adapter ?? '', limit: opts.limit });
        if (opts.json) list.forEach((j) => printProto(FineTuneJob, 'gentune.v1.FineTuneJob', j));
        else process.stdout.write(table(['ID', 'STATE', 'ADAPTER', 'STEP', 'LOSS', 'CREATED'], list.map(jobRow)));
      });
    }),
  );
  jobs.addCommand(
    clientOptions(new Command('get').description('show one job').argument('<job-id>')).action(async (id: string, opts: ClientOptions) => {
      await withClient(opts, async (client) => {
        const job = await client.getFineTuneJob(id);
        if (opts.json) printProto(FineTuneJob, 'gentune.v1.FineTuneJob', job);
        else process.stdout.write(describeJob(job));
      });
    }),
  );
  jobs.addCommand(
    clientOptions(
      new Command('watch')
        .description("follow a job's events (its history, then live)")
        .argument('<job-id>')
        .addOption(new Option('--from <sequence>', 'replay from this event').argParser(intArg('--from', 0))),
    ).action(async (id: string, opts: ClientOptions & { from?: number }) => {
      await withClient(opts, (client) => renderJobEvents(client.watchFineTune(id, opts.from ?? 0), opts));
    }),
  );
  jobs.addCommand(
    clientOptions(new Command('cancel').description('cancel a queued or running job').argument('<job-id>')).action(
      async (id: string, opts: ClientOptions) => {
        await withClient(opts, async (client) => {
          const job = await client.cancelFineTune(id);
          if (opts.json) printProto(FineTuneJob, 'gentune.v1.FineTuneJob', job);
          else process.stdout.write(`job ${job.id} cancelled\n`);
        });
      },
    ),
  );
  return jobs;
}
