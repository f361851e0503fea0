import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GentuneClient } from '../../src/client/gentune-client.js';
import { FinishReason } from '../../src/gen/gentune/v1/generate.js';

const FIXTURE = fileURLToPath(new URL('./helpers/serve-fixture.ts', import.meta.url));

/** Starts the fixture; resolves with the child, its address and its log lines so far (kept up to date). */
async function startServe(graceMs: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, String(graceMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const logs: { msg: string; address?: string }[] = [];
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
    const stream = client.generateText({ prompt: 'x', sampling: { maxNewTokens: 60 } }); // ~300 ms
    await new Promise((resolve) => setTimeout(resolve, 50));
    child.kill('SIGTERM');
    const out = await stream;
    assert.equal(out.finishReason, FinishReason.FINISH_REASON_LENGTH);
    assert.equal(out.tokenIds.length, 60);
    assert.equal(await exited, 0);
    const messages = logs.map((l) => l.msg);
    for (const m of ['draining', 'gRPC server stopped', 'stopped']) assert.ok(messages.includes(m), `missing log "${m}" in ${messages.join(' | ')}`);
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
    const stream = client.generateText({ prompt: 'x', sampling: { maxNewTokens: 256 } }); // ~1.3 s
    await new Promise((resolve) => setTimeout(resolve, 50));
    const sent = Date.now();
    child.kill('SIGTERM');
    const out = await stream;
    assert.equal(out.finishReason, FinishReason.FINISH_REASON_CANCELLED);
    assert.ok(out.tokenIds.length < 256);
    assert.equal(await exited, 0);
    assert.ok(Date.now() - sent < 1500, 'exits soon after the grace period');
  } finally {
    client.close();
    child.kill('SIGKILL');
  }
});
