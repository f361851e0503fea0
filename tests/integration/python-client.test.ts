/**
 * A Python client (Debian's python3-grpcio) talks to the server through stubs
 * generated from proto/ at test time: proves the contract works across
 * languages, for the whole path a user walks (python/check_client.py): health,
 * a streamed generation, a fine-tune followed to the end, Evaluate of the base
 * model against the new adapter, a generation with it. Needs /usr/bin/python3 with grpcio, and protoc with
 * grpc_python_plugin (protobuf-compiler-grpc) or grpc_tools with proto3
 * `optional` support; skipped otherwise.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from './helpers/harness.js';

const PYTHON = '/usr/bin/python3';
const PROTO_DIR = fileURLToPath(new URL('../../proto', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./python/check_client.py', import.meta.url));
const HEALTH_DIR = join(dirname(createRequire(import.meta.url).resolve('grpc-health-check/package.json')), 'proto');
const PROTOS = readdirSync(join(PROTO_DIR, 'gentune/v1')).map((f) => `gentune/v1/${f}`);

/** Generates _pb2 / _pb2_grpc modules into `out`; returns null on success, else why it could not. */
function generateStubs(out: string): string | null {
  const jobs: [string, string[]][] = [
    [PROTO_DIR, PROTOS],
    [HEALTH_DIR, ['health/v1/health.proto']],
  ];
  const plugin = '/usr/bin/grpc_python_plugin';
  const tries: [string, (dir: string, files: string[]) => string[]][] = [
    ['protoc', (dir, files) => [`-I${dir}`, `--python_out=${out}`, `--grpc_python_out=${out}`, `--plugin=protoc-gen-grpc_python=${plugin}`, ...files]],
    [PYTHON, (dir, files) => ['-m', 'grpc_tools.protoc', `-I${dir}`, `--python_out=${out}`, `--grpc_python_out=${out}`, ...files]],
  ];
  const errors: string[] = [];
  for (const [cmd, args] of tries) {
    if (cmd === 'protoc' && !existsSync(plugin)) {
      errors.push('no grpc_python_plugin');
      continue;
    }
    const results = jobs.map(([dir, files]) => spawnSync(cmd, args(dir, files), { cwd: dir, encoding: 'utf8' }));
    const failed = results.find((r) => r.status !== 0);
    if (!failed) return null;
    errors.push(`${cmd}: ${(failed.stderr || String(failed.error)).trim().split('\n')[0]}`);
  }
  return errors.join('; ');
}

const pythonOk = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import grpc']).status === 0;
let h: Harness;
let gen: string;
let skipReason: string | false = pythonOk ? false : `${PYTHON} with grpcio not available (apt-get install -y python3-grpcio python3-grpc-tools)`;

before(async () => {
  gen = mkdtempSync(join(tmpdir(), 'gentune-py-'));
  if (!skipReason) skipReason = generateStubs(gen) ?? false;
  h = await startHarness();
});
after(async () => {
  await h.close();
  rmSync(gen, { recursive: true, force: true });
});

test('a Python client checks health, streams a generation, fine-tunes reading the progress, evaluates base vs adapter and generates with it', async (t) => {
  if (skipReason) return t.skip(skipReason);
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
