/**
 * Job leases (job-lease.ts): of replicas racing for a free job exactly one
 * takes it; nobody takes a live lease; an expired one is taken over as the
 * next generation, and its old holder, finding a successor, stops (never
 * renews); release frees the job at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST } from '../../../src/common/atomic-write.js';
import { JobLease, leaseIsFree, newHolderId, readLease } from '../../../src/engine/job-lease.js';

const TIMING = { ttlMs: 600, renewMs: 100 };

async function jobDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'gentune-lease-'));
}

test('of many replicas racing for a free job, exactly one takes its lease; a live lease is not taken', async () => {
  const dir = await jobDir();
  try {
    const lost: string[] = [];
    const leases = await Promise.all(Array.from({ length: 12 }, (_, i) => JobLease.acquire(dir, `r${i}`, TIMING, () => lost.push(`r${i}`))));
    const winners = leases.filter((l) => l !== undefined);
    assert.equal(winners.length, 1);
    assert.equal(readLease(dir)?.record.holder, winners[0]!.holder);
    assert.equal(await JobLease.acquire(dir, 'late', TIMING, () => undefined), undefined, 'a live lease is not taken');
    // Renewal keeps it live well past its first expiry.
    await new Promise((resolve) => setTimeout(resolve, TIMING.ttlMs * 2));
    assert.ok(winners[0]!.valid);
    assert.equal(await JobLease.acquire(dir, 'later', TIMING, () => undefined), undefined);
    await winners[0]!.release();
    assert.ok(leaseIsFree(dir), 'released: free at once');
    const next = await JobLease.acquire(dir, 'next', TIMING, () => undefined);
    assert.equal(next?.generation, 2);
    assert.equal(next?.tookOver, false, 'released, not taken over');
    await next!.release(true);
    assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith('.')), [], 'a finished job keeps no lease file');
    assert.deepEqual(lost, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an expired lease (holder stalled or dead) is taken over as the next generation; the old holder stops and never renews', async () => {
  const dir = await jobDir();
  try {
    let lostCalls = 0;
    const old = (await JobLease.acquire(dir, 'old', TIMING, () => lostCalls++))!;
    // A stall: the timer stops renewing (as in a process frozen past its expiry).
    clearInterval((old as unknown as { timer: NodeJS.Timeout }).timer);
    assert.equal(await JobLease.acquire(dir, 'new', TIMING, () => undefined), undefined, 'not before it expires');
    await new Promise((resolve) => setTimeout(resolve, TIMING.ttlMs + 50));
    assert.equal(old.valid, false, 'past its expiry the holder may no longer act');
    const successor = (await JobLease.acquire(dir, 'new', TIMING, () => undefined))!;
    assert.equal(successor.generation, old.generation + 1);
    assert.ok(successor.tookOver, 'taken over (the successor waits one renewal period before it reads the log)');
    await old.renew();
    assert.equal(lostCalls, 1, 'the old holder finds its lease lost');
    assert.equal(readLease(dir)?.record.holder, 'new', 'and did not overwrite its successor');
    assert.ok(successor.valid);
    await successor.release(true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a live lease of a process of this host that is gone is free at once; another host\'s is not', async () => {
  const dir = await jobDir();
  const other = await jobDir();
  try {
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const long = { ttlMs: 60_000, renewMs: 1_000 };
    // What a killed server leaves: a lease far from expiry, in a holder id of this host and its dead pid.
    await writeFile(join(dir, 'lease-1.json'), JSON.stringify({ holder: `${HOST}-${deadPid}-0123abcd`, expiresAtMs: Date.now() + 60_000 }));
    const taken = await JobLease.acquire(dir, newHolderId(), long, () => undefined);
    assert.equal(taken?.generation, 2, 'taken at once, as the next generation');
    await taken!.release(true);
    await writeFile(join(other, 'lease-1.json'), JSON.stringify({ holder: `another-host-${deadPid}-0123abcd`, expiresAtMs: Date.now() + 60_000 }));
    assert.equal(await JobLease.acquire(other, newHolderId(), long, () => undefined), undefined, "another host's live lease waits for its expiry");
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(other, { recursive: true, force: true });
  }
});
