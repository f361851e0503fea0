/**
 * gentune in five minutes: fine-tunes an adapter on a bundled task with a
 * progress bar, evaluates the base model against it on the held-out split,
 * and streams generations from both side by side.
 *
 *   npm run demo                       # starts a server on a free port with a temp data dir
 *   npm run demo -- --addr host:port   # uses a running server instead
 *   npm run demo -- --task number-words  # en-fr (default), number-words, wordnet-definitions, reverse-words
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { GentuneClient } from '../src/client/gentune-client.js';
import { renderJobEvents } from '../src/cli/job-progress.js';
import { Metric } from '../src/gen/gentune/v1/evaluate.js';
import { DatasetFormat } from '../src/gen/gentune/v1/datasets.js';

const TASKS: Record<string, { metric: Metric; metricName: string; key: 'exactMatch' | 'bleu' | 'rougeL' }> = {
  'number-words': { metric: Metric.METRIC_EXACT_MATCH, metricName: 'exact match', key: 'exactMatch' },
  'reverse-words': { metric: Metric.METRIC_EXACT_MATCH, metricName: 'exact match', key: 'exactMatch' },
  'en-fr': { metric: Metric.METRIC_BLEU, metricName: 'BLEU', key: 'bleu' },
  'wordnet-definitions': { metric: Metric.METRIC_ROUGE_L, metricName: 'ROUGE-L', key: 'rougeL' },
};

const opts = new Command()
  .option('--addr <host:port>', 'a running gentune server (default: start one)')
  .option('--task <name>', Object.keys(TASKS).join(' | '), 'en-fr')
  .option('--steps <n>', 'fine-tune steps', '250')
  .option('--eval-examples <n>', 'held-out examples to score', '100')
  .option('--adapter <name>', 'adapter name', 'demo')
  .parse()
  .opts();

const task = TASKS[opts.task as string];
if (!task) throw new Error(`--task must be one of ${Object.keys(TASKS).join(', ')}, got ${opts.task}`);
const dir = join('datasets', opts.task as string);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let server: ChildProcess | undefined;
let dataDir: string | undefined;
let addr = opts.addr as string | undefined;
if (!addr) {
  const port = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'gentune-demo-'));
  addr = `127.0.0.1:${port}`;
  console.log(`starting gentune on ${addr} (data dir ${dataDir}) ...`);
  server = spawn(process.execPath, ['bin/gentune.js', 'serve', '--port', String(port), '--metrics-port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'inherit'] });
}
const client = new GentuneClient(addr);
try {
  await client.waitUntilServing(120_000);
  const info = await client.getServerInfo();
  console.log(`model ${info.model?.name} (${info.model?.numParameters} parameters) on ${info.backend}\n`);

  const upload = (split: string) =>
    client.uploadDataset({ name: `${opts.task}-${split}`, format: DatasetFormat.DATASET_FORMAT_PROMPT_COMPLETION }, readFileSync(join(dir, `${split}.jsonl`)));
  const [train, validation] = [await upload('train'), await upload('validation')];
  console.log(`uploaded ${train.numExamples} training and ${validation.numExamples} validation examples`);

  const t0 = Date.now();
  const code = await renderJobEvents(
    client.fineTune({
      adapter: opts.adapter,
      datasetId: train.id,
      validationDatasetId: validation.id,
      method: { $case: 'lora', value: { r: 16, loraAlpha: 32, loraDropout: 0, targetModules: ['c_attn', 'attn.c_proj', 'c_fc', 'mlp.c_proj'] } },
      hyperparameters: { maxSteps: Number(opts.steps), batchSize: 16, learningRate: 3e-3, warmupSteps: 20, evalIntervalSteps: 100, seed: '1' },
    }),
    {},
  );
  if (code !== 0) throw new Error('fine-tune did not succeed');
  console.log(`fine-tuned in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);

  const test = readFileSync(join(dir, 'test.jsonl'), 'utf8').trim().split('\n').slice(0, Number(opts.evalExamples)).map((l) => JSON.parse(l) as { prompt: string; completion: string });
  const evaluation = await client.evaluate({
    examples: test.map((e) => ({ prompt: e.prompt, completion: e.completion })),
    adapters: [opts.adapter],
    includeBaseModel: true,
    metrics: [Metric.METRIC_LOSS, Metric.METRIC_PERPLEXITY, task.metric],
    generation: { maxNewTokens: 32, temperature: 0 },
    includeExamples: true,
  });
  console.log(`held-out test split, ${evaluation.numExamples} examples:`);
  console.log(`${'model'.padEnd(12)} ${'loss'.padStart(8)} ${'perplexity'.padStart(11)} ${task.metricName.padStart(12)}`);
  for (const r of evaluation.results) {
    const m = r.metrics!;
    console.log(`${(r.adapter || 'base').padEnd(12)} ${m.loss!.toFixed(3).padStart(8)} ${m.perplexity!.toFixed(2).padStart(11)} ${m[task.key]!.toFixed(3).padStart(12)}`);
  }

  console.log('\nside by side (greedy):');
  for (const e of test.slice(0, 4)) {
    const [base, tuned] = await Promise.all(
      ['', opts.adapter as string].map((adapter) => client.generateText({ prompt: e.prompt, adapter, sampling: { maxNewTokens: 24, temperature: 0, stop: ['\n'] } })),
    );
    console.log(`prompt    ${JSON.stringify(e.prompt)}\n  expected ${JSON.stringify(e.completion)}\n  base     ${JSON.stringify(base.text)}\n  adapter  ${JSON.stringify(tuned.text)}`);
  }
} finally {
  client.close();
  if (server) {
    server.kill('SIGTERM');
    await new Promise((r) => server!.once('exit', r));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
