/**
 * POST /v1/completions and /v1/chat/completions with the official `openai`
 * SDK against the real server on 127.0.0.1:0 and the real engine (tiny random
 * GPT-2: the text is noise, the shapes and counts are what is checked).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { FIXTURE_NAME } from '../helpers/fixture-model.js';
import { collect, startHarness, type Harness } from '../helpers/harness.js';

let h: Harness;
let client: OpenAI;
before(async () => {
  h = await startHarness({ http: true });
  client = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: 'unused', maxRetries: 0 });
});
after(() => h.close());

const model = FIXTURE_NAME;
const lastParams = () => h.engine.generateParams.at(-1)!;

describe('POST /v1/completions', () => {
  test('a completion: text, finish_reason length, usage, ids and the request\'s model', async () => {
    const r = await client.completions.create({ model, prompt: 'Hello', max_tokens: 5, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.match(r.id, /^cmpl-[0-9a-f-]{36}$/);
    assert.equal(r.model, model);
    assert.ok(Math.abs(r.created - Date.now() / 1000) < 60, 'created is epoch seconds');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.finish_reason, 'length');
    assert.equal(typeof r.choices[0]!.text, 'string');
    assert.equal(r.usage!.completion_tokens, 5);
    assert.ok(r.usage!.prompt_tokens > 0);
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 5);
    assert.match(r.system_fingerprint!, /^gentune-/);
  });

  test('token ids and several string prompts are prompts too; each prompt counts once in usage', async () => {
    const ids = await client.completions.create({ model, prompt: [1, 2, 3], max_tokens: 2, temperature: 0 });
    assert.equal(ids.usage!.prompt_tokens, 3);
    assert.deepEqual(lastParams().prompt, [1, 2, 3]);
    const many = await client.completions.create({ model, prompt: ['a', 'b'], n: 2, max_tokens: 2, temperature: 0 });
    assert.deepEqual(many.choices.map((c) => c.index), [0, 1, 2, 3]);
    assert.equal(many.usage!.completion_tokens, 8);
    assert.equal(many.usage!.prompt_tokens, 2, 'two one-token prompts, each counted once for its two choices');
  });

  test('n > 1 runs n rows of the same prompt; with a seed, row i uses seed + i', async () => {
    const before = h.engine.generateParams.length;
    const r = await client.completions.create({ model, prompt: 'Once', n: 3, max_tokens: 8, temperature: 1, seed: 40 });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    const rows = h.engine.generateParams.slice(before);
    assert.deepEqual(rows.map((p) => p.sampling.seed), [40, 41, 42]);
    assert.ok(new Set(r.choices.map((c) => c.text)).size > 1, 'the choices differ');
    assert.equal(r.usage!.completion_tokens, 24);
    const again = await client.completions.create({ model, prompt: 'Once', n: 3, max_tokens: 8, temperature: 1, seed: 40 });
    assert.deepEqual(again.choices.map((c) => c.text), r.choices.map((c) => c.text), 'the same seed reproduces every choice');
  });

  test('seed reproducibility at temperature 1; another seed, another text', async () => {
    const run = (seed: number) => client.completions.create({ model, prompt: 'The', max_tokens: 12, temperature: 1, seed }).then((r) => r.choices[0]!.text);
    const a = await run(7);
    assert.equal(await run(7), a);
    assert.notEqual(await run(8), a);
  });

  test('logprobs k: tokens, token_logprobs, k alternatives each, text offsets', async () => {
    const r = await client.completions.create({ model, prompt: 'Hi', max_tokens: 4, temperature: 0, logprobs: 2 });
    const lp = r.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.length, 4);
    assert.equal(lp.token_logprobs!.length, 4);
    assert.ok(lp.token_logprobs!.every((x) => x <= 0));
    assert.ok(lp.top_logprobs!.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2));
    assert.deepEqual(lp.text_offset, lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join('').length));
    // Greedy: the chosen token is the most likely one.
    lp.tokens!.forEach((t, i) => assert.equal(Math.max(...Object.values(lp.top_logprobs![i]!)), lp.top_logprobs![i]![t]));
    assert.equal(lastParams().topLogprobs, 2);
  });

  test('stop: the text ends before the stop sequence, finish_reason stop', async () => {
    const free = (await client.completions.create({ model, prompt: 'Hello', max_tokens: 20, temperature: 0 })).choices[0]!.text;
    const stop = free.slice(3, 5);
    assert.ok(stop.length === 2, `a stop sequence from the free text ${JSON.stringify(free)}`);
    const r = await client.completions.create({ model, prompt: 'Hello', max_tokens: 20, temperature: 0, stop: [stop] });
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    assert.equal(r.choices[0]!.text, free.slice(0, free.indexOf(stop)));
  });

  test('streaming completions: text chunks, a finish chunk, a usage chunk with include_usage', async () => {
    const chunks = await collect(await client.completions.create({ model, prompt: 'Hello', max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } }));
    const whole = await client.completions.create({ model, prompt: 'Hello', max_tokens: 6, temperature: 0 });
    const body = chunks.filter((c) => c.choices.length > 0);
    assert.equal(body.map((c) => c.choices[0]!.text).join(''), whole.choices[0]!.text);
    assert.equal(body.at(-1)!.choices[0]!.finish_reason, 'length');
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, whole.usage);
  });
});

describe('POST /v1/chat/completions', () => {
  const messages = [
    { role: 'developer' as const, content: 'Be brief.' },
    { role: 'user' as const, content: [{ type: 'text' as const, text: 'Hi ' }, { type: 'text' as const, text: 'there' }] },
  ];

  test('a chat completion: the messages reach the engine as a conversation', async () => {
    const r = await client.chat.completions.create({ model, messages, max_tokens: 5, temperature: 0 });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(typeof r.choices[0]!.message.content, 'string');
    assert.ok(['stop', 'length'].includes(r.choices[0]!.finish_reason));
    assert.deepEqual(lastParams().prompt, { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there' }] });
    assert.ok(r.usage!.prompt_tokens > 0);
  });

  test('streaming chat: the first chunk carries the role, the deltas add up to the text, [DONE] ends it', async () => {
    const whole = await client.chat.completions.create({ model, messages, max_completion_tokens: 8, temperature: 0 });
    const chunks = await collect(await client.chat.completions.create({ model, messages, max_completion_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } }));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id));
    assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
    const body = chunks.filter((c) => c.choices.length > 0);
    assert.equal(body.map((c) => c.choices[0]!.delta.content ?? '').join(''), whole.choices[0]!.message.content);
    assert.equal(body.at(-1)!.choices[0]!.finish_reason, whole.choices[0]!.finish_reason);
    assert.deepEqual(chunks.at(-1)!.usage, whole.usage);
  });

  test('logprobs with top_logprobs: content entries with token, logprob, bytes and alternatives', async () => {
    const r = await client.chat.completions.create({ model, messages, max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 3 });
    const content = r.choices[0]!.logprobs!.content!;
    assert.equal(content.length, r.usage!.completion_tokens);
    for (const c of content) {
      assert.ok(c.logprob <= 0);
      assert.deepEqual(c.bytes, [...Buffer.from(c.token)]);
      assert.equal(c.top_logprobs.length, 3);
      assert.equal(c.top_logprobs[0]!.logprob, c.logprob, 'greedy picks the most likely');
    }
    await assert.rejects(client.chat.completions.create({ model, messages, top_logprobs: 2 }), (e: unknown) => e instanceof OpenAI.BadRequestError && /`top_logprobs` requires `logprobs` to be true/.test(e.message));
  });

  test('n choices in one request, each with its own index', async () => {
    const before = h.engine.generateParams.length;
    const r = await client.chat.completions.create({ model, messages, n: 2, max_tokens: 4, seed: 3 });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
    assert.deepEqual(h.engine.generateParams.slice(before).map((p) => p.sampling.seed), [3, 4]);
    assert.ok(r.usage!.completion_tokens >= 2 && r.usage!.completion_tokens <= 8, `two choices of 1..4 tokens, got ${r.usage!.completion_tokens}`);
  });

  test('penalties and response_format reach the engine (json_schema parsed into responseFormat)', async () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] };
    await client.chat.completions.create({
      model,
      messages,
      max_tokens: 2,
      presence_penalty: 0.5,
      frequency_penalty: -1,
      response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } },
    });
    const s = lastParams().sampling;
    assert.equal(s.presencePenalty, 0.5);
    assert.equal(s.frequencyPenalty, -1);
    assert.deepEqual(s.responseFormat, { type: 'json_schema', name: 'thing', schema, strict: true });
    await client.chat.completions.create({ model, messages, max_tokens: 1, response_format: { type: 'json_object' } });
    assert.deepEqual(lastParams().sampling.responseFormat, { type: 'json_object' });
    await client.chat.completions.create({ model, messages, max_tokens: 1, response_format: { type: 'text' } });
    assert.equal(lastParams().sampling.responseFormat, undefined);
  });
});
