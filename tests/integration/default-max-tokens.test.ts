/**
 * A left-out max_new_tokens is the default (64) capped by the context the
 * prompt leaves, as generate.proto promises; an explicit one that does not
 * fit is INVALID_ARGUMENT naming it. Both doors: gRPC and the OpenAI API.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { status as Code } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { FIXTURE_MODEL, FIXTURE_NAME } from './helpers/fixture-model.js';
import { rejectsWith, startHarness, type Harness } from './helpers/harness.js';

let h: Harness;
before(async () => {
  h = await startHarness({ http: true, limits: { maxPromptTokens: FIXTURE_MODEL.nPositions } });
});
after(() => h.close());

/** A prompt of ids leaving `room` positions of the context. */
const promptLeaving = (room: number) => Array.from({ length: FIXTURE_MODEL.nPositions - room }, (_, i) => 65 + (i % 26));

test('gRPC: the default max_new_tokens shrinks to the room the prompt leaves; an explicit one is refused', async () => {
  const out = await h.client.generateText({ promptTokenIds: promptLeaving(5), sampling: { temperature: 0 } });
  assert.ok(out.tokenIds.length <= 5 && out.tokenIds.length > 0, `${out.tokenIds.length} tokens`);
  assert.equal(h.engine.generateParams.at(-1)!.sampling.maxNewTokensDefaulted, true);
  await rejectsWith(
    h.client.generateText({ promptTokenIds: promptLeaving(5), sampling: { maxNewTokens: 64, temperature: 0 } }),
    Code.INVALID_ARGUMENT,
    /`max_new_tokens` 64 plus the prompt's \d+ tokens exceeds the context length/,
  );
});

test('OpenAI API: a completion without max_tokens fits the context too', async () => {
  const client = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: 'unused', maxRetries: 0 });
  const r = await client.chat.completions.create({ model: FIXTURE_NAME, messages: [{ role: 'user', content: 'x'.repeat(FIXTURE_MODEL.nPositions - 40) }], temperature: 0 });
  assert.ok(r.usage!.prompt_tokens + r.usage!.completion_tokens <= FIXTURE_MODEL.nPositions, JSON.stringify(r.usage));
});
