/**
 * How late one replica sees what another wrote to the shared data dir.
 *
 *   npx tsx bench/replica-visibility.ts [--samples 40] [--poll-ms 250] [--out bench/results/replica-visibility.json]
 *
 * Starts two real server processes (tests/integration/helpers/serve-fixture.ts,
 * the fixture model) with `--role serve` (so no job trains and the machine
 * stays quiet) on one data dir, then, `--samples` times each: uploads a
 * dataset to A and times until B's ListDatasets has it; submits a job to A
 * and times until B's ListFineTuneJobs has it. The reader is polled every
 * 2 ms; each delay is measured from the writer's reply. Prints p50/p99/max
 * per kind and writes them as JSON.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeFixtureModel, removeFixtureModel } from '../tests/integration/helpers/fixture-model.js';
import { startReplica, stopReplicas } from '../tests/integration/helpers/replica-set.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '40' }, 'poll-ms': { type: 'string', default: '250' }, out: { type: 'string', default: 'bench/results/replica-visibility.json' } } });
const samples = Number(values.samples);
const env = { GENTUNE_ROLE: 'serve', GENTUNE_STORE_POLL_MS: values['poll-ms']!, GENTUNE_MAX_QUEUED_JOBS: String(samples + 10) };

const model = await makeFixtureModel();
const dataDir = mkdtempSync(join(tmpdir(), 'gentune-visibility-'));
const [a, b] = await Promise.all([startReplica(model, dataDir, env), startReplica(model, dataDir, env)]);

async function until(check: () => Promise<boolean>, from: number): Promise<number> {
  for (;;) {
    if (await check()) return performance.now() - from;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  return { n: s.length, p50Ms: Math.round(at(50)), p99Ms: Math.round(at(99)), maxMs: Math.round(s.at(-1)!) };
};

try {
  const datasets: number[] = [];
  const jobs: number[] = [];
  for (let i = 0; i < samples; i++) {
    const ds = await a.client.uploadDataset({ name: `v${i}` }, Buffer.from('{"prompt":"Q","completion":" A"}\n'));
    const uploaded = performance.now();
    datasets.push(await until(async () => (await b.client.listDatasets()).some((d) => d.id === ds.id), uploaded));
    let jobId = '';
    for await (const e of a.client.fineTune({ adapter: 'v', datasetId: ds.id, hyperparameters: { maxSteps: 1 } })) {
      jobId = e.jobId;
      break;
    }
    const submitted = performance.now();
    jobs.push(await until(async () => (await b.client.listFineTuneJobs({ limit: 1000 })).some((j) => j.id === jobId), submitted));
  }
  const result = { storePollMs: Number(values['poll-ms']), loadAverage: loadavg()[0], datasetInListDatasets: stats(datasets), jobInListFineTuneJobs: stats(jobs) };
  console.log(JSON.stringify(result, null, 2));
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, JSON.stringify(result, null, 2) + '\n');
} finally {
  await stopReplicas([a, b]);
  removeFixtureModel(model);
  rmSync(dataDir, { recursive: true, force: true });
}
