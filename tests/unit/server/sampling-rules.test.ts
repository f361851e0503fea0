/**
 * One rule set for sampling (sampling-rules.ts), two dialects: the gRPC
 * SamplingParams through decodeSampling, and OpenAI's field names. The
 * ranges and limit labels are the same; the names and the temperature
 * ceiling differ.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../../src/engine/config.js';
import { decodeSampling } from '../../../src/server/convert.js';
import { checkSampling, GRPC_SAMPLING } from '../../../src/server/sampling-rules.js';

const limits = { ...defaultConfig().limits, maxNewTokens: 32 };
const defaults = { maxNewTokens: 64, temperature: 1 };
const openai = { names: { ...GRPC_SAMPLING.names, maxNewTokens: 'max_tokens' }, maxTemperature: 2 };

test('gRPC presence_penalty / frequency_penalty decode, default 0, range -2..2', () => {
  const s = decodeSampling({ presencePenalty: 0.5, frequencyPenalty: -2, stop: [] }, limits, defaults, 100);
  assert.equal(s.presencePenalty, 0.5);
  assert.equal(s.frequencyPenalty, -2);
  assert.equal(decodeSampling(undefined, limits, defaults, 100).presencePenalty, 0);
  assert.equal(decodeSampling(undefined, limits, defaults, 100).maxNewTokens, 32, 'the default is capped by the limit');
  assert.throws(() => decodeSampling({ frequencyPenalty: 2.5, stop: [] }, limits, defaults, 100), /`frequency_penalty` must be >= -2 and <= 2, got 2\.5/);
});

test('the same limit, named in each dialect\'s words', () => {
  assert.throws(() => decodeSampling({ maxNewTokens: 33, stop: [] }, limits, defaults, 100), /`max_new_tokens` must be <= limits\.max_new_tokens \(--max-new-tokens\) 32, got 33/);
  assert.throws(() => checkSampling({ maxNewTokens: 33 }, openai, limits, defaults, 100), /`max_tokens` must be <= limits\.max_new_tokens \(--max-new-tokens\) 32, got 33/);
  assert.equal(checkSampling({ temperature: 50 }, GRPC_SAMPLING, limits, defaults, 100).temperature, 50);
  assert.throws(() => checkSampling({ temperature: 50 }, openai, limits, defaults, 100), /`temperature` must be >= 0 and <= 2, got 50/);
});
