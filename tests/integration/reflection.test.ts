/**
 * Server reflection is enough to call the API: a Python client
 * (python/reflection_client.py, Debian's python3-grpcio and python3-protobuf)
 * builds a DescriptorPool from reflection answers alone, as grpcurl, Postman
 * and grpcui do, and calls Generate and Health.Check with message classes made
 * from it. This needs the files under their real names with their real
 * imports: DescriptorPool.Add raises on a file whose imports it lacks. Needs
 * /usr/bin/python3 with grpcio and protoc (to describe the reflection protocol
 * itself): skipped without them, failed without them under CI
 * (tests/helpers/test-peer.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from './helpers/harness.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./python/reflection_client.py', import.meta.url));
const REFLECTION_PROTOS = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')), 'build/proto');

const missing = !(existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import grpc']).status === 0)
  ? `${PYTHON} with grpcio not available (apt-get install -y python3-grpcio)`
  : spawnSync('protoc', ['--version']).status !== 0 && 'protoc not installed (apt-get install -y protobuf-compiler)';

let h: Harness;
let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gentune-reflect-'));
  h = await startHarness();
});
after(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs reflection_client.py against the server; returns what it printed, parsed. */
async function reflect(): Promise<any> {
  const set = join(dir, 'reflection.binpb');
  const made = spawnSync('protoc', [`-I${REFLECTION_PROTOS}`, `--descriptor_set_out=${set}`, 'grpc/reflection/v1/reflection.proto'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(PYTHON, [SCRIPT, set, h.address], { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
  return JSON.parse(out);
}

test('a Python client builds a descriptor pool from reflection alone and calls Generate and Health.Check with it', async (t) => {
  if (skipWithoutPeer(missing)) return t.skip(missing || undefined);
  requirePeer(missing);
  const seen = await reflect();
  assert.ok(seen.services.includes('gentune.v1.ModelService'), seen.services.join(','));
  assert.ok(seen.services.includes('grpc.health.v1.Health'), seen.services.join(','));

  // service.proto and every file it imports, transitively, under protoc's names
  // with protoc's import lists (as proto/gentune/v1/*.proto declare them).
  assert.deepEqual(seen.dependencies, {
    'gentune/v1/adapters.proto': ['google/protobuf/timestamp.proto'],
    'gentune/v1/datasets.proto': ['google/protobuf/timestamp.proto'],
    'gentune/v1/evaluate.proto': ['gentune/v1/datasets.proto', 'gentune/v1/generate.proto'],
    'gentune/v1/fine_tune.proto': ['google/protobuf/timestamp.proto', 'gentune/v1/datasets.proto'],
    'gentune/v1/generate.proto': ['gentune/v1/datasets.proto'],
    'gentune/v1/server_info.proto': ['google/protobuf/timestamp.proto'],
    'gentune/v1/service.proto': [
      'gentune/v1/adapters.proto',
      'gentune/v1/datasets.proto',
      'gentune/v1/evaluate.proto',
      'gentune/v1/fine_tune.proto',
      'gentune/v1/generate.proto',
      'gentune/v1/server_info.proto',
    ],
    'google/protobuf/timestamp.proto': [],
  });
  // By file name, v1 and v1alpha: the file first, then what it imports, transitively.
  const generateFiles = ['gentune/v1/generate.proto', 'gentune/v1/datasets.proto', 'google/protobuf/timestamp.proto'];
  assert.deepEqual(seen.file_by_filename, generateFiles);
  assert.deepEqual(seen.file_by_filename_v1alpha, generateFiles);

  const g = seen.generate;
  assert.equal(g.request_type, 'gentune.v1.GenerateRequest');
  assert.ok(g.tokens >= 1 && g.tokens <= 4, `tokens ${g.tokens}`);
  assert.equal(g.generated_tokens, g.tokens);
  assert.ok(g.text.length > 0);
  assert.match(g.finish_reason, /^FINISH_REASON_(LENGTH|EOS)$/);
  assert.equal(seen.health, 'SERVING');
});
