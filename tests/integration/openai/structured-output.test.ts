/**
 * Structured output through the OpenAI API, with the official SDK against the
 * real server and engine: `response_format` json_schema and json_object are
 * enforced while decoding (a random tiny model still writes valid JSON), in a
 * stream too, and an unsupported keyword is a 400 naming its path.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { FIXTURE_NAME } from '../helpers/fixture-model.js';
import { startHarness, type Harness } from '../helpers/harness.js';

let h: Harness;
let client: OpenAI;
before(async () => {
  h = await startHarness({ http: true, limits: { maxNewTokens: 200 } });
  client = new OpenAI({ baseURL: h.openaiBaseUrl, apiKey: 'unused', maxRetries: 0 });
});
after(() => h.close());

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 8 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    tags: { type: 'array', items: { type: 'string', enum: ['a', 'b', 'c'] }, maxItems: 3 },
    ok: { type: 'boolean' },
  },
  required: ['name', 'age', 'ok'],
  additionalProperties: false,
};
const validate = new Ajv().compile(SCHEMA);
const messages = [{ role: 'user' as const, content: 'A person as JSON:' }];

test('chat with a json_schema: at temperature 1 every finished choice parses and validates', async () => {
  const r = await client.chat.completions.create({
    model: FIXTURE_NAME, messages, n: 8, seed: 3, temperature: 1, max_tokens: 200,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: SCHEMA, strict: true } },
  });
  assert.equal(r.choices.length, 8);
  let finished = 0;
  for (const c of r.choices) {
    if (c.finish_reason !== 'stop') continue;
    finished++;
    const value: unknown = JSON.parse(c.message.content ?? '');
    assert.ok(validate(value), `${c.message.content}: ${JSON.stringify(validate.errors)}`);
  }
  assert.ok(finished >= 6, `${finished} of 8 choices finished within 200 tokens`);
});

test('a streamed json_object completion concatenates to one JSON object', async () => {
  const stream = await client.chat.completions.create({
    model: FIXTURE_NAME, messages, seed: 5, temperature: 1, max_tokens: 200, stream: true, response_format: { type: 'json_object' },
  });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  if (finish === 'stop') {
    const value: unknown = JSON.parse(text);
    assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), text);
  } else {
    assert.equal(finish, 'length');
    assert.ok(text.startsWith('{'), text);
  }
});

test('an unsupported schema keyword is a 400 naming its path', async () => {
  const schema = { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z]+$' } } };
  await assert.rejects(
    client.chat.completions.create({ model: FIXTURE_NAME, messages, max_tokens: 4, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && /`response_format\.json_schema\.schema\.properties\.id\.pattern`/.test(err.message),
  );
});
