/**
 * Replicas (issue 18): three real server processes on one data directory.
 * What one stores (datasets, jobs, their events, adapters) the others see
 * within a bounded delay, measured; a job is run by exactly one of them, the
 * holder of its lease; and when the holder is killed with SIGKILL at a
 * seeded random moment (many times over), another takes the job over and
 * completes it: one `succeeded`, one adapter version per job, no duplicate
 * sequence number, no job lost, no half-written artefact.
 *
 * GENTUNE_REPLICA_KILLS sets the number of kills (default 20).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/common/rng.js';
import type { GentuneClient } from '../../src/client/gentune-client.js';
import { readVersion } from '../../src/engine/adapter-version-folder.js';
import { readModelConfig } from '../../src/model/checkpoint/model-files.js';
import { JobState } from '../../src/gen/gentune/v1/fine_tune.js';
import { longGeneration, makeFixtureModel, removeFixtureModel } from './helpers/fixture-model.js';
import { killReplica, leaseHolderPid, type Replica, startReplica, stopReplicas } from './helpers/replica-set.js';

const JSONL = ['{"prompt":"Q: 1+1?","completion":" 2"}', '{"prompt":"Q: 2+2?","completion":" 4"}', '{"prompt":"Q: 3+3?","completion":" 6"}'].join('\n') + '\n';
/** Short leases, so a killed holder's job is taken over within about 1 s; every step checkpoints. */
const ENV = {
  GENTUNE_LEASE_TTL_MS: '1000',
  GENTUNE_LEASE_RENEW_MS: '200',
  GENTUNE_STORE_POLL_MS: '100',
  GENTUNE_CHECKPOINT_INTERVAL_MS: '0',
  GENTUNE_ADAPTER_RESCAN_MS: '500',
};
const KILLS = Number(process.env.GENTUNE_REPLICA_KILLS ?? 20);
/** Steps of each job in the kill loop (every step checkpoints). */
const STEPS = 6;
/** A visibility delay above this fails the test (the goal is well under it: see the README's figures). */
const VISIBLE_WITHIN_MS = 2000;

let model: string;
let dataDir: string;
const replicas: Replica[] = [];

before(async () => {
  model = await makeFixtureModel();
  dataDir = mkdtempSync(join(tmpdir(), 'gentune-replicas-'));
  replicas.push(...(await Promise.all([0, 1, 2].map(() => startReplica(model, dataDir, ENV)))));
});
after(async () => {
  await stopReplicas(replicas);
  removeFixtureModel(model);
  rmSync(dataDir, { recursive: true, force: true });
});

