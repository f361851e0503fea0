import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GEN = join(ROOT, 'src/gen');
const noProtoc = spawnSync('protoc', ['--version']).status !== 0 && 'protoc not installed (apt-get install -y protobuf-compiler libprotobuf-dev)';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

/**
 * Generated text without the header line naming the protoc version (any protoc
 * makes the same code); binary files (descriptors.binpb) as hex, byte for byte.
 */
function normalized(path: string): string {
  if (!path.endsWith('.ts')) return readFileSync(path).toString('hex');
  return readFileSync(path, 'utf8').replace(/^\/\/\s+protoc\s+v.*$/m, '');
}

test('src/gen is what scripts/codegen.sh generates from proto/ (run it and commit the result if this fails)', { skip: skipWithoutPeer(noProtoc) }, () => {
  requirePeer(noProtoc);
  const out = mkdtempSync(join(tmpdir(), 'gentune-gen-'));
  try {
    execFileSync(join(ROOT, 'scripts/codegen.sh'), [out], { stdio: 'pipe' });
    const fresh = files(out).map((f) => relative(out, f)).sort();
    const committed = files(GEN).map((f) => relative(GEN, f)).sort();
    assert.deepEqual(committed, fresh, 'the set of generated files differs');
    for (const f of fresh) assert.equal(normalized(join(GEN, f)), normalized(join(out, f)), `src/gen/${f} is stale`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
