import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgument } from '../../../src/common/errors.js';
import { defaultConfig, resolveConfig } from '../../../src/engine/config.js';
import { limitLabel } from '../../../src/engine/limit-label.js';
import {
  checkAdapterName,
  checkEnum,
  checkExactlyOne,
  checkFinite,
  checkId,
  checkItemsLimit,
  checkLimit,
  checkMaxItems,
  checkMaxLength,
  checkMinItems,
  checkNoPath,
  checkOneOf,
  checkPrintable,
  checkRange,
  checkRequired,
  checkRequires,
  checkSome,
  checkUnique,
  parseAdapterRef,
  parseOptionalAdapterRef,
  parseSafeUint,
  quote,
} from '../../../src/server/validate.js';

/** Asserts `fn` throws InvalidArgument with exactly `message`. */
function throwsExactly(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgument, 'an InvalidArgument');
    assert.equal(err.message, message);
    return true;
  });
}

describe('validate rules', () => {
  test('checkRange: inclusive and exclusive bounds, messages quoting field and value', () => {
    assert.equal(checkRange('temperature', 0, { min: 0, max: 100 }), 0);
    throwsExactly(() => checkRange('temperature', -1, { min: 0 }), '`temperature` must be >= 0, got -1');
    throwsExactly(() => checkRange('temperature', -1, { min: 0, max: 100 }), '`temperature` must be >= 0 and <= 100, got -1');
    throwsExactly(() => checkRange('top_p', 0, { min: 0, max: 1, minExclusive: true }), '`top_p` must be > 0 and <= 1, got 0');
    throwsExactly(() => checkRange('lora_dropout', 1, { min: 0, max: 1, maxExclusive: true }), '`lora_dropout` must be >= 0 and < 1, got 1');
    throwsExactly(() => checkRange('x', Infinity, { min: 0 }), '`x` must be a finite number, got Infinity');
  });

  test('checkFinite rejects NaN', () => {
    throwsExactly(() => checkFinite('temperature', NaN), '`temperature` must be a finite number, got NaN');
    assert.equal(checkFinite('t', 1.5), 1.5);
  });

  test('checkRequired, checkMaxLength, checkPrintable', () => {
    throwsExactly(() => checkRequired('name', ''), '`name` is required, got ""');
    assert.equal(checkMaxLength('stop[0]', 'ü'.repeat(64), 64), 'ü'.repeat(64));
    throwsExactly(() => checkMaxLength('stop[0]', 'abcde', 4), '`stop[0]` must be at most 4 characters, got "abcde"');
    throwsExactly(() => checkPrintable('name', 'a\tb'), '`name` must not contain control characters, got "a\\tb"');
  });

  test('checkNoPath rejects separators and parent references', () => {
    throwsExactly(() => checkNoPath('adapter', '../x'), '`adapter` must not contain \'/\', \'\\\' or \'..\', got "../x"');
    for (const v of ['a/b', 'a\\b', '..', 'x..y']) assert.throws(() => checkNoPath('adapter', v), InvalidArgument);
    assert.equal(checkNoPath('adapter', 'a.b'), 'a.b');
  });

  test('checkAdapterName and checkId: charset and length', () => {
    assert.equal(checkAdapterName('adapter', 'support-v2_1.0'), 'support-v2_1.0');
    throwsExactly(() => checkAdapterName('adapter', 'a b'), '`adapter` must be 1..64 characters of [A-Za-z0-9._-], starting with a letter or digit, got "a b"');
    // Issue 18: no hidden names (the stores remove `.tmp*` as leftovers) and no `.` (a version folder straight in adapters/).
    for (const bad of ['.', '.tmp', '.hidden', '-x', '_x', '.tmp-host-1-0123456789ab']) {
      throwsExactly(() => checkAdapterName('adapter', bad), `\`adapter\` must be 1..64 characters of [A-Za-z0-9._-], starting with a letter or digit, got ${JSON.stringify(bad)}`);
      assert.throws(() => checkId('dataset_id', bad), /`dataset_id` must be 1\.\.64 characters .* starting with a letter or digit/);
    }
    assert.equal(checkAdapterName('adapter', '7b.chat-v1_2'), '7b.chat-v1_2');
    assert.throws(() => checkAdapterName('adapter', 'a'.repeat(65)), /1\.\.64 characters/);
    assert.throws(() => checkAdapterName('adapter', 'a@1'), /1\.\.64 characters/);
    assert.equal(checkId('job_id', 'ft-1234'), 'ft-1234');
    throwsExactly(() => checkId('job_id', ''), '`job_id` is required, got ""');
    assert.throws(() => checkId('job_id', 'x'.repeat(65)), /1\.\.64 characters/);
  });

  test('parseAdapterRef: name, name@version, name@alias', () => {
    assert.deepEqual(parseAdapterRef('adapter', 'support'), { name: 'support' });
    assert.deepEqual(parseAdapterRef('adapter', 'support@12'), { name: 'support', version: 12 });
    assert.deepEqual(parseAdapterRef('adapter', 'support@prod'), { name: 'support', alias: 'prod' });
    throwsExactly(() => parseAdapterRef('adapter', 'support@0'), '`adapter` version must be a positive integer ("name@3") or an alias ("name@prod"), got "support@0"');
    assert.throws(() => parseAdapterRef('adapter', 'support@-x'), /or an alias/);
    assert.throws(() => parseAdapterRef('adapter', 'support@'), /positive integer/);
    assert.throws(() => parseAdapterRef('adapter', '@3'), /is required|1\.\.64/);
    assert.throws(() => parseAdapterRef('adapter', '../x@1'), /must not contain/);
    assert.equal(parseOptionalAdapterRef('adapter', ''), null);
  });

  test('list rules: min/max items, uniqueness, membership, some', () => {
    throwsExactly(() => checkMaxItems('stop', [1, 2, 3], 2), '`stop` must have at most 2 items, got 3');
    throwsExactly(() => checkMinItems('examples', [], 1), '`examples` must have at least 1 item, got 0');
    throwsExactly(() => checkUnique('adapters', ['a', 'b', 'a']), '`adapters` must not contain duplicates, got "a" twice');
    throwsExactly(() => checkOneOf('role', 'bot', ['user', 'assistant']), '`role` must be one of user, assistant, got "bot"');
    throwsExactly(
      () => checkSome('messages', [{ role: 'user' }], (m) => m.role === 'assistant', 'an assistant turn', (ms) => ms.map((m) => m.role)),
      '`messages` must include an assistant turn, got ["user"]',
    );
  });

  test('checkEnum maps known numbers (including to undefined) and rejects the rest', () => {
    const map = new Map<number, string | undefined>([[0, undefined], [1, 'cosine']]);
    assert.equal(checkEnum('lr_scheduler', 0, map, 'COSINE'), undefined);
    assert.equal(checkEnum('lr_scheduler', 1, map, 'COSINE'), 'cosine');
    throwsExactly(() => checkEnum('lr_scheduler', 7, map, 'COSINE'), '`lr_scheduler` must be one of COSINE, got 7');
  });

  test('checkExactlyOne names the alternatives and what was set', () => {
    assert.equal(checkExactlyOne({ prompt: true, prompt_token_ids: false }), 'prompt');
    throwsExactly(() => checkExactlyOne({ prompt: false, prompt_token_ids: false }), 'exactly one of `prompt` and `prompt_token_ids` must be set, got none');
    throwsExactly(() => checkExactlyOne({ a: true, b: true, c: false }), 'exactly one of `a`, `b`, `c` must be set, got `a` and `b`');
  });

  test('checkRequires and parseSafeUint', () => {
    throwsExactly(() => checkRequires('top_logprobs', 3, false, '`logprobs` to be true'), '`top_logprobs` requires `logprobs` to be true, got 3');
    assert.doesNotThrow(() => checkRequires('top_logprobs', 3, true, 'x'));
    assert.equal(parseSafeUint('seed', '42'), 42);
    assert.equal(parseSafeUint('seed', String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
    throwsExactly(() => parseSafeUint('seed', '9007199254740992'), '`seed` must be an integer in 0..9007199254740991, got "9007199254740992"');
  });

  test('limits are named by config key, flag and value', () => {
    const limits = { ...defaultConfig().limits, maxNewTokens: 256, maxDatasetExamples: 2 };
    assert.equal(limitLabel('maxPromptTokens', 1024), 'limits.max_prompt_tokens (--max-prompt-tokens) 1024');
    assert.equal(limitLabel('maxDatasetExamples', 5), 'limits.max_dataset_examples (--max-dataset-examples) 5');
    assert.equal(checkLimit('max_new_tokens', 256, limits, 'maxNewTokens'), 256);
    throwsExactly(() => checkLimit('max_new_tokens', 257, limits, 'maxNewTokens'), '`max_new_tokens` must be <= limits.max_new_tokens (--max-new-tokens) 256, got 257');
    assert.doesNotThrow(() => checkItemsLimit('examples', [1, 2], limits, 'maxDatasetExamples', 'examples'));
    throwsExactly(
      () => checkItemsLimit('examples', [1, 2, 3], limits, 'maxDatasetExamples', 'examples'),
      '`examples` must have at most limits.max_dataset_examples (--max-dataset-examples) 2 examples, got 3',
    );
  });

  test('every limit has a flag that resolveConfig reads, the one its label names', () => {
    const defaults = defaultConfig().limits;
    for (const key of Object.keys(defaults) as (keyof typeof defaults)[]) {
      const flag = /\((--[a-z-]+)\)/.exec(limitLabel(key, 1))![1]!;
      const opt = flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      assert.equal(opt, key, `${flag} is the flag of ${key}`);
      const value = key === 'maxMessageBytes' ? 4096 : 3;
      assert.equal(resolveConfig({ [opt]: String(value) }, {}).limits[key], value, `${flag} sets limits.${key}`);
      const env = `GENTUNE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
      assert.equal(resolveConfig({}, { [env]: String(value) }).limits[key], value, `${env} sets limits.${key}`);
    }
    assert.deepEqual(
      [defaults.maxDatasetExamples, defaults.maxQueuedJobs, defaults.maxMessageBytes],
      [1_000_000, 100, 16 * 1024 * 1024],
    );
  });

  test('quote shortens long strings', () => {
    assert.equal(quote('x'.repeat(100)), JSON.stringify(`${'x'.repeat(80)}...`));
    assert.equal(quote(-1), '-1');
  });
});
