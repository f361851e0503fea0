import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { FineTuneEvent } from '../../src/gen/gentune/v1/fine_tune.js';
import { FinishReason } from '../../src/gen/gentune/v1/generate.js';
import { FIXTURE_MODEL, FIXTURE_NAME, LONG_MAX_NEW_TOKENS, longGeneration, TEST_BACKEND } from './helpers/fixture-model.js';
import { collect, eventually, rejectsWith, startHarness } from './helpers/harness.js';

const Code = grpc.status;

const pick = ({ nLayer, nHead, nEmbd, nPositions, vocabSize }: typeof FIXTURE_MODEL) => ({ nLayer, nHead, nEmbd, nPositions, vocabSize });

/** Lists services through server reflection (grpc.reflection.v1). */
async function reflectServices(address: string): Promise<{ services: string[]; fileCount: number }> {
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto');
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [root], keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
  try {
    const call = client.ServerReflectionInfo();
    const responses: any[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (r: any) => {
        responses.push(r);
        if (responses.length === 2) call.end();
      });
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.write({ list_services: '*' });
    call.write({ file_containing_symbol: 'gentune.v1.ModelService' });
    await done;
    return {
      services: responses[0].list_services_response.service.map((s: { name: string }) => s.name),
      fileCount: responses[1].file_descriptor_response.file_descriptor_proto.length,
    };
  } finally {
    client.close();
  }
}

