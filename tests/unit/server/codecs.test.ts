import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../../src/engine/config.js';
import type { Engine, FineTuneSpec, JobEventBody, ServerInfo } from '../../../src/engine/engine-api.js';
import { FineTuneEvent, FineTuneRequest } from '../../../src/gen/gentune/v1/fine_tune.js';
import { FinishReason, GenerateRequest, GenerateResponse } from '../../../src/gen/gentune/v1/generate.js';
import { GetServerInfoResponse } from '../../../src/gen/gentune/v1/server_info.js';
import { decodeFineTuneRequest, encodeFineTuneSpec, encodeJobEvent } from '../../../src/server/fine-tune-codec.js';
import { decodeGenerateRequest, encodeChunk } from '../../../src/server/generate-handler.js';
import type { RpcDeps } from '../../../src/server/rpc.js';
import { encodeServerInfo } from '../../../src/server/server-info-handler.js';

const engine = {
  info: () => ({ model: { nLayer: 12, nPositions: 1024, vocabSize: 50257 } }),
} as unknown as Engine;
const deps = { engine, config: defaultConfig() } as unknown as RpcDeps;

/** Encodes to wire bytes and back, as the transport does. */
function wire<T>(codec: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, m: T): T {
  return codec.decode(codec.encode(m).finish());
}

test('a FineTuneSpec survives encode -> wire -> decode', () => {
  const specs: FineTuneSpec[] = [
    {
      baseModel: '',
      adapter: 'support',
      training: { datasetId: 'ds-1' },
      validationDatasetId: 'ds-2',
      method: { kind: 'lora', r: 16, loraAlpha: 32, loraDropout: 0.25, targetModules: ['c_attn', 'c_fc'] },
      hyperparameters: { epochs: 2, batchSize: 4, learningRate: 0.001, lrScheduler: 'linear', seed: 1234567890123, completionOnlyLoss: false, validationSplit: 0.25, earlyStoppingPatience: 2 },
    },
    {
      baseModel: 'gentune-mini',
      adapter: 'poet',
      training: { examples: [{ prompt: 'a', completion: 'b' }, { messages: [{ role: 'user', content: 'u' }, { role: 'assistant', content: 'v' }] }, { text: 't' }] },
      method: { kind: 'last_layers', numLayers: 2 },
      hyperparameters: { maxSteps: 10, warmupSteps: 2 },
    },
  ];
  for (const spec of specs) {
    const back = decodeFineTuneRequest(wire(FineTuneRequest, encodeFineTuneSpec(spec)), deps);
    const defined = (o: object) => JSON.parse(JSON.stringify(o));
    assert.deepEqual(defined(back), defined(spec));
  }
});

test('exclusive fields that cannot be oneofs (a repeated field is never in one) both reach the server and are refused, naming both', () => {
  const both = wire(GenerateRequest, GenerateRequest.fromPartial({ prompt: 'x', promptTokenIds: [1, 2] }));
  assert.equal(both.prompt, 'x', 'the wire carries both');
  assert.deepEqual(both.promptTokenIds, [1, 2]);
  assert.throws(() => decodeGenerateRequest(both, deps, 'r'), /exactly one of `prompt`, `prompt_token_ids`, `messages` must be set, got `prompt` and `prompt_token_ids`/);
  const data = wire(FineTuneRequest, FineTuneRequest.fromPartial({ adapter: 'a', datasetId: 'ds-1', examples: [{ text: 't' }] }));
  assert.throws(() => decodeFineTuneRequest(data, deps), /exactly one of `dataset_id` and `examples` must be set, got `dataset_id` and `examples`/);
});

test('every job event kind encodes into the FineTuneEvent oneof', () => {
  const bodies: JobEventBody[] = [
    { type: 'queued', position: 2 },
    { type: 'started', totalSteps: 10, numTrainExamples: 80, numValidationExamples: 20, trainableParameters: 4096 },
    // A job resumed after a restart says from which step.
    { type: 'started', totalSteps: 10, numTrainExamples: 80, numValidationExamples: 20, trainableParameters: 4096, resumedFromStep: 4 },
    { type: 'progress', step: 1, totalSteps: 10, epoch: 0.1, loss: 2.5, learningRate: 1e-4, gradNorm: 0.9, tokensPerSecond: 1500, etaSeconds: 9 },
    { type: 'evaluation', step: 5, evalLoss: 2, perplexity: Math.exp(2) },
    { type: 'checkpoint', step: 5 },
    { type: 'succeeded', adapter: 'a', version: 3, metrics: { trainLoss: 1, evalLoss: 1.2, perplexity: 3.3, steps: 10, tokens: 640, trainSeconds: 4 } },
    { type: 'failed', reason: 'out of memory' },
    { type: 'cancelled' },
  ];
  for (const [i, body] of bodies.entries()) {
    const e = wire(FineTuneEvent, encodeJobEvent({ jobId: 'ft-1', sequence: i, timeMs: 1_700_000_000_000, ...body }));
    assert.equal(e.jobId, 'ft-1');
    assert.equal(e.sequence, i);
    assert.equal(e.time?.getTime(), 1_700_000_000_000);
    assert.equal(e.event?.$case, body.type);
    const { type: _t, ...fields } = body;
    assert.deepEqual(JSON.parse(JSON.stringify(e.event?.value)), JSON.parse(JSON.stringify(fields)));
  }
});

