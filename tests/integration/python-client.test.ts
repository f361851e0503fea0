/**
 * A Python client (Debian's python3-grpcio) talks to the server through the
 * committed client under clients/python/, run the one way its README says
 * (`PYTHONPATH=clients/python python3 ...`, nothing generated): proves the
 * contract works across languages, for the whole path a user walks
 * (python/check_client.py): health, a streamed generation, a fine-tune followed
 * to the end, Evaluate of the base model against the new adapter, a generation
 * with it; and that clients/python/example.py runs as shown. Needs
 * /usr/bin/python3 with grpcio: skipped without it, failed without it under CI
 * (tests/helpers/test-peer.ts). codegen.test.ts proves clients/python/ is what
 * proto/ generates.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from './helpers/harness.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./python/check_client.py', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../clients/python', import.meta.url));
const EXAMPLE = join(CLIENT, 'example.py');
// What clients/python/README.md says to run; no bytecode written into the tree.
const ENV = { ...process.env, PYTHONPATH: CLIENT, PYTHONDONTWRITEBYTECODE: '1' };

const missing = !(existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import grpc']).status === 0) &&
  `${PYTHON} with grpcio not available (apt-get install -y python3-grpcio)`;
let h: Harness;

before(async () => {
  h = await startHarness();
});
after(async () => {
  await h.close();
});

/** Runs a Python script with PYTHONPATH=clients/python; resolves to its stdout. */
function python(args: string[], timeout: number): Promise<string> {
  return new Promise<string>((resolve, reject) =>
    execFile(PYTHON, args, { timeout, env: ENV }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
}

test('a Python client checks health, streams a generation, fine-tunes reading the progress, evaluates base vs adapter and generates with it', async (t) => {
  if (skipWithoutPeer(missing)) return t.skip(missing || undefined);
  requirePeer(missing);
  const seen = JSON.parse(await python([SCRIPT, h.address], 120_000));
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

test('clients/python/example.py checks health and streams a generation to its finish reason', async (t) => {
  if (skipWithoutPeer(missing)) return t.skip(missing || undefined);
  requirePeer(missing);
  const out = await python([EXAMPLE, h.address, 'Hello'], 60_000);
  // The streamed text, then the last message's finish reason and token count (max_new_tokens 40).
  const m = /\n\[(FINISH_REASON_LENGTH|FINISH_REASON_EOS), (\d+) tokens\]\n$/.exec(out);
  assert.ok(m, out);
  assert.ok(Number(m[2]) >= 1 && Number(m[2]) <= 40, out);
  assert.ok(out.length > m[0].length, `no text before ${m[0]}`);
});
