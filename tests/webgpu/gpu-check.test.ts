/**
 * scripts/gpu-check.sh's argument handling and plan (--dry-run): no GPU and
 * no Vulkan needed. The real run is exercised by hand with `--icd lavapipe`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/gpu-check.sh', import.meta.url));

function check(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync('bash', [script, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('--help prints the usage and exits 0', () => {
  const r = check('--help');
  assert.equal(r.status, 0);
  assert.match(r.out, /Usage: scripts\/gpu-check.sh \[options\]/);
  assert.match(r.out, /--dry-run/);
});

test('bad usage exits 2 naming the option and the value', () => {
  const cases: [string[], RegExp][] = [
    [['--bogus'], /unknown option '--bogus'/],
    [['--tokens', '0'], /--tokens must be a positive integer, got '0'/],
    [['--train-steps', 'x'], /--train-steps must be a positive integer, got 'x'/],
    [['--models', 'embedded,gpt3'], /--models: 'gpt3' is not one of: embedded gpt2/],
    [['--train-configs', 'a,d'], /--train-configs: 'd' is not one of: a b c/],
    [['--out'], /--out needs a value/],
    [['--out', '--quick'], /--out needs a value/],
    [['--icd', '/no/such/icd.json'], /--icd: no such manifest '\/no\/such\/icd.json'/],
  ];
  for (const [args, message] of cases) {
    const r = check(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.out}${r.err}`);
    assert.match(r.err, message);
  }
});

test('--dry-run prints every stage with the flags given, and writes nothing', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'gentune-gpu-check-')), 'results');
  const r = check('--dry-run', '--quick', '--icd', 'lavapipe', '--train-steps', '3', '--out', out);
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /\+ node scripts\/run-tests.mjs tests\/webgpu/);
  assert.match(r.out, /\+ node --import tsx bench\/decode.ts --backend webgpu --models embedded --tokens 8/);
  assert.match(r.out, new RegExp(`\\+ node --import tsx bench/train.ts --backend webgpu --configs a --methods lora --steps 3 --batch 2 --seq 32 --out ${out}/train.json`));
  assert.match(r.out, /dry run: nothing was installed or run/);
  assert.equal(existsSync(out), false);
});