describe('server lifecycle', () => {
  test('health is NOT_SERVING until the engine is ready, then SERVING; RPCs are UNAVAILABLE meanwhile', async () => {
    const h = await startHarness({ ready: false });
    try {
      assert.equal(await h.client.checkHealth(''), 'NOT_SERVING');
      assert.equal(await h.client.checkHealth('gentune.v1.ModelService'), 'NOT_SERVING');
      const info = await h.client.getServerInfo();
      assert.equal(info.ready, false);
      await rejectsWith(collect(h.client.generate({ prompt: 'x' })), Code.UNAVAILABLE, /not ready/);
      await rejectsWith(h.client.cancelFineTune('job'), Code.UNAVAILABLE, /not ready/);

      h.engine.ready = true;
      await h.client.waitUntilServing(2000, 20);
      assert.equal(await h.client.checkHealth('gentune.v1.ModelService'), 'SERVING');
      assert.equal((await h.client.getServerInfo()).ready, true);
    } finally {
      await h.close();
    }
  });

  test('idempotent calls retry on UNAVAILABLE until the server is ready', async () => {
    const h = await startHarness({ ready: false, client: { retry: { maxAttempts: 20, initialBackoffMs: 20, maxBackoffMs: 50 } } });
    try {
      setTimeout(() => (h.engine.ready = true), 150);
      assert.deepEqual(await h.client.listDatasets(), []);
    } finally {
      await h.close();
    }
  });

  test('GetServerInfo reports model, backend, limits and version', async () => {
    const h = await startHarness({ limits: { maxNewTokens: 77 } });
    try {
      const info = await h.client.getServerInfo();
      assert.ok(info.version.length > 0);
      assert.equal(info.model?.name, FIXTURE_NAME);
      // The fixture model, as loaded from its folder.
      const { nLayer, nHead, nEmbd, nPositions, vocabSize, eosTokenId } = info.model;
      assert.deepEqual({ nLayer, nHead, nEmbd, nPositions, vocabSize, eosTokenId }, { ...pick(FIXTURE_MODEL), eosTokenId: 256 });
      // A GPT-2 folder without a chat template: gentune's own renders `messages`.
      const { architecture, nKvHead, eosTokenIds, hasChatTemplate } = info.model;
      assert.deepEqual({ architecture, nKvHead, eosTokenIds, hasChatTemplate }, { architecture: 'gpt2', nKvHead: FIXTURE_MODEL.nHead, eosTokenIds: [256], hasChatTemplate: false });
      assert.ok(Number(info.model.numParameters) > 0);
      assert.equal(info.backend, TEST_BACKEND);
      assert.equal(info.limits?.maxNewTokens, 77);
      assert.equal(info.ready, true);
      assert.ok(info.startedAt instanceof Date);
      assert.equal(info.limits?.maxConcurrentJobs, 1, '--max-concurrent-jobs defaults to 1');
      // The device and its memory come from the serving thread, where the model lives.
      if (TEST_BACKEND === 'wasm') assert.match(info.device, /^wasm( simd)?, \d+ thread\(s\)$/);
      else assert.ok(info.device.length > 0, info.device);
      assert.equal(info.gpuAdapter !== undefined, TEST_BACKEND === 'webgpu');
      const m = info.deviceMemory!;
      // At least the fixture model's float32 weights.
      assert.ok(m.numTensors > 0 && m.numBytes >= Number(info.model.numParameters) * 4, JSON.stringify(m));
      assert.equal(m.numBytesInGpu !== undefined, TEST_BACKEND === 'webgpu', 'GPU bytes on webgpu only');
      // Health knows the server ("") and ModelService, nothing else.
      await rejectsWith(h.client.checkHealth('gentune.v1.Nope'), Code.NOT_FOUND);
    } finally {
      await h.close();
    }
  });

  for (const maxConcurrentJobs of [1, 2]) {
    test(`--max-concurrent-jobs ${maxConcurrentJobs}: ${maxConcurrentJobs === 1 ? 'a second job waits queued until the first ends' : 'two jobs train at once'}`, async () => {
      const h = await startHarness({ limits: { maxConcurrentJobs } });
      try {
        assert.equal((await h.client.getServerInfo()).limits?.maxConcurrentJobs, maxConcurrentJobs);
        const examples = [{ prompt: 'Q: 1+1?', completion: ' 2' }, { prompt: 'Q: 2+2?', completion: ' 4' }];
        const times = new Map<string, number>();
        const first = h.client.fineTune({ adapter: 'first', examples, hyperparameters: { maxSteps: 40 } });
        // Submit the second only once the first is in the queue, so the order is known.
        const queued = await first.next();
        assert.equal(queued.value?.event?.$case, 'queued');
        const follow = async (name: string, events: AsyncIterable<FineTuneEvent>) => {
          for await (const e of events) times.set(`${name} ${e.event?.$case}`, e.time!.getTime());
        };
        await Promise.all([
          follow('first', first),
          follow('second', h.client.fineTune({ adapter: 'second', examples, hyperparameters: { maxSteps: 40 } })),
        ]);
        const at = (key: string) => {
          assert.ok(times.has(key), `${key}: ${[...times.keys()].join(', ')}`);
          return times.get(key)!;
        };
        if (maxConcurrentJobs === 1) {
          assert.ok(at('second started') >= at('first succeeded'), 'the second job started only after the first ended');
        } else {
          assert.ok(at('second started') < at('first succeeded'), 'the second job started while the first was running');
          assert.ok(at('first started') < at('second succeeded'));
        }
      } finally {
        await h.close();
      }
    });
  }

  test('reflection lists ModelService and Health, and serves their descriptors', async () => {
    const h = await startHarness();
    try {
      const { services, fileCount } = await reflectServices(h.address);
      assert.ok(services.includes('gentune.v1.ModelService'), services.join(','));
      assert.ok(services.includes('grpc.health.v1.Health'), services.join(','));
      assert.ok(fileCount >= 1);
    } finally {
      await h.close();
    }
  });

  test('streams beyond --max-concurrent-streams are RESOURCE_EXHAUSTED', async () => {
    const h = await startHarness({ limits: { maxConcurrentStreams: 2, maxNewTokens: LONG_MAX_NEW_TOKENS } });
    try {
      const ac = new AbortController();
      // Held open after a chunk: the two streams hold their slots until aborted, however fast the model.
      h.engine.holdAfterChunks = 1;
      const open = [1, 2].map(() => collect(h.client.generate(longGeneration(), { signal: ac.signal })).catch(() => undefined));
      await eventually(() => h.engine.generateSignals.length === 2, 5000, 'two streams');
      h.engine.holdAfterChunks = undefined;
      await rejectsWith(collect(h.client.generate({ prompt: 'x' })), Code.RESOURCE_EXHAUSTED, /--max-concurrent-streams/);
      await rejectsWith(collect(h.client.watchFineTune('ft-any')), Code.RESOURCE_EXHAUSTED, /--max-concurrent-streams/);
      ac.abort();
      await Promise.all(open);
      // The slots are free again once the server has seen the streams end.
      const deadline = Date.now() + 2000;
      for (;;) {
        const out = await h.client.generateText(longGeneration(2)).catch((err: { code?: number }) => err);
        if ('tokenIds' in out) break;
        assert.ok(out.code === Code.RESOURCE_EXHAUSTED && Date.now() < deadline, `the slots stay taken: ${String(out)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await h.close();
    }
  });

  test('shutdown lets short streams finish, refuses new calls, and cancels long ones after the grace period', async () => {
    const h = await startHarness({ limits: { maxNewTokens: LONG_MAX_NEW_TOKENS } });
    await h.client.generateText(longGeneration(2)); // warm up: the first forward passes of an engine are slow
    const short = h.client.generateText(longGeneration(5));
    await eventually(() => h.engine.generateSignals.length === 2, 5000, 'the short stream');
    // The long stream is held open after 2 chunks (SpyEngine.holdAfterChunks),
    // so it outlasts the grace period however fast the model decodes.
    h.engine.holdAfterChunks = 2;
    const received: unknown[] = [];
    const long = (async () => {
      for await (const m of h.client.generate(longGeneration())) received.push(m);
    })();
    await eventually(() => received.length === 2, 5000, 'the long stream');
    h.engine.holdAfterChunks = undefined;
    const started = Date.now();
    const shutdown = h.server.shutdown(500);
    await rejectsWith(h.client.getServerInfo({ timeoutMs: 500 }), Code.UNAVAILABLE);
    assert.equal((await short).finishReason, FinishReason.FINISH_REASON_LENGTH);
    // Cancelled by the server when the grace period ends, with the reason.
    await rejectsWith(long, Code.UNAVAILABLE, /shutting down/);
    assert.ok(Date.now() - started >= 450, 'not before the grace period is over');
    assert.equal(received.length, 2);
    await shutdown;
    assert.ok(Date.now() - started < 2000);
    assert.match(String(h.engine.generateSignals[2]!.reason?.message), /shutting down/);
    await h.close();
  });
});
