import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GentuneClient } from '../../src/client/gentune-client.js';
import { JobState, type FineTuneEvent } from '../../src/gen/gentune/v1/fine_tune.js';
import { FinishReason, type GenerateResponse } from '../../src/gen/gentune/v1/generate.js';
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

/** A streamed generation: `first` resolves with its first message in, `done` with every message. */
function streamed(client: GentuneClient, maxNewTokens?: number): { first: Promise<void>; done: Promise<GenerateResponse[]> } {
  let seen!: () => void;
  const first = new Promise<void>((resolve) => (seen = resolve));
  const done = (async () => {
    const messages: GenerateResponse[] = [];
    for await (const m of client.generate(longGeneration(maxNewTokens))) {
      messages.push(m);
      seen();
    }
    return messages;
  })();
  return { first, done };
}

/** Starts the fixture; resolves with the child, its address and its log lines so far (kept up to date). */
async function startServe(graceMs: number) {
  const env = { ...process.env, GENTUNE_MAX_NEW_TOKENS: String(LONG_MAX_NEW_TOKENS), GENTUNE_ADAPTER_MEMORY: String(ADAPTER_MEMORY) };
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, model, dataDir, String(graceMs)], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const logs: { msg: string; address?: string; adapterBudgetBytes?: number; step?: number; jobId?: string }[] = [];
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
    // SIGTERM once the stream is under way; the 5 s grace period lets it finish.
    const stream = streamed(client, 60);
    await stream.first;
    child.kill('SIGTERM');
    const streamedOut = await stream.done;
    assert.equal(streamedOut.at(-1)?.finishReason, FinishReason.FINISH_REASON_LENGTH);
    assert.equal(streamedOut.flatMap((m) => m.tokenIds).length, 60);
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
  const { child, address, exited } = await startServe(50);
  const client = new GentuneClient(address);
  try {
    await client.waitUntilServing(5000, 20);
    // A real server process decodes at its own speed: the 501-token stream
    // takes ~1 s here (0.4 s on the fastest run seen), 8x the grace period.
    const stream = streamed(client);
    await stream.first;
    const sent = Date.now();
    child.kill('SIGTERM');
    const messages = await stream.done;
    assert.equal(messages.at(-1)?.finishReason, FinishReason.FINISH_REASON_CANCELLED);
    assert.ok(messages.flatMap((m) => m.tokenIds).length < LONG_MAX_NEW_TOKENS);
    assert.equal(await exited, 0);
    assert.ok(Date.now() - sent < 1500, 'exits soon after the grace period');
  } finally {
    client.close();
    child.kill('SIGKILL');
  }
});

test('SIGTERM mid fine-tune: the running job saves a checkpoint and stops, the process exits 0; the next server resumes it from there', async () => {
  const jsonl = ['{"prompt":"Q: 1+1?","completion":" 2"}', '{"prompt":"Q: 2+2?","completion":" 4"}', '{"prompt":"Q: 3+3?","completion":" 6"}'].join('\n') + '\n';
  // The default checkpoint interval (30 s) is far off: the checkpoint is the drain's.
  const first = await startServe(1000);
  const client = new GentuneClient(first.address, { defaultTimeoutMs: 300_000 });
  let jobId = '';
  let stepBefore = 0;
  let ended: unknown;
  try {
    await client.waitUntilServing(5000, 20);
    const dataset = await client.uploadDataset({ name: 'qa' }, Buffer.from(jsonl));
    try {
      for await (const e of client.fineTune({ adapter: 'drained', datasetId: dataset.id, hyperparameters: { maxSteps: 400, batchSize: 2, learningRate: 1e-2, seed: '3' } })) {
        jobId = e.jobId;
        if (e.event?.$case === 'progress') {
          stepBefore = e.event.value.step;
          if (stepBefore === 3) first.child.kill('SIGTERM');
        }
      }
    } catch (err) {
      ended = err;
    }
    // The watch stream is cut once the grace period is over; the job is not finished.
    assert.equal((ended as { code?: number }).code, 14, `UNAVAILABLE, got ${String(ended)}`);
    assert.equal(await first.exited, 0);
    const saved = first.logs.find((l) => l.msg === 'fine-tune job checkpointed for shutdown: it resumes after the restart');
    assert.ok(saved && saved.step! >= stepBefore && saved.jobId === jobId, JSON.stringify(saved));
    assert.ok(existsSync(join(dataDir, 'jobs', jobId, 'checkpoint.safetensors')));
  } finally {
    client.close();
    first.child.kill('SIGKILL');
  }

  const second = await startServe(1000);
  const again = new GentuneClient(second.address, { defaultTimeoutMs: 300_000 });
  try {
    await again.waitUntilServing(5000, 20);
    const events: FineTuneEvent[] = [];
    for await (const e of again.watchFineTune(jobId)) {
      events.push(e);
      if (events.filter((x) => x.event?.$case === 'started').length === 2 && e.event?.$case === 'progress') break;
    }
    const cases = events.map((e) => e.event!.$case);
    // The log: ..., progress, checkpoint (the drain's), started (the resume), progress from the step after the checkpoint.
    assert.deepEqual(cases.slice(-3), ['checkpoint', 'started', 'progress'], cases.join(' '));
    const checkpoint = events.at(-3)!.event;
    const next = events.at(-1)!.event;
    assert.ok(checkpoint?.$case === 'checkpoint' && next?.$case === 'progress' && next.value.step === checkpoint.value.step + 1);
    assert.equal((await again.getFineTuneJob(jobId)).state, JobState.JOB_STATE_RUNNING);
    assert.equal((await again.cancelFineTune(jobId)).state, JobState.JOB_STATE_CANCELLED);
    assert.ok(!existsSync(join(dataDir, 'jobs', jobId, 'checkpoint.safetensors')), 'the checkpoint goes with the job');
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  } finally {
    again.close();
    second.child.kill('SIGKILL');
  }
});
