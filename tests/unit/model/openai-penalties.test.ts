/**
 * OpenAI's presence and frequency penalties (logits-processors.ts) against a
 * direct computation of OpenAI's formula, and through GenerationSequence,
 * where only generated tokens may count, never the prompt's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrequencyPenaltyProcessor, PresencePenaltyProcessor } from '../../../src/model/generation/logits-processors.js';
import { GenerationSequence } from '../../../src/model/generation/generation-sequence.js';
import { logitsProcessors } from '../../../src/model/generation/sampling-params.js';
import { DEFAULT_SAMPLING } from '../../helpers/default-sampling.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';

/** OpenAI's definition, written out: logit[j] -= count[j] * frequency + (count[j] > 0) * presence. */
function expected(logits: number[], generated: number[], presence: number, frequency: number): number[] {
  return logits.map((v, j) => {
    const count = generated.filter((id) => id === j).length;
    return Math.fround(Math.fround(v - (count > 0 ? presence : 0)) - count * frequency);
  });
}

test('presence then frequency penalty equal OpenAI\'s formula over the generated ids', () => {
  const logits = [0.5, -1, 2, 3.25, 0, 7];
  const prompt = [5, 5, 1];
  const generated = [2, 2, 2, 4, 0];
  for (const [presence, frequency] of [[0.7, 0], [0, 0.3], [1.5, -0.4], [-2, 2]] as const) {
    const row = Float32Array.from(logits);
    const context = [...prompt, ...generated];
    new PresencePenaltyProcessor(presence, prompt.length).process(row, context);
    new FrequencyPenaltyProcessor(frequency, prompt.length).process(row, context);
    assert.deepEqual(Array.from(row), expected(logits, generated, presence, frequency), `presence ${presence}, frequency ${frequency}`);
  }
});

test('the penalties are wired into logitsProcessors only when non-zero', () => {
  const names = (over: object) => logitsProcessors({ ...DEFAULT_SAMPLING, ...over }, 3).map((p) => p.constructor.name);
  assert.deepEqual(names({}), []);
  assert.deepEqual(names({ presencePenalty: 0.5, frequencyPenalty: -1 }), ['PresencePenaltyProcessor', 'FrequencyPenaltyProcessor']);
});

test('a sequence counts its generated tokens, not its prompt', () => {
  const tokenizer = byteTokenizer();
  const vocab = 256;
  // Token 65 leads by 0.5 and token 66 is next; the prompt repeats 65 a lot.
  const row = () => {
    const r = new Float32Array(vocab);
    r[65] = 1;
    r[66] = 0.5;
    return r;
  };
  const prompt = [65, 65, 65, 65, 10];
  const run = (over: object) => {
    const seq = new GenerationSequence(prompt, { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: 4, stopAtEos: false, ...over }, tokenizer);
    return [0, 1, 2, 3].map(() => seq.accept(row()).tokenId);
  };
  // The prompt's four 65s would push 65 below 66 at the first step if they counted.
  assert.deepEqual(run({ frequencyPenalty: 0.2 }), [65, 65, 65, 66], 'frequency: 65 loses 0.2 per generated copy, so 66 wins after three');
  // Presence: 65 drops to 0.4 once generated, so 66 (0.5) wins; then 66 drops to -0.1 and 65 wins again.
  assert.deepEqual(run({ presencePenalty: 0.6 }), [65, 66, 65, 65]);
});
