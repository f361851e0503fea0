/**
 * Prompts are measured before they are tokenized (issue 18): a prompt of more
 * UTF-8 bytes than any prompt of --max-prompt-tokens tokens can have (or than
 * --max-prompt-bytes, when set) is refused with INVALID_ARGUMENT / 400 naming
 * the field and the bound, by the front door, so it never reaches the engine,
 * whose tokenizer is the only one (the SpyEngine counts every generate call).
 * A 12 MB prompt used to be tokenized in full first: four at once took 3.5 s
 * each to refuse and held up every other Generate meanwhile.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as Code } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { FIXTURE_NAME } from './helpers/fixture-model.js';
import { collect, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const HUGE = 12_000_000;
const huge = 'x'.repeat(HUGE);
const model = FIXTURE_NAME;
const sdk = (h: Harness) => new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: 'unused', maxRetries: 0 });
const bad = (pattern: RegExp) => (e: unknown) => e instanceof OpenAI.BadRequestError && pattern.test(e.message);

/** Generate calls that reached the engine with a prompt of more than `bytes` bytes (text or messages). */
function bigCalls(h: Harness, bytes: number): number {
  return h.engine.generateParams.filter((p) => {
    const text = typeof p.prompt === 'string' ? p.prompt : Array.isArray(p.prompt) ? '' : p.prompt.messages.map((m) => m.content).join('');
    return Buffer.byteLength(text) > bytes;
  }).length;
}

describe('prompt size, derived from the token limit (here the context: 512 < --max-prompt-tokens 1024)', () => {
  let h: Harness;
  let bound: number;
  before(async () => {
    h = await startHarness({ http: true });
    bound = Number((await h.client.getServerInfo()).limits!.maxPromptBytes);
  });
  after(() => h.close());

  test('GetServerInfo reports the bound: the most bytes a prompt of the token limit can have', async () => {
    const info = await h.client.getServerInfo();
    const tokens = Math.min(info.limits!.maxPromptTokens, info.model!.nPositions);
    // The fixture's longest token is <|endoftext|>: 13 bytes.
    assert.equal(bound, tokens * 13);
  });

  test('gRPC: four huge prompts at once are refused without reaching the engine; a small Generate beside them runs', async () => {
    const before = h.engine.generateParams.length;
    const refusals = Array.from({ length: 4 }, () => collect(h.client.generate({ prompt: huge, sampling: { maxNewTokens: 1 } })));
    const small = h.client.generateText({ prompt: 'abc', sampling: { maxNewTokens: 3, temperature: 0 } });
    const refused = new RegExp(`^\`prompt\` must be at most ${bound} bytes \\(the context length of 512 tokens of at most 13 bytes each\\), got ${HUGE} bytes`);
    await Promise.all(refusals.map((r) => rejectsWith(r, Code.INVALID_ARGUMENT, refused)));
    assert.equal((await small).usage!.generatedTokens, 3);
    assert.equal(h.engine.generateParams.length - before, 1, 'only the small Generate reached the engine');
    await rejectsWith(collect(h.client.generate({ messages: [{ role: 'user', content: huge }] })), Code.INVALID_ARGUMENT, /^`messages` must be at most \d+ bytes .*got 12000000 bytes/);
    assert.equal(bigCalls(h, bound), 0);
  });

  test('gRPC: at the bound the byte check passes and the token check (in the engine) answers', async () => {
    await rejectsWith(collect(h.client.generate({ prompt: 'x'.repeat(bound + 1) })), Code.INVALID_ARGUMENT, /bytes/);
    await rejectsWith(collect(h.client.generate({ prompt: 'x'.repeat(bound) })), Code.INVALID_ARGUMENT, /^`prompt` must be at most limits\.max_prompt_tokens/);
    assert.equal(bigCalls(h, bound), 0);
  });

  test('HTTP: completions (one prompt or a list) and chat are refused with 400 naming the field, without reaching the engine', async () => {
    const c = sdk(h);
    const before = h.engine.generateParams.length;
    await assert.rejects(c.completions.create({ model, prompt: huge }), bad(/`prompt` must be at most \d+ bytes .*got 12000000 bytes/));
    await assert.rejects(c.completions.create({ model, prompt: ['ok', huge] }), bad(/`prompt\[1\]` must be at most \d+ bytes/));
    await assert.rejects(c.chat.completions.create({ model, messages: [{ role: 'user', content: huge }] }), bad(/`messages` must be at most \d+ bytes .*got 12000000 bytes/));
    assert.equal(h.engine.generateParams.length, before);
  });
});

describe('--max-prompt-bytes set', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ http: true, limits: { maxPromptBytes: 100 } });
  });
  after(() => h.close());

  test('is the bound instead, named by key and flag, on both front doors', async () => {
    assert.equal(Number((await h.client.getServerInfo()).limits!.maxPromptBytes), 100);
    await h.client.generateText({ prompt: 'é'.repeat(50), sampling: { maxNewTokens: 1 } }); // 100 bytes fit
    await rejectsWith(collect(h.client.generate({ prompt: `${'é'.repeat(50)}x` })), Code.INVALID_ARGUMENT, '`prompt` must be at most limits.max_prompt_bytes (--max-prompt-bytes) 100 bytes, got 101 bytes');
    await assert.rejects(sdk(h).completions.create({ model, prompt: 'y'.repeat(101) }), bad(/`prompt` must be at most limits\.max_prompt_bytes \(--max-prompt-bytes\) 100 bytes, got 101/));
    assert.equal(bigCalls(h, 100), 0);
  });
});
