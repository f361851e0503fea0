/**
 * `gentune evaluate`: a table of metrics, base model vs adapters (the base
 * row unless --no-base), with progress on stderr while the server works
 * (EvaluateStream; a server without it gets the unary Evaluate).
 */
import { Command, Option } from 'commander';
import { status as Code } from '@grpc/grpc-js';
import type { GentuneClient } from '../client/gentune-client.js';
import { type EvaluateRequest, EvaluateResponse } from '../gen/gentune/v1/evaluate.js';
import type { DeepPartial } from '../gen/gentune/v1/datasets.js';
import { resolveDatasetId } from './dataset-ref.js';
import { followEvaluation } from './evaluate-progress.js';
import { METRIC_NAMES, type MetricName, metricsArg } from './metric-names.js';
import { clientOptions, fmt, intArg, listArg, printProto, readExamples, table, withClient, type ClientOptions } from './output.js';

const DEFAULT_METRICS = metricsArg('loss,perplexity,token_accuracy');

interface EvaluateOptions extends ClientOptions {
  dataset?: string;
  file?: string;
  adapters?: string[];
  base?: boolean;
  metrics?: MetricName[];
  maxExamples?: number;
  maxNewTokens?: number;
  maxSeqLen?: number;
  examples?: boolean;
}

/** Rows: one per model; columns: the requested metrics, headed by their CLI names in capitals. */
export function evaluationTable(res: EvaluateResponse, metrics: readonly MetricName[]): string {
  const rows = res.results.map((r) => [r.adapter || 'base', ...metrics.map((m) => fmt(r.metrics?.[m.key])), fmt(r.evalSeconds)]);
  return table(['MODEL', ...metrics.map((m) => m.name.toUpperCase()), 'SECONDS'], rows);
}

/**
 * Runs the evaluation over EvaluateStream with progress on stderr (none with
 * --json); falls back to unary Evaluate when the server does not know
 * EvaluateStream (UNIMPLEMENTED before any event).
 */
async function evaluateWithProgress(
  client: GentuneClient,
  req: DeepPartial<EvaluateRequest>,
  opts: { timeoutMs: number; json?: boolean },
): Promise<EvaluateResponse> {
  let heard = false;
  const events = client.evaluateStream(req, { timeoutMs: opts.timeoutMs });
  const noted = (async function* () {
    for await (const e of events) {
      heard = true;
      yield e;
    }
  })();
  try {
    return await followEvaluation(noted, { quiet: opts.json });
  } catch (err) {
    if (heard || (err as { code?: unknown }).code !== Code.UNIMPLEMENTED) throw err;
    return client.evaluate(req, { timeoutMs: opts.timeoutMs });
  }
}

export function evaluateCommand(): Command {
  const cmd = new Command('evaluate')
    .description('score the base model and/or adapters on a dataset')
    .option('--dataset <id|name>', 'an uploaded dataset, by id or name (the newest of that name)')
    .option('--file <path.jsonl>', 'a local JSONL file, sent inline')
    .option('--adapters <list>', 'adapters to compare, comma-separated (name or name@version)', listArg)
    .option('--base', 'evaluate the base model too (the default; kept for scripts)')
    .option('--no-base', 'leave the base model out (it is always scored without --adapters)')
    .addOption(
      new Option('--metrics <list>', `comma-separated: ${METRIC_NAMES.map((m) => m.name).join(', ')} (or enum names: METRIC_ROUGE_L)`).argParser(metricsArg),
    )
    .addOption(new Option('--max-examples <n>', 'only the first N examples').argParser(intArg('--max-examples', 1)))
    .addOption(new Option('--max-new-tokens <n>', 'generation length for bleu/chrf/rouge/meteor/exact_match').argParser(intArg('--max-new-tokens', 1)))
    .addOption(new Option('--max-seq-len <n>', 'truncate sequences to N tokens').argParser(intArg('--max-seq-len', 1)))
    .option('--examples', 'print per-example rows (with --json)');
  return clientOptions(cmd).action(async (opts: EvaluateOptions) => {
    await withClient(opts, async (client) => {
      if ((opts.dataset === undefined) === (opts.file === undefined)) throw new Error('give exactly one of --dataset and --file');
      const metrics = opts.metrics ?? DEFAULT_METRICS;
      const res = await evaluateWithProgress(
        client,
        {
          datasetId: opts.dataset === undefined ? '' : await resolveDatasetId(client, opts.dataset, opts.timeout),
          examples: opts.file ? readExamples(opts.file) : [],
          adapters: opts.adapters ?? [],
          // --base and --no-base: undefined when neither was given, and the base row is the default.
          includeBaseModel: opts.base ?? true,
          metrics: metrics.map((m) => m.metric),
          generation: { maxNewTokens: opts.maxNewTokens, stop: [] },
          maxExamples: opts.maxExamples,
          maxSeqLen: opts.maxSeqLen,
          includeExamples: opts.examples ?? false,
        },
        { timeoutMs: opts.timeout ?? 3_600_000, json: opts.json },
      );
      if (opts.json) printProto(EvaluateResponse, 'gentune.v1.EvaluateResponse', res);
      else process.stdout.write(`${res.numExamples} examples, ${res.numTokens} target tokens\n` + evaluationTable(res, metrics));
    });
  });
}
