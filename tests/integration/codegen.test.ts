import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GEN = join(ROOT, 'src/gen');
const PYTHON_CLIENT = join(ROOT, 'clients/python');
const noProtoc = spawnSync('protoc', ['--version']).status !== 0 && 'protoc not installed (apt-get install -y protobuf-compiler libprotobuf-dev)';
const noPythonPlugin = noProtoc || (!existsSync('/usr/bin/grpc_python_plugin') && 'grpc_python_plugin not installed (apt-get install -y protobuf-compiler-grpc)');

/** Every file under `dir`, but not Python's __pycache__ (running the client writes it). */
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === '__pycache__') return [];
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

/**
 * Generated TypeScript without the header line naming the protoc version (any
 * protoc makes the same code); any other file (the descriptor set) byte for byte.
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

test('clients/python holds what scripts/python-stubs.sh generates from proto/, byte for byte (run it and commit the result if this fails)', { skip: skipWithoutPeer(noPythonPlugin) }, () => {
  requirePeer(noPythonPlugin);
  const out = mkdtempSync(join(tmpdir(), 'gentune-py-gen-'));
  try {
    execFileSync(join(ROOT, 'scripts/python-stubs.sh'), [out], { stdio: 'pipe' });
    const fresh = files(out).map((f) => relative(out, f)).sort();
    // The script writes only the packages; README.md and example.py beside them are by hand.
    const committed = ['gentune', 'health'].flatMap((pkg) => files(join(PYTHON_CLIENT, pkg))).map((f) => relative(PYTHON_CLIENT, f)).sort();
    assert.deepEqual(committed, fresh, 'the set of generated files differs');
    for (const f of fresh) assert.ok(readFileSync(join(PYTHON_CLIENT, f)).equals(readFileSync(join(out, f))), `clients/python/${f} is stale`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
