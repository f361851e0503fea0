/**
 * A short run of the soak benchmark (bench/soak.ts, issue 9) as a regression
 * test: 300 mixed Generate calls over real gRPC, a fifth cancelled
 * mid-stream, some past their deadline, while adapters are published,
 * loaded, unloaded and deleted. The full run is `npx tsx bench/soak.ts
 * --calls 10000` (bench/results/soak.json).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('soak: 300 mixed Generate calls with adapter swaps, no unexpected error, idle tensor count flat', { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gentune-soak-test-'));
  try {
    const out = join(dir, 'soak.json');
    const args = ['tsx', 'bench/soak.ts', '--calls', '300', '--checkpoint', '100', '--concurrency', '8', '--swap-interval', '100', '--out', out];
    const child = spawn('npx', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, output.slice(-3000));
    const r = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(r.calls, 300);
    assert.equal(r.unexpectedErrors, 0, JSON.stringify(r.unexpectedSamples));
    assert.equal(r.swapper.errors, 0, JSON.stringify(r.swapper.errorSamples));
    assert.ok(r.cancelled > 30 && r.completed > 150, JSON.stringify(r.outcomesByCode));
    assert.ok(r.swapper.published > 0 && r.swapper.loads > 0 && r.swapper.unloads > 0, JSON.stringify(r.swapper));
    // Four checkpoints (start, 100, 200, 300), all with the same idle tensor count.
    assert.equal(r.checkpoints.length, 4);
    assert.equal(r.tensorsIdle.min, r.tensorsIdle.max, JSON.stringify(r.checkpoints));
    assert.ok(r.tensorsUnderLoadMax > r.tensorsIdle.max, 'the gauge moves under load (KV caches), so a flat idle count means something');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
