/**
 * Faults (issue 9): the real server in a child process (serve-fixture.ts, as
 * `gentune serve` runs it) is killed with SIGKILL in the middle of a
 * fine-tune; the data directory is then given what a kill in the middle of
 * publishing an adapter or uploading a dataset leaves (hidden temporary
 * folders, partial files) and what corruption looks like (a truncated
 * safetensors, bad JSON in adapter_config.json, gentune.json, a dataset's
 * meta.json and a job's spec.json, a torn last line in a job log). A new
 * server on the same data directory starts, reports each bad file, shows
 * nothing half-written (a corrupt version is listed as broken with its
 * reason, issue 18), serves every earlier adapter as before, and resumes
 * the job from its checkpoint, to the adapter an uninterrupted run makes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GentuneClient } from '../../src/client/gentune-client.js';
import type { FineTuneEvent, FineTuneRequest } from '../../src/gen/gentune/v1/fine_tune.js';
import { JobState } from '../../src/gen/gentune/v1/fine_tune.js';
import { readSafetensors } from '../../src/model/checkpoint/safetensors.js';
import { longGeneration, makeFixtureModel, removeFixtureModel } from './helpers/fixture-model.js';
import { collect } from './helpers/harness.js';

const FIXTURE = fileURLToPath(new URL('./helpers/serve-fixture.ts', import.meta.url));
const JSONL = ['{"prompt":"Q: 1+1?","completion":" 2"}', '{"prompt":"Q: 2+2?","completion":" 4"}', '{"prompt":"Q: 3+3?","completion":" 6"}', '{"prompt":"Q: 4+4?","completion":" 8"}'].join('\n') + '\n';
/** How store-files.ts names a hidden entry's host. */
const HOST = hostname().replace(/[^A-Za-z0-9_-]/g, '_') || 'host';

interface LogLine {
  msg: string;
  level: number;
  file?: string;
  dir?: string;
  address?: string;
  [k: string]: unknown;
}

