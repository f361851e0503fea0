/**
 * A Python client (Debian's python3-grpcio) talks to the server through stubs
 * generated from proto/ at test time: proves the contract works across
 * languages, for the whole path a user walks (python/check_client.py): health,
 * a streamed generation, a fine-tune followed to the end, Evaluate of the base
 * model against the new adapter, a generation with it. Needs /usr/bin/python3
 * with grpcio and what scripts/python-stubs.sh needs (protoc,
 * grpc_python_plugin, libprotobuf-dev's well-known types): skipped without
 * them, failed without them under CI (tests/helpers/test-peer.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from './helpers/harness.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./python/check_client.py', import.meta.url));
const STUBS_SCRIPT = fileURLToPath(new URL('../../scripts/python-stubs.sh', import.meta.url));

/** Generates _pb2 / _pb2_grpc modules into `out` with scripts/python-stubs.sh; returns null on success, else why it could not. */
function generateStubs(out: string): string | null {
  const r = spawnSync(STUBS_SCRIPT, [out], { encoding: 'utf8' });
  if (r.status === 0) return null;
  return `scripts/python-stubs.sh failed: ${(r.stderr || String(r.error)).trim().split('\n')[0]}`;
}

const pythonOk = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import grpc']).status === 0;
let h: Harness;
let gen: string;
let missing: string | false = pythonOk ? false : `${PYTHON} with grpcio not available (apt-get install -y python3-grpcio)`;

before(async () => {
  gen = mkdtempSync(join(tmpdir(), 'gentune-py-'));
  if (!missing) missing = generateStubs(gen) ?? false;
  h = await startHarness();
});
after(async () => {
  await h.close();
  rmSync(gen, { recursive: true, force: true });
});

test('a Python client checks health, streams a generation, fine-tunes reading the progress, evaluates base vs adapter and generates with it', async (t) => {
  if (skipWithoutPeer(missing)) return t.skip(missing || undefined);
  requirePeer(missing);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(PYTHON, [SCRIPT, gen, h.address], { timeout: 120_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
  const seen = JSON.parse(out);
  assert.equal(seen.health, 'SERVING');
  assert.ok(seen.model.length > 0);
  assert.ok(seen.tokens >= 1 && seen.tokens <= 4);
  assert.equal(seen.generated_tokens, seen.tokens);
  assert.ok(seen.text.length > 0);
  assert.match(seen.finish_reason, /^FINISH_REASON_(LENGTH|EOS)$/);
  assert.equal(seen.error.code, 'INVALID_ARGUMENT');
  assert.match(seen.error.details, /`temperature` must be >= 0 and <= 100, got -1/);

  // The fine-tune streamed every step to the end.
  const ft = seen.fine_tune;
  assert.deepEqual(ft.kinds.slice(0, 2), ['queued', 'started']);
  assert.equal(ft.kinds.at(-1), 'succeeded');
  assert.deepEqual(ft.steps, Array.from({ length: 12 }, (_, i) => i + 1));
  assert.ok(ft.losses.every((l: number) => Number.isFinite(l) && l > 0));
  assert.deepEqual(ft.succeeded, { adapter: 'py-adapter', version: 1 });
  assert.equal(ft.job_state, 'JOB_STATE_SUCCEEDED');

  // Base model first, then the adapter, which fits its training examples better.
  // A modest margin: the fixture's tied embeddings are tiny (0.02 scale), so no adapter
  // can make it confident; its loss stays near ln(257) = 5.5 (training is seeded, dropout 0).
  const [base, adapter] = seen.evaluation;
  assert.equal(base.adapter, '');
  assert.equal(adapter.adapter, 'py-adapter@1');
  assert.ok(adapter.loss < base.loss - 0.1, `adapter loss ${adapter.loss} vs base ${base.loss}`);
  assert.ok(adapter.perplexity < base.perplexity);

  assert.equal(seen.adapter_generation.adapter, 'py-adapter@1');
  assert.ok(seen.adapter_generation.tokens >= 1 && seen.adapter_generation.tokens <= 5);
  assert.deepEqual(seen.adapters, ['py-adapter']);
});
