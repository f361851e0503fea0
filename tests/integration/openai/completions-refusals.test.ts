/**
 * The generation endpoints' refusals and streams at the wire: auth, limits
 * named by flag, parameters gentune does not support, `model` resolution
 * (an adapter serves under name@version), server-sent events read by a plain
 * node:http client, and a client disconnect reaching the engine.
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { FIXTURE_NAME, LONG_MAX_NEW_TOKENS, LONG_PROMPT } from '../helpers/fixture-model.js';
import { collect, eventually, startHarness, type Harness } from '../helpers/harness.js';

const model = FIXTURE_NAME;
const messages = [{ role: 'user' as const, content: 'Hi' }];
const sdk = (h: Harness, apiKey = 'unused') => new OpenAI({ baseURL: h.openaiBaseUrl, apiKey, maxRetries: 0 });
const bad = (pattern: RegExp) => (e: unknown) => e instanceof OpenAI.BadRequestError && pattern.test(e.message);
const limited = (pattern: RegExp) => (e: unknown) => e instanceof OpenAI.RateLimitError && pattern.test(e.message);

/** POSTs `body` with node:http and resolves once the response headers are in. */
function post(h: Harness, path: string, body: object): Promise<{ res: IncomingMessage; destroy: () => void }> {
  const url = new URL(`${h.openaiBaseUrl}${path}`);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => resolve({ res, destroy: () => req.destroy() }));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('refusals', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ http: true, limits: { maxNewTokens: 32, maxPromptTokens: 64, maxBatchSize: 4 } });
  });
  after(() => h.close());

  test('max_tokens over --max-new-tokens, n over --max-batch-size, a long prompt: 400 naming the limit', async () => {
    const c = sdk(h);
    await assert.rejects(c.completions.create({ model, prompt: 'x', max_tokens: 33 }), bad(/`max_tokens` must be <= limits\.max_new_tokens \(--max-new-tokens\) 32, got 33/));
    await assert.rejects(c.chat.completions.create({ model, messages, max_completion_tokens: 33 }), bad(/`max_tokens` must be <= limits\.max_new_tokens \(--max-new-tokens\) 32/));
    await assert.rejects(c.chat.completions.create({ model, messages, n: 5 }), bad(/`n` must be <= limits\.max_batch_size \(--max-batch-size\) 4, got 5/));
    await assert.rejects(c.completions.create({ model, prompt: ['a', 'b', 'c'], n: 2 }), bad(/`n` 2 for each of 3 prompts makes 6 choices: at most limits\.max_batch_size \(--max-batch-size\) 4/));
    await assert.rejects(c.completions.create({ model, prompt: 'word '.repeat(100) }), bad(/`prompt` must be at most limits\.max_prompt_tokens \(--max-prompt-tokens\) 64 tokens/));
    await assert.rejects(c.completions.create({ model, prompt: Array.from({ length: 65 }, () => 1) }), bad(/`prompt` must have at most limits\.max_prompt_tokens/));
    await assert.rejects(c.chat.completions.create({ model, messages: [{ role: 'user', content: 'word '.repeat(100) }] }), bad(/`messages` must be at most limits\.max_prompt_tokens/));
    await assert.rejects(c.completions.create({ model, prompt: 'x', temperature: 2.5 }), bad(/`temperature` must be >= 0 and <= 2, got 2\.5/));
    await assert.rejects(c.completions.create({ model, prompt: 'x', presence_penalty: -3 }), bad(/`presence_penalty` must be >= -2 and <= 2, got -3/));
  });

  test('a parameter gentune does not support is a 400 naming it, never ignored', async () => {
    const c = sdk(h);
    const tool = { type: 'function' as const, function: { name: 'f', parameters: {} } };
    await assert.rejects(c.chat.completions.create({ model, messages, tools: [tool] }), bad(/^400 `tools` is not supported by gentune/));
    await assert.rejects(c.chat.completions.create({ model, messages, logit_bias: { 1: 5 } }), bad(/`logit_bias` is not supported/));
    await assert.rejects(c.completions.create({ model, prompt: 'x', suffix: 'y' }), bad(/`suffix` is not supported/));
    await assert.rejects(c.completions.create({ model, prompt: 'x', best_of: 2 }), bad(/`best_of`/));
    await assert.rejects(
      c.chat.completions.create({ model, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }),
      bad(/`messages\[0\]\.content/),
    );
    await assert.rejects(c.chat.completions.create({ model, messages: [{ role: 'tool', content: 'x', tool_call_id: 't' }] }), bad(/`messages\[0\]/));
  });

  test('`model`: anything but the base model or a published adapter is 404 naming it', async () => {
    const c = sdk(h);
    await assert.rejects(c.chat.completions.create({ model: 'nope', messages }), (e: unknown) => e instanceof OpenAI.NotFoundError && /`model` "nope"/.test(e.message));
    await assert.rejects(c.completions.create({ model: '../etc', prompt: 'x' }), (e: unknown) => e instanceof OpenAI.NotFoundError && /`model` "\.\.\/etc"/.test(e.message));
  });

  test('an adapter as `model`: served by it, and the response names the version', async () => {
    const examples = [{ prompt: 'Q: 1+1?', completion: ' 2' }, { prompt: 'Q: 2+2?', completion: ' 4' }];
    await collect(h.client.fineTune({ adapter: 'helper', examples, hyperparameters: { maxSteps: 1 } }));
    const c = sdk(h);
    const r = await c.chat.completions.create({ model: 'helper', messages, max_tokens: 2 });
    assert.equal(r.model, 'helper@1');
    assert.deepEqual(h.engine.generateParams.at(-1)!.adapter, { name: 'helper' });
    const pinned = await c.completions.create({ model: 'helper@1', prompt: 'x', max_tokens: 2 });
    assert.equal(pinned.model, 'helper@1');
    await assert.rejects(c.completions.create({ model: 'helper@2', prompt: 'x' }), (e: unknown) => e instanceof OpenAI.NotFoundError && /^404 `model` "helper@2"/.test(e.message));
  });
});

