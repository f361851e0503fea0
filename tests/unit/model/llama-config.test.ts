import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgument, NotFound, ResourceExhausted } from '../../../src/common/errors.js';
import { configFromHf, hfTensorShapes, type LlamaConfig } from '../../../src/model/gpt-config.js';
import { assertWeightsFit, parameterCount, residentWeightBytes, WASM_HEAP_BYTES } from '../../../src/model/gpt-weights.js';
import { ropeInverseFrequencies } from '../../../src/model/rotary.js';
import { GptModel } from '../../../src/model/gpt-model.js';
import { disposeAdapter } from '../../../src/model/adapter.js';
import { initLastLayersAdapter, initLoraAdapter } from '../../../src/model/adapter-init.js';
import { createTrainable } from '../../../src/training/trainable.js';
import { loadAdapter } from '../../../src/model/checkpoint/peft-adapter.js';
import { disposeWeights, weightsFromHost } from '../../../src/model/gpt-weights.js';
import { testBackend } from '../../helpers/tiny-model.js';
import { LLAMA3_LIKE, llamaConfig, llamaTensors, QWEN2_LIKE, QWEN3_LIKE, SMOLLM2_LIKE, type HfConfigJson } from '../../helpers/llama-model.js';

before(async () => {
  await testBackend();
});

const parse = (json: HfConfigJson) => configFromHf(json, 'config.json');

function rejects(json: HfConfigJson, message: string): void {
  assert.throws(
    () => parse(json),
    (err: unknown) => {
      assert.ok(err instanceof InvalidArgument, `expected InvalidArgument, got ${String(err)}`);
      assert.ok(err.message.includes(message), `"${err.message}" should include "${message}"`);
      return true;
    },
  );
}

test('config.json of each family parses with transformers\' defaults and switches', () => {
  assert.deepEqual(parse(SMOLLM2_LIKE), {
    family: 'llama',
    modelType: 'llama',
    nEmbd: 576,
    nLayer: 2,
    nHead: 9,
    nPositions: 8192,
    vocabSize: 257,
    nKvHead: 3,
    headDim: 64,
    nInner: 1536,
    rmsNormEps: 1e-5,
    rope: { theta: 100000, scaling: { type: 'default' } },
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    qkNorm: false,
    tieWordEmbeddings: true,
  } satisfies LlamaConfig);
  const qwen3 = llamaConfig(QWEN3_LIKE);
  assert.deepEqual([qwen3.headDim, qwen3.nHead * qwen3.headDim, qwen3.nEmbd, qwen3.qkNorm, qwen3.qkvBias], [64, 256, 128, true, false]);
  assert.deepEqual(llamaConfig({ ...QWEN3_LIKE, head_dim: undefined }).headDim, 128, 'Qwen3Config: head_dim defaults to 128');
  assert.deepEqual(llamaConfig({ ...QWEN3_LIKE, attention_bias: true }).oBias, true);
  const qwen2 = llamaConfig(QWEN2_LIKE);
  assert.deepEqual([qwen2.qkvBias, qwen2.oBias, qwen2.rope.scaling], [true, false, { type: 'linear', factor: 4 }], 'Qwen2: q/k/v bias always, o never');
  const llama3 = llamaConfig(LLAMA3_LIKE);
  assert.deepEqual(llama3.rope, {
    theta: 500000,
    scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 },
  });
  assert.equal(llama3.tieWordEmbeddings, false);
  assert.ok(hfTensorShapes(llama3).has('lm_head.weight') && !hfTensorShapes(qwen3).has('lm_head.weight'));
  // Defaults: kv heads = heads, eps 1e-6, theta 10000, untied; Mistral ignores attention_bias as MistralAttention does.
  const minimal = { model_type: 'mistral', hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4, intermediate_size: 64, vocab_size: 10, max_position_embeddings: 128 };
  const mistral = llamaConfig({ ...minimal, attention_bias: true, sliding_window: null });
  assert.deepEqual(
    [mistral.nKvHead, mistral.headDim, mistral.rmsNormEps, mistral.rope.theta, mistral.tieWordEmbeddings, mistral.qkvBias, mistral.oBias],
    [4, 8, 1e-6, 10000, false, false, false],
  );
  // A window as long as the context, and Qwen's window switched off, never mask anything.
  assert.equal(llamaConfig({ ...minimal, sliding_window: 128 }).family, 'llama');
  assert.equal(llamaConfig({ ...QWEN2_LIKE, use_sliding_window: false, sliding_window: 16 }).family, 'llama');
  assert.equal(llamaConfig({ ...QWEN3_LIKE, layer_types: ['full_attention', 'full_attention'] }).family, 'llama');
  // transformers 5's rope_parameters, and the llama rope type's old key.
  assert.deepEqual(llamaConfig({ ...SMOLLM2_LIKE, rope_theta: undefined, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 5000 } }).rope, {
    theta: 5000,
    scaling: { type: 'linear', factor: 2 },
  });
  // GPT-2 configs parse as before, with or without model_type.
  const gpt2 = { n_embd: 8, n_layer: 1, n_head: 2, n_positions: 16, vocab_size: 12 };
  assert.deepEqual(parse(gpt2), parse({ ...gpt2, model_type: 'gpt2' }));
  assert.equal(parse(gpt2).family, undefined);
});

