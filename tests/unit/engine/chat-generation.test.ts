/**
 * Generate with `messages` in the engine: the conversation is rendered with
 * the model's chat template, and the template's end-of-turn token ends the
 * generation (finish `eos`), while the same prompt given as text runs on past
 * that token. The end-of-turn id is made the one the seeded model greedily
 * produces first, so the test does not depend on what a random model says.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdapterRegistry } from '../../../src/engine/adapter-registry.js';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { defaultConfig } from '../../../src/engine/config.js';
import { GenerationService } from '../../../src/engine/generation-service.js';
import { GptModel } from '../../../src/model/gpt-model.js';
import { disposeWeights } from '../../../src/model/gpt-weights.js';
import { ChatTemplate, FALLBACK_CHAT_TEMPLATE } from '../../../src/model/tokenizer/chat-template.js';
import { byteTokenizer } from '../../helpers/byte-tokenizer.js';
import { testBackend, TINY, tinyWeights } from '../../helpers/tiny-model.js';
import { genParams, greedy, silentLog, summary, tempDir } from './engine-fixture.js';

const tokenizer = byteTokenizer();
const weights = tinyWeights(TINY, 3);
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];
let registry: AdapterRegistry;

before(async () => {
  await testBackend();
  registry = new AdapterRegistry(await AdapterStore.open(await tempDir(), TINY, silentLog), silentLog);
});
after(() => {
  registry.dispose();
  disposeWeights(weights);
});

async function generate(model: GptModel, prompt: Parameters<GenerationService['generate']>[0]['prompt'], maxNewTokens: number) {
  const service = new GenerationService(model, registry, defaultConfig().limits, silentLog);
  const chunks = [];
  for await (const c of service.generate(genParams(prompt, { sampling: greedy(maxNewTokens) }), new AbortController().signal)) chunks.push(c);
  return summary(chunks);
}

test('messages end at the chat template\'s end-of-turn token; the same prompt as text runs on past it', async () => {
  // gentune's own template (the model has none): find the first greedy token after its generation prompt.
  const plain = new GptModel(TINY, weights, tokenizer, 'tiny');
  const rendered = plain.chat.render(MESSAGES, { addGenerationPrompt: true });
  assert.equal(rendered, '<|user|>\nhi\n<|assistant|>\n');
  const free = await generate(plain, { messages: MESSAGES }, 6);
  const endOfTurn = free.ids[0]!;
  assert.notEqual(endOfTurn, tokenizer.eosId, 'the seed must not start with EOS');
  assert.equal(free.last.finish?.reason, 'length');

  // The same template text, now writing <|im_end|>, which the vocabulary lookup maps to that token.
  const lookup = { eosId: tokenizer.eosId, tokenToId: (t: string) => (t === '<|im_end|>' ? endOfTurn : undefined), idToToken: () => undefined };
  const chat = new ChatTemplate(`${FALLBACK_CHAT_TEMPLATE}{# turns end with <|im_end|> #}`, 'test template', { eos_token: '<|endoftext|>' }, lookup);
  assert.deepEqual(chat.endOfTurnIds, [endOfTurn, tokenizer.eosId]);
  const withTurns = new GptModel(TINY, weights, tokenizer, 'tiny', undefined, chat);
  const ended = await generate(withTurns, { messages: MESSAGES }, 6);
  assert.equal(ended.last.finish?.reason, 'eos');
  assert.equal(ended.text, '', 'the end-of-turn token is not text');

  // A text prompt on the same model is not a chat: only EOS ends it.
  const asText = await generate(withTurns, rendered, 6);
  assert.deepEqual(asText.ids, free.ids);
  assert.equal(asText.last.finish?.reason, 'length');
});