test('auth: 401 without a token or with a wrong one, the same tokens as gRPC', async () => {
  const user = 'user-token-0123456789abcdefgh';
  const h = await startHarness({ http: true, security: { userTokens: [user] } });
  try {
    const anonymous = await post(h, '/chat/completions', { model, messages });
    assert.equal(anonymous.res.statusCode, 401);
    anonymous.destroy();
    await assert.rejects(sdk(h, 'wrong-token-0123456789abcdefgh').chat.completions.create({ model, messages }), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    const ok = await sdk(h, user).chat.completions.create({ model, messages, max_tokens: 1 });
    assert.equal(ok.choices.length, 1);
  } finally {
    await h.close();
  }
});

test('too many concurrent streams, or a full queue: 429 (RateLimitError) naming the limit', async () => {
  const h = await startHarness({ http: true, limits: { maxConcurrentStreams: 1, maxNewTokens: LONG_MAX_NEW_TOKENS } });
  const q = await startHarness({ http: true, limits: { maxBatchSize: 1, maxQueue: 0, maxNewTokens: LONG_MAX_NEW_TOKENS } });
  try {
    for (const [server, pattern] of [[h, /limits\.max_concurrent_streams \(--max-concurrent-streams\) 1/], [q, /limits\.max_queue \(--max-queue\) 0/]] as const) {
      // One long stream held open after its first chunk: it holds the only stream (or batch slot).
      server.engine.holdAfterChunks = 1;
      const open = await sdk(server).completions.create({ model, prompt: LONG_PROMPT, max_tokens: LONG_MAX_NEW_TOKENS, temperature: 0, stream: true });
      const it = open[Symbol.asyncIterator]();
      await it.next();
      server.engine.holdAfterChunks = undefined;
      await assert.rejects(sdk(server).chat.completions.create({ model, messages, max_tokens: 1 }), limited(pattern));
      open.controller.abort();
      await it.next().catch(() => undefined);
    }
  } finally {
    await h.close();
    await q.close();
  }
});

describe('server-sent events at the wire', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ http: true, limits: { maxNewTokens: LONG_MAX_NEW_TOKENS } });
  });
  after(() => h.close());

  test('framing: text/event-stream, one `data: <json>` per event, ending `data: [DONE]`', async () => {
    const { res } = await post(h, '/chat/completions', { model, messages, max_tokens: 4, temperature: 0, stream: true });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    let text = '';
    for await (const part of res) text += String(part);
    assert.ok(text.endsWith('\n\ndata: [DONE]\n\n'), JSON.stringify(text.slice(-40)));
    const events = text.split('\n\n').filter((e) => e !== '');
    for (const e of events) assert.match(e, /^data: /, 'every event is one data line');
    const objects = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)) as { object: string; choices: { delta: { role?: string } }[] });
    assert.ok(objects.every((o) => o.object === 'chat.completion.chunk'));
    assert.equal(objects[0]!.choices[0]!.delta.role, 'assistant');
  });

  test('a client that disconnects mid-stream stops its generation: the engine ends it cancelled', async () => {
    const index = h.engine.generateParams.length;
    h.engine.holdAfterChunks = 1;
    const { res, destroy } = await post(h, '/completions', { model, prompt: LONG_PROMPT, max_tokens: LONG_MAX_NEW_TOKENS, temperature: 0, stream: true });
    // Headers arrive once the first chunk is in (startRows waits for it); then go away.
    await new Promise((resolve) => res.once('data', resolve));
    destroy();
    h.engine.holdAfterChunks = undefined;
    await eventually(() => h.engine.generateSignals.length > index, 1000, 'the engine call');
    const signal = h.engine.generateSignals[index]!;
    await eventually(() => signal.aborted, 2000, 'the abort to reach the engine');
    assert.match(String((signal.reason as Error).message), /client disconnected/);
    assert.equal(await h.engine.generateEnds[index], 'cancelled', 'the real engine ended the generation at a step boundary, before its max_tokens');
  });
});
