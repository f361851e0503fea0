/**
 * `gentune evaluate` against the real server: the base row beside the
 * adapters by default (--no-base drops it, --base is still accepted),
 * progress on stderr while the server works, stdout only the table or JSON.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collect, startHarness, type Harness } from './helpers/harness.js';

const BIN = fileURLToPath(new URL('../../bin/gentune.js', import.meta.url));
const EXAMPLES = Array.from({ length: 20 }, (_, i) => ({ prompt: `Q: ${i}?`, completion: ` ${i}` }));

/** Runs bin/gentune.js asynchronously (the server lives in this process, so it must keep running); stdout and stderr are pipes, not terminals. */
function gentune(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('gentune evaluate', () => {
  let h: Harness;
  let dir: string;
  let file: string;
  before(async () => {
    h = await startHarness();
    dir = mkdtempSync(join(tmpdir(), 'gentune-cli-eval-'));
    file = join(dir, 'test.jsonl');
    writeFileSync(file, EXAMPLES.map((e) => JSON.stringify(e)).join('\n') + '\n');
    await collect(h.client.fineTune({ adapter: 'ev', examples: EXAMPLES.slice(0, 4), hyperparameters: { maxSteps: 1 } }));
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--adapters alone shows the base row first, then the adapter; progress goes to stderr', async () => {
    const ev = await gentune(['evaluate', '--addr', h.address, '--file', file, '--adapters', 'ev', '--metrics', 'loss,exact_match', '--max-new-tokens', '2']);
    assert.equal(ev.code, 0, ev.stderr);
    const rows = ev.stdout.split('\n').filter((l) => /^(base|ev@1)\s/.test(l)).map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(rows, ['base', 'ev@1'], ev.stdout);
    assert.match(ev.stdout, /^MODEL\s+LOSS\s+EXACT_MATCH\s+SECONDS$/m);
    // Not a terminal: a line per quarter of each phase, ending at the total, for both models.
    for (const label of ['base \\(1/2\\) loss', 'base \\(1/2\\) generation', 'ev@1 \\(2/2\\) loss', 'ev@1 \\(2/2\\) generation']) {
      assert.match(ev.stderr, new RegExp(`^${label}: 20/20 examples$`, 'm'), ev.stderr);
    }
    assert.doesNotMatch(ev.stdout, /examples$/m, 'progress stays off stdout');
  });

  test('--no-base leaves the base row out; --base is still accepted', async () => {
    const noBase = await gentune(['evaluate', '--addr', h.address, '--file', file, '--adapters', 'ev', '--no-base']);
    assert.equal(noBase.code, 0, noBase.stderr);
    assert.doesNotMatch(noBase.stdout, /^base\s/m);
    assert.match(noBase.stdout, /^ev@1\s/m);
    const base = await gentune(['evaluate', '--addr', h.address, '--file', file, '--adapters', 'ev', '--base']);
    assert.equal(base.code, 0, base.stderr);
    assert.match(base.stdout, /^base\s[\s\S]*^ev@1\s/m);
  });

  test('--dataset takes a name as well as an id (the newest of that name)', async () => {
    await h.client.uploadDataset({ name: 'eval-set' }, Buffer.from(EXAMPLES.slice(0, 2).map((e) => JSON.stringify(e)).join('\n')));
    const newest = await h.client.uploadDataset({ name: 'eval-set' }, Buffer.from(EXAMPLES.slice(0, 3).map((e) => JSON.stringify(e)).join('\n')));
    for (const ref of ['eval-set', newest.id]) {
      const ev = await gentune(['evaluate', '--addr', h.address, '--dataset', ref, '--adapters', 'ev']);
      assert.equal(ev.code, 0, ev.stderr);
      assert.match(ev.stdout, /^3 examples,/m, `${ref}: ${ev.stdout}`);
    }
    const none = await gentune(['evaluate', '--addr', h.address, '--dataset', 'no-such-set']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /`--dataset` must be the id or name of a stored dataset .*"no-such-set"/);
  });

  test('--json prints the EvaluateResponse alone, base first, and no progress', async () => {
    const ev = await gentune(['evaluate', '--addr', h.address, '--file', file, '--adapters', 'ev', '--json']);
    assert.equal(ev.code, 0, ev.stderr);
    const lines = ev.stdout.trim().split('\n');
    assert.equal(lines.length, 1, ev.stdout);
    const res = JSON.parse(lines[0]!);
    assert.deepEqual(res.results.map((r: { adapter?: string }) => r.adapter ?? ''), ['', 'ev@1']);
    assert.equal(res.numExamples, EXAMPLES.length);
    assert.equal(ev.stderr, '');
  });
});