let model: string;
let dataDir: string;
before(async () => {
  model = await makeFixtureModel();
  dataDir = mkdtempSync(join(tmpdir(), 'gentune-faults-'));
});
after(() => {
  removeFixtureModel(model);
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts serve-fixture.ts on `dataDir`; resolves once it listens, with its log lines (kept up to date). */
async function startServe(env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, model, dataDir, '5000'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const logs: LogLine[] = [];
  const lines = createInterface({ input: child.stdout });
  const address = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as LogLine;
      logs.push(entry);
      if (entry.msg === 'gRPC server listening') resolve(entry.address!);
    });
    child.once('exit', (code) => reject(new Error(`serve exited early with ${code}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const client = new GentuneClient(address, { defaultTimeoutMs: 300_000 });
  await client.waitUntilServing(10_000, 20);
  return { child, client, logs, exited };
}

const request = (adapter: string, datasetId: string): Partial<FineTuneRequest> => ({
  adapter,
  datasetId,
  method: { $case: 'lora', value: { r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: [] } },
  hyperparameters: { maxSteps: 30, batchSize: 2, learningRate: 1e-2, warmupSteps: 2, seed: '5', lrScheduler: 0 },
});

function weights(adapter: string, version = 1): Promise<Map<string, Float32Array>> {
  return readSafetensors(join(dataDir, 'adapters', adapter, String(version), 'adapter_model.safetensors')).then(
    ({ tensors }) => new Map([...tensors].map(([k, t]) => [k, t.data])),
  );
}

/** A pid no process has: one that just exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

test('SIGKILL mid fine-tune and leftovers of a kill mid publish / upload, plus corrupt files: the restarted server skips and reports them, and the job resumes from its checkpoint', async () => {
  // First server: checkpoints after every step, so a kill finds one.
  const first = await startServe({ GENTUNE_CHECKPOINT_INTERVAL_MS: '0' });
  let datasetId: string;
  let keptOutput: number[];
  let cutId = '';
  let checkpointsSeen = 0;
  try {
    datasetId = (await first.client.uploadDataset({ name: 'qa' }, Buffer.from(JSONL))).id;
    const kept = await collect(first.client.fineTune({ ...request('kept', datasetId), hyperparameters: { maxSteps: 3, learningRate: 1e-2, seed: '1' } }));
    assert.equal(kept.at(-1)?.event?.$case, 'succeeded');
    keptOutput = (await first.client.generateText({ ...longGeneration(16), adapter: 'kept' })).tokenIds;

    try {
      for await (const e of first.client.fineTune(request('cut', datasetId))) {
        cutId = e.jobId;
        if (e.event?.$case === 'checkpoint' && ++checkpointsSeen === 3) first.child.kill('SIGKILL');
      }
    } catch {
      // The stream breaks with the process.
    }
    assert.equal(checkpointsSeen, 3, 'the job checkpointed before the kill');
    assert.equal(await first.exited, null, 'killed, not exited');
  } finally {
    first.client.close();
    first.child.kill('SIGKILL');
  }

  // What a kill mid-publish leaves: the hidden temporary version folder of the
  // adapter store, with a partial weights file in the PEFT writer's own hidden
  // folder inside it; mid-upload: a dataset's hidden temporary folder.
  const pid = deadPid();
  const adapters = join(dataDir, 'adapters');
  const keptV1 = join(adapters, 'kept', '1');
  const halfPublished = join(adapters, 'kept', `.tmp-${HOST}-${pid}-0123456789ab`);
  const writerTmp = join(adapters, 'kept', `..tmp-${HOST}-${pid}-0123456789ab.${pid}.ba9876543210.tmp`);
  mkdirSync(writerTmp, { recursive: true });
  const keptWeights = readFileSync(join(keptV1, 'adapter_model.safetensors'));
  writeFileSync(join(writerTmp, 'adapter_model.safetensors'), keptWeights.subarray(0, keptWeights.length >> 1));
  mkdirSync(halfPublished);
  writeFileSync(join(halfPublished, 'adapter_model.safetensors'), keptWeights.subarray(0, keptWeights.length >> 2));
  const uploadTmp = join(dataDir, 'datasets', `.tmp-${HOST}-${pid}-0123456789ab`);
  mkdirSync(uploadTmp);
  writeFileSync(join(uploadTmp, 'data.jsonl'), JSONL.slice(0, 30));
  // Corruption: a version whose weights are truncated, one with a bad adapter_config.json,
  // one with a bad gentune.json (listed as broken too), a dataset whose meta.json is cut,
  // a job whose spec.json is cut, and a torn last line in the killed job's log.
  const truncated = join(adapters, 'kept', '2');
  cpSync(keptV1, truncated, { recursive: true });
  truncateSync(join(truncated, 'adapter_model.safetensors'), keptWeights.length - 7);
  const badConfig = join(adapters, 'broken', '1');
  cpSync(keptV1, badConfig, { recursive: true });
  writeFileSync(join(badConfig, 'adapter_config.json'), '{"peft_type": "LO');
  const badMeta = join(adapters, 'nometa', '1');
  cpSync(keptV1, badMeta, { recursive: true });
  writeFileSync(join(badMeta, 'gentune.json'), '{"createdAtMs": 17');
  const badDataset = join(dataDir, 'datasets', 'ds-corrupt');
  cpSync(join(dataDir, 'datasets', datasetId), badDataset, { recursive: true });
  writeFileSync(join(badDataset, 'meta.json'), '{"id": "ds-corrupt", "na');
  const badJob = join(dataDir, 'jobs', 'ft-corrupt');
  cpSync(join(dataDir, 'jobs', cutId), badJob, { recursive: true });
  rmSync(join(badJob, 'checkpoint.safetensors'), { force: true });
  writeFileSync(join(badJob, 'spec.json'), '{"id": "ft-corrupt", "spe');
  const cutLog = join(dataDir, 'jobs', cutId, 'events.jsonl');
  appendFileSync(cutLog, `{"jobId":"${cutId}","sequence":99,"timeMs":1,"type":"progr`);

  const second = await startServe();
  try {
    const warned = (msg: string, key: 'file' | 'dir', path: string) =>
      assert.ok(second.logs.some((l) => l.msg === msg && l.level === 40 && l[key] === path), `no warning "${msg}" naming ${path}`);
    warned('adapter version is broken', 'dir', truncated);
    warned('adapter version is broken', 'dir', badConfig);
    warned('adapter version is broken', 'dir', badMeta);
    warned('skipping dataset with an unreadable meta.json', 'file', join(badDataset, 'meta.json'));
    warned('skipping fine-tune job with an unreadable spec.json', 'file', join(badJob, 'spec.json'));
    warned('skipping a torn line of a job log', 'file', cutLog);

    // Nothing half-written is served: the corrupt versions are listed as broken, with their reasons (issue 18),
    // and the leftovers of the killed writers are gone.
    const listed = await second.client.listAdapters();
    const reasons = Object.fromEntries(listed.flatMap((a) => a.versions.map((v) => [`${a.name}@${v.version}`, v.brokenReason])));
    assert.deepEqual(Object.keys(reasons), ['broken@1', 'kept@1', 'kept@2', 'nometa@1']);
    assert.equal(reasons['kept@1'], '');
    assert.match(reasons['kept@2'], /^adapter_model\.safetensors: .*file truncated\?$/);
    assert.match(reasons['broken@1'], /^adapter_config\.json: not valid JSON/);
    assert.match(reasons['nometa@1'], /^gentune\.json: not valid JSON/);
    assert.deepEqual(listed.map((a) => [a.name, a.latestVersion]), [['broken', 0], ['kept', 1], ['nometa', 0]]);
    assert.deepEqual(readdirSync(join(adapters, 'kept')).sort(), ['1', '2']);
    assert.deepEqual((await second.client.listDatasets()).map((d) => d.id), [datasetId]);
    assert.ok(!readdirSync(join(dataDir, 'datasets')).some((n) => n.startsWith('.')));
    assert.ok(!(await second.client.listFineTuneJobs()).some((j) => j.id === 'ft-corrupt'));

    // Every earlier adapter still loads, and generates what it did before.
    assert.deepEqual((await second.client.generateText({ ...longGeneration(16), adapter: 'kept' })).tokenIds, keptOutput);
    await assert.rejects(second.client.generateText({ ...longGeneration(16), adapter: 'nometa' }), (err: { code?: number; details?: string }) =>
      err.code === 9 && /^`adapter` "nometa@1" is stored but broken: gentune\.json: not valid JSON/.test(err.details ?? ''));

    // The killed job resumes from its last checkpoint and finishes.
    assert.equal((await second.client.getFineTuneJob(cutId)).state, JobState.JOB_STATE_RUNNING);
    const events: FineTuneEvent[] = await collect(second.client.watchFineTune(cutId));
    assert.equal(events.at(-1)?.event?.$case, 'succeeded');
    const cases = events.map((e) => e.event?.$case);
    const restart = cases.lastIndexOf('started');
    const lastCheckpoint = events[cases.lastIndexOf('checkpoint', restart)]?.event;
    const firstAfter = events.slice(restart).find((e) => e.event?.$case === 'progress')?.event;
    assert.ok(lastCheckpoint?.$case === 'checkpoint' && lastCheckpoint.value.step >= 3, JSON.stringify(lastCheckpoint));
    assert.ok(firstAfter?.$case === 'progress' && firstAfter.value.step === lastCheckpoint.value.step + 1, 'progress goes on from the checkpoint');
    assert.ok(!readdirSync(join(dataDir, 'jobs', cutId)).includes('checkpoint.safetensors'), 'the checkpoint goes when the job ends');

    // Same adapter as an uninterrupted run of the same request (1e-5).
    const reference = await collect(second.client.fineTune(request('reference', datasetId)));
    assert.equal(reference.at(-1)?.event?.$case, 'succeeded');
    const [resumed, uninterrupted] = [await weights('cut'), await weights('reference')];
    assert.deepEqual([...resumed.keys()].sort(), [...uninterrupted.keys()].sort());
    let worst = 0;
    for (const [k, a] of resumed) a.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - uninterrupted.get(k)![i]))));
    assert.ok(worst <= 1e-5, `largest difference ${worst}`);

    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  } finally {
    second.client.close();
    second.child.kill('SIGKILL');
  }
});
