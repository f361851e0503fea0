/**
 * `gentune evaluate`: a table of metrics, base model vs adapters (the base
 * row unless --no-base), with progress on stderr while the server works
 * (EvaluateStream; a server without it gets the unary Evaluate).
 */
import { Command, Option } from 'commander';
import { status as Code } from '@grpc/grpc-js';
import type { GentuneClient } from '../client/gentune-client.js';
import { type EvaluateRequest, EvaluateResponse, Metric, type MetricValues } from '../gen/gentune/v1/evaluate.js';
import type { DeepPartial } from '../gen/gentune/v1/datasets.js';
import { resolveDatasetId } from './dataset-ref.js';
import { followEvaluation } from './evaluate-progress.js';
import { clientOptions, fmt, intArg, listArg, printJson, readExamples, table, withClient, type ClientOptions } from './output.js';

/** CLI metric name -> proto enum and MetricValues key. */
const METRICS: Record<string, [Metric, keyof MetricValues]> = {
  loss: [Metric.METRIC_LOSS, 'loss'],
  perplexity: [Metric.METRIC_PERPLEXITY, 'perplexity'],
  token_accuracy: [Metric.METRIC_TOKEN_ACCURACY, 'tokenAccuracy'],
  bleu: [Metric.METRIC_BLEU, 'bleu'],
  rouge1: [Metric.METRIC_ROUGE1, 'rouge1'],
  rouge2: [Metric.METRIC_ROUGE2, 'rouge2'],
  rougeL: [Metric.METRIC_ROUGE_L, 'rougeL'],
  exact_match: [Metric.METRIC_EXACT_MATCH, 'exactMatch'],
  chrf: [Metric.METRIC_CHRF, 'chrf'],
  'chrf++': [Metric.METRIC_CHRF_PLUS_PLUS, 'chrfPlusPlus'],
};
const DEFAULT_METRICS = ['loss', 'perplexity', 'token_accuracy'];

interface EvaluateOptions extends ClientOptions {
  dataset?: string;
  file?: string;
  adapters?: string[];
  base?: boolean;
  metrics?: string[];
  maxExamples?: number;
  maxNewTokens?: number;
  maxSeqLen?: number;
  examples?: boolean;
}

/** Rows: one per model; columns: the requested metrics. */
export function evaluationTable(res: EvaluateResponse, metrics: string[]): string {
  const rows = res.results.map((r) => [r.adapter || 'base', ...metrics.map((m) => fmt(r.metrics?.[METRICS[m]![1]])), fmt(r.evalSeconds)]);
  return table(['MODEL', ...metrics.map((m) => m.toUpperCase()), 'SECONDS'], rows);
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
    .option('--metrics <list>', `comma-separated: ${Object.keys(METRICS).join(', ')}`, listArg)
    .addOption(new Option('--max-examples <n>', 'only the first N examples').argParser(intArg('--max-examples', 1)))
    .addOption(new Option('--max-new-tokens <n>', 'generation length for bleu/chrf/rouge/exact_match').argParser(intArg('--max-new-tokens', 1)))
    .addOption(new Option('--max-seq-len <n>', 'truncate sequences to N tokens').argParser(intArg('--max-seq-len', 1)))
    .option('--examples', 'print per-example rows (with --json)');
  return clientOptions(cmd).action(async (opts: EvaluateOptions) => {
    await withClient(opts, async (client) => {
      if ((opts.dataset === undefined) === (opts.file === undefined)) throw new Error('give exactly one of --dataset and --file');
      const metrics = opts.metrics ?? DEFAULT_METRICS;
      const unknown = metrics.filter((m) => !(m in METRICS));
      if (unknown.length > 0) throw new Error(`\`--metrics\` must be among ${Object.keys(METRICS).join(', ')}, got ${JSON.stringify(unknown.join(','))}`);
      const res = await evaluateWithProgress(
        client,
        {
          datasetId: opts.dataset === undefined ? '' : await resolveDatasetId(client, opts.dataset, opts.timeout),
          examples: opts.file ? readExamples(opts.file) : [],
          adapters: opts.adapters ?? [],
          // --base and --no-base: undefined when neither was given, and the base row is the default.
          includeBaseModel: opts.base ?? true,
          metrics: metrics.map((m) => METRICS[m]![0]),
          generation: { maxNewTokens: opts.maxNewTokens, stop: [] },
          maxExamples: opts.maxExamples,
          maxSeqLen: opts.maxSeqLen,
          includeExamples: opts.examples ?? false,
        },
        { timeoutMs: opts.timeout ?? 3_600_000, json: opts.json },
      );
      if (opts.json) printJson(EvaluateResponse.toJSON(res));
      else process.stdout.write(`${res.numExamples} examples, ${res.numTokens} target tokens\n` + evaluationTable(res, metrics));
    });
  });
}