/** Milliseconds until `check` holds, polled every 5 ms (a measurement); fails past VISIBLE_WITHIN_MS. */
async function delayUntil(check: () => Promise<boolean>, what: string, startMs = performance.now()): Promise<number> {
  for (;;) {
    if (await check()) return performance.now() - startMs;
    if (performance.now() - startMs > VISIBLE_WITHIN_MS) throw new Error(`${what}: not visible within ${VISIBLE_WITHIN_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Submits a job and returns its id at once (the stream is dropped after `queued`; the job goes on). */
async function submit(client: GentuneClient, datasetId: string, adapter: string, maxSteps: number): Promise<string> {
  for await (const e of client.fineTune({ adapter, datasetId, method: { $case: 'lora', value: { r: 2 } }, hyperparameters: { maxSteps, batchSize: 1, learningRate: 1e-2, seed: '1' } })) {
    return e.jobId;
  }
  throw new Error('no queued event');
}

/** The job's log as stored: every line (a torn one included, as null). */
function logOnDisk(jobId: string): ({ sequence: number; type: string; version?: number; step?: number } | null)[] {
  return readFileSync(join(dataDir, 'jobs', jobId, 'events.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return null;
    }
  });
}

/** The step of the job's last progress event (0 before its first). */
const lastStep = (jobId: string) => logOnDisk(jobId).filter((e) => e?.type === 'progress').at(-1)?.step ?? 0;

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

test('what one replica stores the others see: datasets, jobs (get, list, live watch) and adapters', { timeout: 180_000 }, async (t) => {
  const [a, b, c] = replicas;
  const delays: number[] = [];
  const dataset = await a.client.uploadDataset({ name: 'qa' }, Buffer.from(JSONL));
  const uploadedAt = performance.now();
  for (const r of [b, c]) delays.push(await delayUntil(async () => (await r.client.listDatasets()).some((d) => d.id === dataset.id), 'dataset in ListDatasets', uploadedAt));

  // FineTune on B names A's dataset; C gets the job at once (looked up on a miss) and watches it live.
  const jobId = await submit(b.client, dataset.id, 'shared', 6);
  const submittedAt = performance.now();
  assert.equal((await c.client.getFineTuneJob(jobId)).id, jobId);
  delays.push(await delayUntil(async () => (await a.client.listFineTuneJobs()).some((j) => j.id === jobId), 'job in ListFineTuneJobs', submittedAt));
  const watched = [];
  for await (const e of c.client.watchFineTune(jobId)) watched.push(e);
  assert.deepEqual(watched.map((e) => e.sequence), watched.map((_, i) => i), 'one log, no duplicate sequence');
  const last = watched.at(-1)?.event;
  assert.ok(last?.$case === 'succeeded' && last.value.version === 1, JSON.stringify(last));
  const succeededAt = performance.now();
  for (const r of [a, b]) {
    delays.push(await delayUntil(async () => (await r.client.getFineTuneJob(jobId)).state === JobState.JOB_STATE_SUCCEEDED, 'job state', succeededAt));
    delays.push(await delayUntil(async () => (await r.client.listAdapters()).some((x) => x.name === 'shared' && x.latestVersion === 1), 'adapter', succeededAt));
  }
  // Exactly one replica trained it: one `started`, one version.
  assert.equal(watched.filter((e) => e.event?.$case === 'started').length, 1);
  for (const r of replicas) assert.equal((await r.client.generateText({ prompt: 'Q: 1+1?', adapter: 'shared', sampling: { maxNewTokens: 2 } })).adapter, 'shared@1');
  t.diagnostic(`visibility delay between replicas (ms): ${delays.map((d) => d.toFixed(0)).join(' ')}; p50 ${percentile(delays, 50).toFixed(0)}, max ${Math.max(...delays).toFixed(0)}`);
});

test('aliases: set on one replica, seen and resolved by every replica; a move is atomic, in-flight requests keep their version, rollback moves it back', { timeout: 180_000 }, async (t) => {
  const [a, b, c] = replicas;
  const dataset = (await a.client.listDatasets()).find((d) => d.name === 'qa')!;
  // A second version of `shared` (the first test trained version 1).
  const jobId = await submit(a.client, dataset.id, 'shared', 2);
  for await (const e of b.client.watchFineTune(jobId)) if (e.event?.$case === 'failed') assert.fail(JSON.stringify(e));
  await delayUntil(async () => (await c.client.listAdapters()).some((x) => x.name === 'shared' && x.latestVersion === 2), 'version 2 on C');
  const delays: number[] = [];

  const set = await a.client.setAdapterAlias('shared', 'prod', 1);
  const setAt = performance.now();
  assert.deepEqual(set.aliases.map((x) => [x.alias, x.version]), [['prod', 1]]);
  for (const r of [b, c]) {
    delays.push(await delayUntil(async () => (await r.client.listAdapters()).find((x) => x.name === 'shared')?.aliases.some((x) => x.alias === 'prod' && x.version === 1) ?? false, 'alias in ListAdapters', setAt));
    assert.equal((await r.client.generateText({ prompt: 'Q: 1+1?', adapter: 'shared@prod', sampling: { maxNewTokens: 2 } })).adapter, 'shared@1');
  }

  // Promotion while a request on shared@prod is streaming on C: it finishes on version 1, the next resolves to 2.
  const inFlight = c.client.generate({ ...longGeneration(200), adapter: 'shared@prod' });
  const first = await inFlight.next();
  assert.ok(!first.done);
  await b.client.setAdapterAlias('shared', 'prod', 2);
  const movedAt = performance.now();
  for (const r of [a, c]) {
    delays.push(await delayUntil(async () => (await r.client.generateText({ prompt: 'Q: 1+1?', adapter: 'shared@prod', sampling: { maxNewTokens: 1 } })).adapter === 'shared@2', 'alias move resolved', movedAt));
  }
  let servedBy = '';
  for await (const m of inFlight) if (m.adapter !== '') servedBy = m.adapter;
  assert.equal(servedBy, 'shared@1', 'the request in flight finished on the version it started with');

  // Rollback: the same call, back to 1.
  await c.client.setAdapterAlias('shared', 'prod', 1);
  assert.equal((await a.client.generateText({ prompt: 'Q: 1+1?', adapter: 'shared@prod', sampling: { maxNewTokens: 1 } })).adapter, 'shared@1');
  // Unknown aliases and versions are refused, naming what is missing.
  await assert.rejects(a.client.generateText({ prompt: 'x', adapter: 'shared@canary', sampling: { maxNewTokens: 1 } }), (err: { code?: number; details?: string }) => err.code === 5 && /shared@canary.*no such alias/.test(err.details ?? ''));
  await assert.rejects(a.client.setAdapterAlias('shared', 'prod', 9), (err: { code?: number; details?: string }) => err.code === 5 && /`version`/.test(err.details ?? ''));
  await assert.rejects(a.client.setAdapterAlias('shared', '7', 1), (err: { code?: number; details?: string }) => err.code === 3 && /`alias`/.test(err.details ?? ''));
  t.diagnostic(`alias visibility delay between replicas (ms): ${delays.map((d) => d.toFixed(0)).join(' ')}`);
});

test(`SIGKILL of the lease holder at seeded random moments (${KILLS} kills): every job taken over and completed once, no duplicate sequence, one version per job`, { timeout: 1_200_000 }, async (t) => {
  const rng = new Rng(20261207);
  const dataset = await replicas[0]!.client.uploadDataset({ name: 'kill' }, Buffer.from(JSONL));
  const jobs: string[] = [];
  let kills = 0;
  const killPoints: number[] = [];
  const starting: Promise<void>[] = [];
  const live = () => replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
  while (kills < KILLS) {
    const via = live()[Math.floor(rng.next() * live().length)]!;
    const jobId = await submit(via.client, dataset.id, 'killed', STEPS);
    jobs.push(jobId);
    // At most two kills per job: a job killed three times before a step is given up on (MAX_STARTS_WITHOUT_CHECKPOINT).
    for (let jobKills = 0; jobKills < 2 && kills < KILLS; jobKills++) {
      // The kill point: once the job has done `killAtStep` steps (its current step: while the holder adopts and
      // starts it; STEPS: after the last step, while the holder stores the adapter and logs `succeeded`), plus 0..40 ms.
      const fromStep = lastStep(jobId);
      const killAtStep = fromStep + Math.floor(rng.next() * (STEPS - fromStep + 1));
      const extraMs = Math.floor(rng.next() * 40);
      let holder: Replica | undefined;
      while (!logOnDisk(jobId).some((e) => e?.type === 'succeeded')) {
        const lease = leaseHolderPid(dataDir, jobId);
        const current = lease && lease.expiresAtMs > Date.now() ? live().find((r) => r.pid === lease.pid) : undefined;
        if (current && lastStep(jobId) >= killAtStep) {
          holder = current;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      if (!holder) break;
      // Another replica must be up to take the job over (replacements take a few seconds to load the model).
      if (live().length < 2) await Promise.all(starting);
      await new Promise((resolve) => setTimeout(resolve, extraMs));
      if (logOnDisk(jobId).some((e) => e?.type === 'succeeded') || holder.child.exitCode !== null) break;
      await killReplica(holder);
      kills++;
      killPoints.push(killAtStep);
      replicas.splice(replicas.indexOf(holder), 1);
      // A replacement joins (the Deployment's controller would start one).
      starting.push(startReplica(model, dataDir, ENV).then((r) => void replicas.push(r)));
    }
  }
  await Promise.all(starting);

  // Every job ends, once: watched from a replica that never held it.
  let duplicates = 0;
  let lost = 0;
  for (const jobId of jobs) {
    const events = [];
    for await (const e of live()[0]!.client.watchFineTune(jobId, 0, { timeoutMs: 120_000 })) events.push(e);
    const onDisk = logOnDisk(jobId).filter((e) => e !== null);
    const sequences = onDisk.map((e) => e.sequence);
    duplicates += sequences.length - new Set(sequences).size;
    assert.deepEqual(sequences, sequences.map((_, i) => i), `${jobId}: sequences 0..n-1 once each`);
    assert.deepEqual(events.map((e) => e.sequence), sequences, `${jobId}: the watch replays the log as stored`);
    const ends = onDisk.filter((e) => ['succeeded', 'failed', 'cancelled'].includes(e.type));
    if (ends.length !== 1 || ends[0]!.type !== 'succeeded') lost++;
    assert.deepEqual(ends.map((e) => e.type), ['succeeded'], `${jobId}: one terminal event, succeeded`);
  }
  // One version per job, each whole and naming its job; nothing half-written is a version.
  const adapterDir = join(dataDir, 'adapters', 'killed');
  const base = await readModelConfig(model);
  const versions = readdirSync(adapterDir).filter((v) => /^\d+$/.test(v)).map((v) => readVersion(join(adapterDir, v), 'killed', Number(v), base));
  assert.deepEqual(versions.filter((v) => v.broken !== undefined).map((v) => `${v.version}: ${v.broken}`), [], 'every version whole (checked as loading checks it)');
  assert.deepEqual(versions.map((v) => v.jobId).sort(), [...jobs].sort(), 'exactly one version per job');
  for (const jobId of jobs) {
    const succeeded = logOnDisk(jobId).find((e) => e?.type === 'succeeded');
    assert.equal(succeeded?.version, versions.find((v) => v.jobId === jobId)?.version, `${jobId}: succeeded names its version`);
    // A finished job keeps no checkpoint and no lease.
    assert.deepEqual(readdirSync(join(dataDir, 'jobs', jobId)).filter((n) => !n.startsWith('.')).sort(), ['events.jsonl', 'spec.json']);
  }
  const listed = await live()[0]!.client.listAdapters();
  assert.equal(listed.find((x) => x.name === 'killed')?.versions.length, jobs.length, 'every replica lists exactly those versions');
  assert.ok(!existsSync(join(dataDir, 'jobs', jobs[0]!, 'checkpoint.safetensors')));
  t.diagnostic(`${kills} kills over ${jobs.length} jobs (kill points, in steps done: ${killPoints.join(' ')}): ${duplicates} duplicate sequence numbers, ${lost} lost jobs, ${versions.length} versions`);
});