test('what the decoder does not implement fails at load naming the key and value', () => {
  const mistral = { model_type: 'mistral', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, vocab_size: 10, max_position_embeddings: 32768 };
  rejects({ ...mistral, sliding_window: 4096 }, '`sliding_window` 4096: sliding-window attention shorter than `max_position_embeddings` is not implemented');
  rejects({ ...QWEN2_LIKE, use_sliding_window: true, sliding_window: 4096, max_window_layers: 1 }, '`use_sliding_window` true: sliding-window attention is not implemented');
  rejects({ ...QWEN3_LIKE, layer_types: ['full_attention', 'sliding_attention'] }, '`layer_types` ["full_attention","sliding_attention"]');
  rejects({ ...SMOLLM2_LIKE, hidden_act: 'gelu' }, '`hidden_act` must be silu (the SwiGLU MLP), got "gelu"');
  rejects({ ...SMOLLM2_LIKE, rope_scaling: { rope_type: 'yarn', factor: 4 } }, '`rope_scaling.rope_type` "yarn" is not implemented (supported: default, linear, llama3)');
  rejects({ ...SMOLLM2_LIKE, rope_scaling: { type: 'dynamic', factor: 2 } }, '`rope_scaling.type` "dynamic" is not implemented');
  rejects({ ...LLAMA3_LIKE, rope_scaling: { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 64 } }, '`rope_scaling.low_freq_factor` must be a number');
  rejects({ ...SMOLLM2_LIKE, partial_rotary_factor: 0.5 }, '`partial_rotary_factor` 0.5: rotating part of each head is not implemented');
  rejects({ ...QWEN3_LIKE, num_experts: 64 }, '`num_experts` 64: mixture of experts is not implemented');
  rejects({ ...SMOLLM2_LIKE, model_type: 'mixtral' }, '`model_type` must be one of gpt2, llama, mistral, qwen2, qwen3, got "mixtral"');
  rejects({ ...SMOLLM2_LIKE, num_key_value_heads: 2 }, '`num_attention_heads` (9) must be a multiple of `num_key_value_heads` (2)');
  rejects({ ...SMOLLM2_LIKE, hidden_size: 580 }, '`hidden_size` (580) must be divisible by `num_attention_heads` (9)');
  rejects({ ...SMOLLM2_LIKE, rms_norm_eps: 0 }, '`rms_norm_eps` must be > 0, got 0');
  rejects({ ...SMOLLM2_LIKE, tie_word_embeddings: 'yes' }, '`tie_word_embeddings` must be true or false');
  rejects({ ...SMOLLM2_LIKE, max_position_embeddings: undefined }, '`max_position_embeddings` must be a positive integer');
});

test('rope frequencies: llama3 keeps high frequencies, stretches low ones by `factor` and blends between; linear divides all', () => {
  const plain = ropeInverseFrequencies(llamaConfig({ ...LLAMA3_LIKE, rope_scaling: null }));
  const scaled = ropeInverseFrequencies(llamaConfig(LLAMA3_LIKE));
  // head_dim 16, theta 5e5: wavelengths 2 pi / inv = 6.3, 33, 170, ...; original context 64 / high 4 = 16, / low 1 = 64.
  assert.equal(scaled[0], plain[0], 'wavelength 6.3 < 16: kept');
  assert.ok(scaled[1] < plain[1] && scaled[1] > plain[1] / 8, 'wavelength 33 in [16, 64]: blended');
  for (let j = 2; j < 8; j++) assert.equal(scaled[j], Math.fround(plain[j] / 8), `wavelength > 64: stretched (${j})`);
  const linear = ropeInverseFrequencies(llamaConfig(QWEN2_LIKE));
  const unscaled = ropeInverseFrequencies(llamaConfig({ ...QWEN2_LIKE, rope_scaling: null }));
  linear.forEach((x, j) => assert.equal(x, Math.fround(unscaled[j] / 4)));
});

test('a model too large for the wasm heap fails at load with its size and the limit, before its weights are read', async () => {
  // Llama-3.1-8B's shape: 8.0e9 parameters, 32 GB as float32.
  const big = { ...LLAMA3_LIKE, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256 };
  const config = parse(big);
  assert.equal(parameterCount(config), 8_030_261_248);
  assert.ok(residentWeightBytes(config) > WASM_HEAP_BYTES);
  const dir = await mkdtemp(join(tmpdir(), 'gentune-llama-big-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(big)); // no weights, no tokenizer: never reached
  await assert.rejects(GptModel.load(dir), (err: unknown) => {
    assert.ok(err instanceof ResourceExhausted, String(err));
    assert.ok(err.message.startsWith(join(dir, 'config.json')), err.message);
    assert.match(err.message, /29\.92 GiB as float32 \(8030261248 parameters\), more than the wasm backend's 4\.00 GiB heap/);
    return true;
  });
  await rm(dir, { recursive: true });
  assert.doesNotThrow(() => assertWeightsFit(config, 'cpu'), 'the limit is the wasm heap only');
  assert.doesNotThrow(() => assertWeightsFit(llamaConfig(SMOLLM2_LIKE)));
});

test('fine-tuning, LoRA, last_layers and adapter files take a Llama-family model', async () => {
  const config = llamaConfig(QWEN2_LIKE);
  const before = tf.memory().numTensors;
  const weights = weightsFromHost(config, llamaTensors(QWEN2_LIKE, 1));
  createTrainable(config, weights, { kind: 'lora', r: 2, alpha: 4, dropout: 0 }, { seed: 1 }).dispose();
  disposeAdapter(initLastLayersAdapter(weights, 1));
  const lora = { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['self_attn.q_proj' as const], useRslora: false };
  disposeAdapter(initLoraAdapter(config, lora, { seed: 1 }));
  await assert.rejects(loadAdapter('/nonexistent', config), NotFound);
  disposeWeights(weights);
  assert.equal(tf.memory().numTensors, before);
});
