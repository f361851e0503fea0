import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { status as Code } from '@grpc/grpc-js';
import { DeadlineExceeded } from '../../src/common/errors.js';
import { FinishReason, GenerateRequest } from '../../src/gen/gentune/v1/generate.js';
import { FIXTURE_MODEL, LONG_MAX_NEW_TOKENS, LONG_PROMPT, longGeneration } from './helpers/fixture-model.js';
import { collect, eventually, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

/** The fixture model's context; --max-new-tokens is set above it so that the engine's context check is reachable. */
const CONTEXT = FIXTURE_MODEL.nPositions;
const MAX_NEW_TOKENS = 600;

describe('Generate', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ limits: { maxNewTokens: MAX_NEW_TOKENS, maxPromptTokens: 32 } });
  });
  after(() => h.close());

  test('streams token deltas, then a last message with finish_reason and usage', async () => {
    // The long stream: it runs to max_new_tokens (see the fixture test below), so there is one outcome.
    const messages = await collect(h.client.generate(longGeneration(5)));
    const last = messages.at(-1)!;
    const body = messages.slice(0, -1);
    assert.equal(body.length, 5);
    for (const m of body) {
      assert.equal(m.finishReason, FinishReason.FINISH_REASON_UNSPECIFIED);
      assert.equal(m.tokenIds.length, 1);
      assert.equal(m.usage, undefined);
    }
    assert.equal(last.finishReason, FinishReason.FINISH_REASON_LENGTH);
    assert.ok(last.usage);
    assert.equal(last.usage.generatedTokens, body.reduce((n, m) => n + m.tokenIds.length, 0));
    assert.ok(last.usage.promptTokens > 0);
    assert.ok(last.usage.totalMs >= last.usage.timeToFirstTokenMs);
    assert.equal(last.adapter, '');
    // Byte-level vocabulary: the text deltas are the UTF-8 decoding of the ids.
    const ids = body.flatMap((m) => m.tokenIds);
    assert.equal(messages.map((m) => m.text).join(''), Buffer.from(ids.filter((id) => id < 256)).toString('utf8'));
  });

  test('the same seed gives the same tokens; greedy decoding is deterministic', async () => {
    const sampled = { prompt: 'Seeded', sampling: { maxNewTokens: 8, seed: '42', temperature: 1.5, topK: 50 } };
    const [a, b] = await Promise.all([h.client.generateText(sampled), h.client.generateText(sampled)]);
    assert.deepEqual(a.tokenIds, b.tokenIds);
    const [g1, g2] = [await h.client.generateText(longGeneration(12)), await h.client.generateText(longGeneration(12))];
    assert.deepEqual(g1.tokenIds, g2.tokenIds);
  });

  test(`the fixture's long stream (greedy from ${JSON.stringify(LONG_PROMPT)}) runs to max_new_tokens: the cancellation tests rely on it`, async () => {
    const out = await h.client.generateText(longGeneration());
    assert.equal(out.finishReason, FinishReason.FINISH_REASON_LENGTH, 'greedy decoding hit <|endoftext|>: pick another LONG_PROMPT in fixture-model.ts');
    assert.equal(out.tokenIds.length, LONG_MAX_NEW_TOKENS);
    // It fills the context exactly: the limit is inclusive.
    assert.equal(out.usage?.promptTokens, Buffer.byteLength(LONG_PROMPT));
    assert.equal(out.usage.promptTokens + out.usage.generatedTokens, CONTEXT);
  });

  test('a stop sequence ends the stream with STOP_SEQUENCE and is left out of the text', async () => {
    const sampled = { prompt: 'Stop', sampling: { maxNewTokens: 40, seed: '3', temperature: 1 } };
    const full = await h.client.generateText(sampled);
    // The stop string is taken from the (seeded, so repeatable) output itself: its first printable ASCII character.
    const at = /[!-~]/.exec(full.text);
    assert.ok(at, `no ASCII character in ${JSON.stringify(full.text)}: pick another seed`);
    const out = await h.client.generateText({ ...sampled, sampling: { ...sampled.sampling, stop: [at[0]] } });
    assert.equal(out.finishReason, FinishReason.FINISH_REASON_STOP_SEQUENCE);
    assert.equal(out.text, full.text.slice(0, at.index));
  });

  test('max_new_tokens bounds the output and ends with LENGTH', async () => {
    // The long stream would go on: max_new_tokens is what ends it.
    const out = await h.client.generateText(longGeneration(3));
    assert.equal(out.tokenIds.length, 3);
    assert.equal(out.finishReason, FinishReason.FINISH_REASON_LENGTH);
  });

  test('accepts a pre-tokenized prompt', async () => {
    const out = await h.client.generateText({ promptTokenIds: [1, 2, 3], sampling: { maxNewTokens: 2 } });
    assert.equal(out.usage?.promptTokens, 3);
  });

  test('returns logprobs (and top alternatives) when asked', async () => {
    const messages = await collect(h.client.generate({ prompt: 'x', logprobs: true, topLogprobs: 2, sampling: { maxNewTokens: 2 } }));
    for (const m of messages.filter((m) => m.tokenIds.length > 0)) {
      assert.equal(m.logprobs.length, m.tokenIds.length);
      assert.equal(m.logprobs[0]!.tokenId, m.tokenIds[0]);
      assert.ok(m.logprobs[0]!.logprob <= 0);
      assert.equal(m.logprobs[0]!.topLogprobs.length, 2);
    }
  });

  test('cancelling mid-stream aborts the signal the engine got', async () => {
    const before = h.engine.generateSignals.length;
    let received = 0;
    for await (const _ of h.client.generate(longGeneration())) {
      if (++received === 3) break; // leaving the loop cancels the call
    }
    await eventually(() => h.engine.generateSignals.length > before, 1000, 'the engine call');
    const signal = h.engine.generateSignals[before]!;
    await eventually(() => signal.aborted, 2000, 'the abort to reach the engine');
    assert.match(String(signal.reason?.message), /client cancelled/);
  });

  test('an AbortSignal on the client cancels the call', async () => {
    const ac = new AbortController();
    h.engine.holdAfterChunks = 1;
    const stream = h.client.generate(longGeneration(), { signal: ac.signal });
    // Abort once the first chunk is in: the stream is then held open by the
    // engine, so the abort is what ends it, however fast the model is.
    const received = (async () => {
      for await (const _ of stream) ac.abort();
    })();
    await rejectsWith(received, Code.CANCELLED);
    h.engine.holdAfterChunks = undefined;
  });

  test('a deadline expiring mid-stream fails with DEADLINE_EXCEEDED and aborts the engine', async () => {
    const before = h.engine.generateSignals.length;
    // Held after 2 chunks: the deadline, not the end of the generation, ends the call.
    h.engine.holdAfterChunks = 2;
    const chunks: unknown[] = [];
    await rejectsWith(
      (async () => {
        for await (const c of h.client.generate(longGeneration(), { timeoutMs: 300 })) chunks.push(c);
      })(),
      Code.DEADLINE_EXCEEDED,
    );
    h.engine.holdAfterChunks = undefined;
    assert.equal(chunks.length, 2, 'the chunks before the deadline reached the client');
    // The client cancels at its deadline as the server's own deadline passes:
    // which the server hears of first is a race, so the reason is the next test's.
    const signal = h.engine.generateSignals[before]!;
    await eventually(() => signal.aborted, 2000, 'the deadline to reach the engine');
  });

  test("the server's deadline aborts the engine with DeadlineExceeded and ends the call with DEADLINE_EXCEEDED", async () => {
    // A plain HTTP/2 peer that sends grpc-timeout and, unlike grpc-js, never
    // cancels at its deadline: the server's deadline is the only one.
    const before = h.engine.generateSignals.length;
    h.engine.holdAfterChunks = 1;
    const session = connect(`http://${h.address}`);
    try {
      const call = session.request({
        ':method': 'POST',
        ':path': '/gentune.v1.ModelService/Generate',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': '200m',
      });
      const message = GenerateRequest.encode(GenerateRequest.fromPartial(longGeneration())).finish();
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1); // byte 0: not compressed
      frame.set(message, 5);
      call.end(frame);
      call.resume();
      const status = await new Promise<string | undefined>((resolve, reject) => {
        // grpc-status comes in the trailers, or in the headers of a trailers-only reply.
        call.on('response', (headers) => headers['grpc-status'] !== undefined && resolve(String(headers['grpc-status'])));
        call.on('trailers', (trailers) => resolve(trailers['grpc-status'] === undefined ? undefined : String(trailers['grpc-status'])));
        call.on('error', reject);
        call.on('close', () => resolve(undefined));
      });
      assert.equal(status, String(Code.DEADLINE_EXCEEDED));
    } finally {
      h.engine.holdAfterChunks = undefined;
      session.close();
    }
    const signal = h.engine.generateSignals[before]!;
    await eventually(() => signal.aborted, 2000, 'the deadline to reach the engine');
    assert.ok(signal.reason instanceof DeadlineExceeded, String(signal.reason));
    assert.equal(signal.reason.message, 'deadline exceeded');
  });

  test('an unknown adapter is NOT_FOUND', async () => {
    await rejectsWith(h.client.generateText({ prompt: 'x', adapter: 'nope' }), Code.NOT_FOUND, /nope/);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['no prompt', {}, /exactly one of `prompt`, `prompt_token_ids`, `messages` must be set, got none/],
    ['both prompts', { prompt: 'x', promptTokenIds: [1] }, /got `prompt` and `prompt_token_ids`/],
    ['negative temperature', { prompt: 'x', sampling: { temperature: -1 } }, /^`temperature` must be >= 0 and <= 100, got -1$/],
    ['NaN temperature', { prompt: 'x', sampling: { temperature: NaN } }, /`temperature` must be a finite number, got NaN/],
    ['top_p 0', { prompt: 'x', sampling: { topP: 0 } }, /`top_p` must be > 0 and <= 1, got 0/],
    ['top_p 1.5', { prompt: 'x', sampling: { topP: 1.5 } }, /`top_p` must be > 0 and <= 1, got 1.5/],
    ['top_k above vocab', { prompt: 'x', sampling: { topK: 5000 } }, /`top_k` must be >= 0 and <= \d+, got 5000/],
    ['repetition_penalty 0', { prompt: 'x', sampling: { repetitionPenalty: 0 } }, /`repetition_penalty` must be > 0 and <= 10, got 0/],
    ['max_new_tokens 0', { prompt: 'x', sampling: { maxNewTokens: 0 } }, /`max_new_tokens` must be >= 1, got 0/],
    ['max_new_tokens over the limit', { prompt: 'x', sampling: { maxNewTokens: 601 } }, /`max_new_tokens` must be <= limits\.max_new_tokens \(--max-new-tokens\) 600, got 601/],
    ['seed too large', { prompt: 'x', sampling: { seed: '18446744073709551615' } }, /`seed` must be an integer in 0\.\.9007199254740991, got "18446744073709551615"/],
    ['too many stops', { prompt: 'x', sampling: { stop: ['a', 'b', 'c', 'd', 'e'] } }, /`stop` must have at most 4 items, got 5/],
    ['empty stop', { prompt: 'x', sampling: { stop: [''] } }, /`stop\[0\]` is required/],
    ['long stop', { prompt: 'x', sampling: { stop: ['y'.repeat(65)] } }, /`stop\[0\]` must be at most 64 characters/],
    ['top_logprobs without logprobs', { prompt: 'x', topLogprobs: 3 }, /`top_logprobs` requires `logprobs` to be true, got 3/],
    ['top_logprobs 21', { prompt: 'x', logprobs: true, topLogprobs: 21 }, /`top_logprobs` must be >= 0 and <= 20, got 21/],
    ['adapter path', { prompt: 'x', adapter: '../x' }, /^`adapter` must not contain '\/', '\\' or '\.\.', got "\.\.\/x"$/],
    ['adapter charset', { prompt: 'x', adapter: 'a b' }, /`adapter` must be 1\.\.64 characters of \[A-Za-z0-9\._-\], starting with a letter or digit, got "a b"/],
    ['adapter version', { prompt: 'x', adapter: 'a@0' }, /`adapter` version must be a positive integer \("name@3"\) or an alias \("name@prod"\), got "a@0"/],
    ['adapter alias', { prompt: 'x', adapter: 'a@-prod' }, /`adapter` version must be a positive integer \("name@3"\) or an alias \("name@prod"\), got "a@-prod"/],
    ['too many prompt ids', { promptTokenIds: Array.from({ length: 33 }, () => 1) }, /`prompt_token_ids` must be at most limits\.max_prompt_tokens \(--max-prompt-tokens\) 32 tokens, got 33/],
    ['token id out of vocab', { promptTokenIds: [1, 100000] }, /`prompt_token_ids\[1\]` must be a token id in 0\.\.\d+, got 100000/],
  ];
  for (const [name, req, message] of bad) {
    test(`INVALID_ARGUMENT naming the field: ${name}`, async () => {
      await rejectsWith(h.client.generateText(req), Code.INVALID_ARGUMENT, message);
    });
  }

  test('a prompt longer than --max-prompt-tokens is INVALID_ARGUMENT (checked by the engine)', async () => {
    await rejectsWith(h.client.generateText({ prompt: 'w '.repeat(40) }), Code.INVALID_ARGUMENT, /^`prompt` must be at most limits\.max_prompt_tokens \(--max-prompt-tokens\) 32 tokens, got 80$/);
  });

  test('prompt + max_new_tokens beyond the context is INVALID_ARGUMENT naming `max_new_tokens` (checked by the engine)', async () => {
    const prompt = 'p'.repeat(20); // 20 tokens
    await rejectsWith(
      h.client.generateText({ prompt, sampling: { maxNewTokens: CONTEXT - 19 } }),
      Code.INVALID_ARGUMENT,
      new RegExp(`^\`max_new_tokens\` ${CONTEXT - 19} plus the prompt's 20 tokens exceeds the context length of ${CONTEXT} tokens$`),
    );
    await rejectsWith(h.client.generateText({ promptTokenIds: [1, 2, 3], sampling: { maxNewTokens: CONTEXT } }), Code.INVALID_ARGUMENT, /^`max_new_tokens` 512 plus/);
  });

  test('after all that bad input the server still serves', async () => {
    assert.equal(await h.client.checkHealth('gentune.v1.ModelService'), 'SERVING');
    const out = await h.client.generateText(longGeneration(4));
    assert.equal(out.tokenIds.length, 4);
  });

  test('echoes x-request-id', async () => {
    const call = h.client.raw.generate({ prompt: 'x', promptTokenIds: [], messages: [], adapter: '', logprobs: false, sampling: { stop: [], maxNewTokens: 1 } });
    const [md] = await new Promise<[import('@grpc/grpc-js').Metadata]>((resolve) => call.once('metadata', (m) => resolve([m])));
    assert.match(String(md.get('x-request-id')[0]), /^[0-9a-f-]{36}$/);
    await collect(call);
  });
});
