import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { GptModel } from '../../../../src/model/gpt-model.js';
import type { Gpt2Config } from '../../../../src/model/gpt-config.js';
import { generate, generateText } from '../../../../src/model/generation/generate.js';
import { liveGrammarMatchers } from '../../../../src/model/generation/grammar-constraint.js';
import type { SamplingParams } from '../../../../src/model/generation/sampling-params.js';
import { DEFAULT_SAMPLING } from '../../../helpers/default-sampling.js';
import type { ResponseFormat } from '../../../../src/model/generation/response-format.js';
import { testBackend, TINY, tinyWeights } from '../../../helpers/tiny-model.js';
import { byteTokenizer } from '../../../helpers/byte-tokenizer.js';
import { jsonPrefixStatus } from '../../../helpers/json-prefix.js';

// Room for byte-level JSON: the shared TINY shape has 64 positions only.
const CONFIG: Gpt2Config = { ...TINY, nPositions: 256 };
const RUNS = 200;
const BATCH = 50;
const PROMPT = 'JSON: ';

let model: GptModel;

before(async () => {
  await testBackend();
  model = new GptModel(CONFIG, tinyWeights(CONFIG, 5), byteTokenizer(), 'tiny');
});

after(() => model.dispose());

const ajv = new Ajv();

/** Schemas whose random walks end well within max tokens (bounded strings and arrays). */
const SCHEMAS: Record<string, Record<string, unknown>> = {
  nested: {
    type: 'object',
    properties: {
      user: {
        type: 'object',
        properties: { name: { type: 'string', maxLength: 6 }, admin: { type: 'boolean' } },
        required: ['name', 'admin'],
        additionalProperties: false,
      },
      note: { type: 'null' },
    },
    required: ['user'],
    additionalProperties: false,
  },
  arrays: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 99 }, minItems: 2, maxItems: 4 },
  enumsAnyOf: {
    type: 'object',
    properties: {
      color: { enum: ['red', 'green', 'blue'] },
      size: { anyOf: [{ type: 'integer', minimum: 1, maximum: 9 }, { type: 'string', maxLength: 3 }] },
      ok: { type: ['boolean', 'null'] },
    },
    required: ['color', 'size', 'ok'],
    additionalProperties: false,
  },
  scalars: {
    type: 'object',
    properties: {
      x: { type: 'number', minimum: -1000, maximum: 1000 },
      n: { type: 'integer' },
      s: { type: 'string', const: 'k' },
      tags: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 2 }, maxItems: 2 },
    },
    required: ['x', 'n', 's', 'tags'],
    additionalProperties: false,
  },
};

const params = (format: ResponseFormat, seed: number, over: Partial<SamplingParams> = {}): SamplingParams => ({
  ...DEFAULT_SAMPLING,
  temperature: 1,
  maxNewTokens: 160,
  seed,
  responseFormat: format,
  ...over,
});

/** RUNS generations with `format`, BATCH at a time, one seed each. */
async function runMany(format: ResponseFormat, over: Partial<SamplingParams> = {}) {
  const prompt = model.tokenizer.encode(PROMPT);
  const out: { text: string; ids: number[]; finishReason?: string }[] = [];
  for (let start = 0; start < RUNS; start += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, k) => ({ promptIds: prompt, params: params(format, start + k, over) }));
    out.push(...(await generateText(model, batch)));
  }
  return out;
}

for (const [name, schema] of Object.entries(SCHEMAS)) {
  test(`${RUNS} generations at temperature 1 with the ${name} schema: every finished output parses and validates`, async () => {
    const validate = ajv.compile(schema);
    const outs = await runMany({ type: 'json_schema', schema });
    const finished = outs.filter((o) => o.finishReason === 'eos');
    assert.ok(finished.length >= RUNS * 0.9, `only ${finished.length} of ${RUNS} finished with eos`);
    for (const o of finished) {
      const value = JSON.parse(o.text) as unknown;
      assert.ok(validate(value), `${o.text}: ${ajv.errorsText(validate.errors)}`);
      // The EOS token ends the grammar and is the last id.
      assert.equal(o.ids.at(-1), model.tokenizer.eosId);
    }
    for (const o of outs.filter((x) => x.finishReason !== 'eos')) {
      assert.equal(o.finishReason, 'length');
      assert.equal(jsonPrefixStatus(o.text), 'prefix', o.text);
    }
    assert.equal(liveGrammarMatchers(), 0);
  });
}

test('an unbounded number is a JSON number (whose exponent may overflow a double: RFC 8259 sets no range)', async () => {
  const outs = await runMany({ type: 'json_schema', schema: { type: 'array', items: { type: 'number' }, maxItems: 3 } });
  const finished = outs.filter((o) => o.finishReason === 'eos');
  assert.ok(finished.length >= RUNS * 0.9, `only ${finished.length} of ${RUNS} finished with eos`);
  for (const o of finished) {
    const value = JSON.parse(o.text) as unknown[];
    assert.ok(Array.isArray(value) && value.length <= 3 && value.every((v) => typeof v === 'number'), o.text);
  }
});