test('generate chunks: deltas carry no finish; the last carries reason, usage and adapter', () => {
  const delta = wire(GenerateResponse, encodeChunk({ text: ' hi', tokenIds: [42] }));
  assert.equal(delta.finishReason, FinishReason.FINISH_REASON_UNSPECIFIED);
  assert.equal(delta.usage, undefined);
  const usage = { promptTokens: 3, generatedTokens: 1, timeToFirstTokenMs: 5, totalMs: 6, queueMs: 0.5 };
  const reasons = { length: FinishReason.FINISH_REASON_LENGTH, eos: FinishReason.FINISH_REASON_EOS, stop_sequence: FinishReason.FINISH_REASON_STOP_SEQUENCE, cancelled: FinishReason.FINISH_REASON_CANCELLED } as const;
  for (const [reason, code] of Object.entries(reasons)) {
    const last = wire(GenerateResponse, encodeChunk({ text: '', tokenIds: [], finish: { reason: reason as keyof typeof reasons, usage, adapter: 'a@1' } }));
    assert.equal(last.finishReason, code);
    assert.deepEqual(last.usage, usage);
    assert.equal(last.adapter, 'a@1');
  }
});

test('server info: device, webgpu adapter and memory survive encode -> wire -> decode (GPU byte counts only where reported)', () => {
  const limits = { ...defaultConfig().limits, maxLineBytes: 1 << 20 };
  const base: ServerInfo = {
    version: '1.0.0',
    model: { name: 'm', nLayer: 1, nHead: 1, nEmbd: 8, nPositions: 16, vocabSize: 10, numParameters: 100, eosTokenId: 9, architecture: 'llama', nKvHead: 1, eosTokenIds: [9, 7], hasChatTemplate: true, maxTokenBytes: 4 },
    backend: 'webgpu',
    device: 'mesa software: llvmpipe, WebGPU via Dawn',
    gpuAdapter: { vendor: 'mesa', architecture: 'software', device: '', description: 'llvmpipe', software: true },
    deviceMemory: { numTensors: 3, numDataBuffers: 3, numBytes: 1200, numBytesInGPU: 1024, numBytesAllocatedInGPU: 4096 },
    limits,
    ready: true,
    startedAtMs: 1_700_000_000_000,
  };
  const gpu = GetServerInfoResponse.decode(GetServerInfoResponse.encode(encodeServerInfo(base)).finish());
  assert.equal(gpu.device, base.device);
  assert.deepEqual(gpu.gpuAdapter, base.gpuAdapter);
  assert.deepEqual(gpu.deviceMemory, { numTensors: 3, numDataBuffers: 3, numBytes: 1200, numBytesInGpu: 1024, numBytesAllocatedInGpu: 4096, unreliable: false });
  assert.equal(gpu.limits?.maxConcurrentJobs, limits.maxConcurrentJobs);
  const { architecture, nKvHead, eosTokenIds, hasChatTemplate } = gpu.model!;
  assert.deepEqual({ architecture, nKvHead, eosTokenIds, hasChatTemplate }, { architecture: 'llama', nKvHead: 1, eosTokenIds: [9, 7], hasChatTemplate: true });

  const wasm = GetServerInfoResponse.decode(
    GetServerInfoResponse.encode(
      encodeServerInfo({ ...base, backend: 'wasm', device: 'wasm simd, 1 thread(s)', gpuAdapter: undefined, deviceMemory: { numTensors: 3, numDataBuffers: 3, numBytes: 1200 } }),
    ).finish(),
  );
  assert.equal(wasm.gpuAdapter, undefined);
  assert.equal(wasm.deviceMemory?.numBytes, 1200);
  assert.equal(wasm.deviceMemory?.numBytesInGpu, undefined, 'unset, not 0, where the backend has no GPU buffers');
});
