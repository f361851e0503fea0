import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GentuneClient } from '../../src/client/gentune-client.js';
import { FinishReason } from '../../src/gen/gentune/v1/generate.js';
import { longGeneration, LONG_MAX_NEW_TOKENS, makeFixtureModel, removeFixtureModel } from './helpers/fixture-model.js';

const FIXTURE = fileURLToPath(new URL('./helpers/serve-fixture.ts', import.meta.url));
const ADAPTER_MEMORY = 3 * 1024 * 1024;

let model: string;
let dataDir: string;
before(async () => {
  model = await makeFixtureModel();
  dataDir = mkdtempSync(join(tmpdir(), 'gentune-serve-'));
});
after(() => {
  removeFixtureModel(model);
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts the fixture; resolves with the child, its address and its log lines so far (kept up to date). */
async function startServe(graceMs: number) {
  const env = { ...process.env, GENTUNE_MAX_NEW_TOKENS: String(LONG_MAX_NEW_TOKENS), GENTUNE_ADAPTER_MEMORY: String(ADAPTER_MEMORY) };
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, model, dataDir, String(graceMs)], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const logs: { msg: string; address?: string; adapterBudgetBytes?: number }[] = [];
  const lines = createInterface({ input: child.stdout });
  const address = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      const entry = JSON.parse(line);
      logs.push(entry);
      if (entry.msg === 'gRPC server listening') resolve(entry.address);
    });
    child.once('exit', (code) => reject(new Error(`serve exited early with ${code}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, address, logs, exited };
}

test('SIGTERM drains: streams in flight finish, new calls are refused, the engine drains, the process exits 0', async () => {
  const { child, address, logs, exited } = await startServe(5000);
  const client = new GentuneClient(address);
  try {
    await client.waitUntilServing(5000, 20);
    const stream = client.generateText(longGeneration(60)); // ~150 ms
    await new Promise((resolve) => setTimeout(resolve, 50));
    child.kill('SIGTERM');
    const out = await stream;
    assert.equal(out.finishReason, FinishReason.FINISH_REASON_LENGTH);
    assert.equal(out.tokenIds.length, 60);
    assert.equal(await exited, 0);
    const messages = logs.map((l) => l.msg);
    for (const m of ['draining', 'gRPC server stopped', 'engine drained', 'stopped']) assert.ok(messages.includes(m), `missing log "${m}" in ${messages.join(' | ')}`);
    // --adapter-memory (here from GENTUNE_ADAPTER_MEMORY) reaches createEngine.
    assert.equal(logs.find((l) => l.msg === 'engine options')?.adapterBudgetBytes, ADAPTER_MEMORY);
  } finally {
    client.close();
    child.kill('SIGKILL');
  }
});

test('after the grace period, SIGTERM cancels long streams (finish_reason CANCELLED) and still exits 0', async () => {
  const { child, address, exited } = await startServe(200);
  const client = new GentuneClient(address);
  try {
    await client.waitUntilServing(5000, 20);
    const stream = client.generateText(longGeneration()); // ~1 s
    await new Promise((resolve) => setTimeout(resolve, 50));
    const sent = Date.now();
    child.kill('SIGTERM');
    const out = await stream;
    assert.equal(out.finishReason, FinishReason.FINISH_REASON_CANCELLED);
    assert.ok(out.tokenIds.length < LONG_MAX_NEW_TOKENS);
    assert.equal(await exited, 0);
    assert.ok(Date.now() - sent < 1500, 'exits soon after the grace period');
  } finally {
    client.close();
    child.kill('SIGKILL');
  }
});
