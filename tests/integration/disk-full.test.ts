/**
 * A full disk (issue 18): the data directory is a real 2 MiB tmpfs, so
 * ENOSPC comes from the kernel, not from an injected fault. UploadDataset
 * bigger than what is left, FineTune when nothing is left, and a fine-tune
 * job whose adapter and checkpoint do not fit all fail with
 * RESOURCE_EXHAUSTED (the job: its failure reason) naming the data
 * directory and no other server path, and leave nothing half-written.
 *
 * Mounting needs root (as the test machines run); elsewhere the test is
 * skipped, saying why.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import { JobState, type FineTuneEvent } from '../../src/gen/gentune/v1/fine_tune.js';
import { collect, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const LINE = '{"prompt":"Q: what is two plus two?","completion":" four"}\n';
const FULL = /^no space left on the disk of the data directory (.+) \(ENOSPC\); nothing was stored$/;

let dataDir: string;
let mounted = false;
let h: Harness | undefined;

before(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'gentune-diskfull-'));
  mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dataDir]).status === 0;
});

after(async () => {
  await h?.close();
  if (mounted) spawnSync('umount', [dataDir]);
  rmSync(dataDir, { recursive: true, force: true });
});

/** Bytes left on the data directory's disk. */
const free = () => {
  const s = statfsSync(dataDir);
  return s.bavail * s.bsize;
};

/** Every entry under `dir`, recursively, as paths relative to it. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: false }).map(String).sort();
}

test('ENOSPC and a full disk: RESOURCE_EXHAUSTED naming the data directory, nothing half-written', async (t) => {
  if (!mounted) return t.skip('cannot mount a tmpfs (needs root)');
  h = await startHarness({ dataDir });
  const before = tree(dataDir);

  // An upload larger than the disk: the stream fails midway.
  const big = Buffer.from(LINE.repeat(Math.ceil((free() + 512 * 1024) / LINE.length)));
  await assert.rejects(h.client.uploadDataset({ name: 'big' }, big), (err: { code?: number; details?: string }) => {
    assert.equal(err.code, Code.RESOURCE_EXHAUSTED, err.details);
    assert.equal(FULL.exec(err.details ?? '')?.[1], dataDir, err.details);
    return true;
  });
  assert.deepEqual(await h.client.listDatasets(), []);
  assert.deepEqual(tree(join(dataDir, 'datasets')), [], 'no dataset and no hidden temporary folder left');

  // A small one fits; then the disk fills up but for two pages: a job's spec.json and events.jsonl.
  const small = await h.client.uploadDataset({ name: 'small' }, Buffer.from(LINE.repeat(4)));
  const page = statfsSync(dataDir).bsize;
  writeFileSync(join(dataDir, 'filler'), Buffer.alloc(free() - 2 * page));
  assert.equal(free(), 2 * page);
  const events: FineTuneEvent[] = await collect(h.client.fineTune({ adapter: 'full', datasetId: small.id, hyperparameters: { maxSteps: 2 } }));
  const last = events.at(-1)?.event;
  assert.equal(last?.$case, 'failed', JSON.stringify(last));
  assert.equal(FULL.exec(last.$case === 'failed' ? last.value.reason : '')?.[1], dataDir, JSON.stringify(last));
  const [job] = await h.client.listFineTuneJobs();
  assert.equal(job.state, JobState.JOB_STATE_FAILED);
  assert.deepEqual(await h.client.listAdapters(), []);
  assert.deepEqual(tree(join(dataDir, 'adapters')).filter((p) => p !== 'full'), [], 'no version and no hidden temporary folder left');
  assert.deepEqual(tree(join(dataDir, 'jobs', job.id)).sort(), ['events.jsonl', 'spec.json'], 'no checkpoint or temporary file left');

  // Nothing left at all: FineTune cannot even record the job.
  writeFileSync(join(dataDir, 'filler2'), Buffer.alloc(free()));
  await assert.rejects(collect(h.client.fineTune({ adapter: 'none', datasetId: small.id, hyperparameters: { maxSteps: 1 } })), (err: { code?: number; details?: string }) => {
    assert.equal(err.code, Code.RESOURCE_EXHAUSTED, err.details);
    assert.equal(FULL.exec(err.details ?? '')?.[1], dataDir, err.details);
    return true;
  });
  assert.deepEqual(readdirSync(join(dataDir, 'jobs')), [job.id], 'no half-created job');
  assert.ok(before.every((p) => tree(dataDir).includes(p)));
  await rejectsWith(h.client.uploadDataset({ name: 'tiny' }, Buffer.from(LINE)), Code.RESOURCE_EXHAUSTED, FULL);
});