test('json_object: every finished output is a JSON object, every cut one a JSON prefix', async () => {
  const outs = await runMany({ type: 'json_object' }, { maxNewTokens: 60 });
  for (const o of outs) {
    if (o.finishReason === 'eos') {
      const value = JSON.parse(o.text) as unknown;
      assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), o.text);
    } else {
      assert.equal(o.finishReason, 'length');
      assert.equal(jsonPrefixStatus(o.text), 'prefix', o.text);
    }
  }
  assert.ok(outs.some((o) => o.finishReason === 'eos'));
  assert.ok(outs.every((o) => o.text.startsWith('{')));
  assert.equal(liveGrammarMatchers(), 0);
});

test('max_new_tokens running out gives finish reason length and a valid prefix', async () => {
  const schema = SCHEMAS['nested']!;
  const prompt = model.tokenizer.encode(PROMPT);
  for (const maxNewTokens of [1, 5, 12, 20]) {
    const outs = await generateText(model, Array.from({ length: 20 }, (_, k) => ({ promptIds: prompt, params: params({ type: 'json_schema', schema }, k, { maxNewTokens }) })));
    for (const o of outs) {
      assert.equal(o.finishReason, 'length');
      assert.equal(o.ids.length, maxNewTokens);
      assert.equal(jsonPrefixStatus(o.text), 'prefix', o.text);
      // Nothing but the layout's prefix: `{"user": {"name": "`.
      const layout = '{"user": {"name": "';
      assert.ok(o.text.startsWith(layout.slice(0, maxNewTokens)) || layout.startsWith(o.text), o.text);
    }
  }
});

test('greedy decoding with a schema is deterministic and free text is unchanged', async () => {
  const prompt = model.tokenizer.encode(PROMPT);
  const schema = SCHEMAS['enumsAnyOf']!;
  const g = (format?: ResponseFormat) => ({ promptIds: prompt, params: params(format ?? { type: 'text' }, 0, { temperature: 0, maxNewTokens: 40, stopAtEos: false }) });
  const [a, b] = await generateText(model, [g({ type: 'json_schema', schema }), g({ type: 'json_schema', schema })]);
  assert.deepEqual(a.ids, b.ids);
  assert.ok(ajv.validate(schema, JSON.parse(a.text)), a.text);
  // A text row next to constrained ones decodes exactly as alone.
  const [alone] = await generateText(model, [g()]);
  const [, mixed] = await generateText(model, [g({ type: 'json_schema', schema }), g()]);
  assert.deepEqual(mixed.ids, alone.ids);
});

test('a model vocab_size padded past the tokenizer: the padding ids are never sampled', async () => {
  const padded: Gpt2Config = { ...CONFIG, vocabSize: 320 };
  const big = new GptModel(padded, tinyWeights(padded, 9), byteTokenizer(), 'padded');
  try {
    const prompt = big.tokenizer.encode(PROMPT);
    const schema = SCHEMAS['arrays']!;
    const outs = await generateText(big, Array.from({ length: 40 }, (_, k) => ({ promptIds: prompt, params: params({ type: 'json_schema', schema }, k) })));
    for (const o of outs) {
      assert.ok(o.ids.every((id) => id <= big.tokenizer.eosId), `sampled a padding id: ${o.ids}`);
      if (o.finishReason === 'eos') assert.ok(ajv.validate(schema, JSON.parse(o.text)), o.text);
    }
  } finally {
    big.dispose();
  }
});

test('every grammar matcher is disposed when its sequence ends: finish, cancel, consumer gone, consumer error', async () => {
  const prompt = model.tokenizer.encode(PROMPT);
  const schema = SCHEMAS['nested']!;
  const req = (k: number, maxNewTokens = 160) => ({ promptIds: prompt, params: params({ type: 'json_schema', schema }, k, { maxNewTokens }) });
  assert.equal(liveGrammarMatchers(), 0);
  // Finished (eos and length).
  await generateText(model, [req(1), req(2, 3)]);
  assert.equal(liveGrammarMatchers(), 0);
  // Cancelled by the signal mid-way.
  const abort = new AbortController();
  let seen = 0;
  for await (const _ of generate(model, [req(3), req(4)], abort.signal)) {
    if (++seen === 1) assert.equal(liveGrammarMatchers(), 2);
    if (seen === 4) abort.abort();
  }
  assert.equal(liveGrammarMatchers(), 0);
  // The consumer stops reading.
  for await (const _ of generate(model, [req(5), req(6)])) break;
  assert.equal(liveGrammarMatchers(), 0);
  // The consumer throws.
  await assert.rejects(async () => {
    for await (const _ of generate(model, [req(7)])) throw new Error('consumer failed');
  }, /consumer failed/);
  assert.equal(liveGrammarMatchers(), 0);
});

test('a schema xgrammar cannot compile is InvalidArgument, not a crash', async () => {
  const prompt = model.tokenizer.encode(PROMPT);
  await assert.rejects(
    generateText(model, [{ promptIds: prompt, params: params({ type: 'json_schema', schema: { type: 'string', pattern: 'a+' } }, 0) }]),
    /`response_format\.json_schema\.schema\.pattern` is not supported/,
  );
  assert.equal(liveGrammarMatchers(), 0);
});
