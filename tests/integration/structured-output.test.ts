import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Code } from '@grpc/grpc-js';
import { Ajv } from 'ajv';
import { Metric } from '../../src/gen/gentune/v1/evaluate.js';
import { FinishReason } from '../../src/gen/gentune/v1/generate.js';
import { jsonPrefixStatus } from '../helpers/json-prefix.js';
import { rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 8 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, minItems: 1, maxItems: 3 },
    pet: { anyOf: [{ type: 'null' }, { type: 'object', properties: { kind: { type: 'string', maxLength: 5 } }, required: ['kind'], additionalProperties: false }] },
  },
  required: ['name', 'age', 'tags', 'pet'],
  additionalProperties: false,
};

const jsonSchema = (schema: unknown) => ({ format: { $case: 'jsonSchema' as const, value: { name: 'person', schema: JSON.stringify(schema), strict: true } } });

describe('structured output over gRPC', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ limits: { maxNewTokens: 200 } });
  });
  after(() => h.close());

  test('Generate with sampling.response_format json_schema returns JSON that validates', async () => {
    const validate = new Ajv().compile(SCHEMA);
    const outs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        h.client.generateText({ prompt: 'Person: ', sampling: { maxNewTokens: 200, temperature: 1, seed: String(i + 1), responseFormat: jsonSchema(SCHEMA) } }),
      ),
    );
    const finished = outs.filter((o) => o.finishReason === FinishReason.FINISH_REASON_EOS);
    assert.ok(finished.length >= 6, `${finished.length} of 8 finished with EOS`);
    for (const o of outs) {
      if (o.finishReason === FinishReason.FINISH_REASON_EOS) assert.ok(validate(JSON.parse(o.text)), `${o.text}: ${JSON.stringify(validate.errors)}`);
      else assert.equal(jsonPrefixStatus(o.text), 'prefix', o.text);
    }
  });

  test('json_object gives a JSON object or, cut short, a prefix of one', async () => {
    const out = await h.client.generateText({ prompt: 'x', sampling: { maxNewTokens: 40, temperature: 0, responseFormat: { format: { $case: 'jsonObject', value: {} } } } });
    assert.ok(out.text.startsWith('{'), out.text);
    if (out.finishReason === FinishReason.FINISH_REASON_EOS) assert.equal(typeof JSON.parse(out.text), 'object');
    else assert.equal(jsonPrefixStatus(out.text), 'prefix', out.text);
  });

  test('an unsupported keyword is INVALID_ARGUMENT naming its path', async () => {
    const schema = { type: 'object', properties: { x: { type: 'string', pattern: '^a+$' } } };
    await rejectsWith(
      h.client.generateText({ prompt: 'x', sampling: { responseFormat: jsonSchema(schema) } }),
      Code.INVALID_ARGUMENT,
      /`sampling\.response_format\.json_schema\.schema\.properties\.x\.pattern` is not supported \(supported: /,
    );
  });

  test('schema text that is not JSON is INVALID_ARGUMENT naming the field', async () => {
    const bad = { format: { $case: 'jsonSchema' as const, value: { name: '', schema: '{type: object}', strict: false } } };
    await rejectsWith(h.client.generateText({ prompt: 'x', sampling: { responseFormat: bad } }), Code.INVALID_ARGUMENT, /`sampling\.response_format\.json_schema\.schema` must be JSON text/);
    const empty = { format: { $case: 'jsonSchema' as const, value: { name: '', schema: '', strict: false } } };
    await rejectsWith(h.client.generateText({ prompt: 'x', sampling: { responseFormat: empty } }), Code.INVALID_ARGUMENT, /`sampling\.response_format\.json_schema\.schema` is required/);
  });

  test('Evaluate applies generation.response_format to the generated texts', async () => {
    const schema = { type: 'object', properties: { answer: { enum: ['2', '4', '6'] } }, required: ['answer'], additionalProperties: false };
    const res = await h.client.evaluate({
      examples: [
        { prompt: 'Q: 1+1?', completion: '{"answer": "2"}' },
        { prompt: 'Q: 2+2?', completion: '{"answer": "4"}' },
      ],
      metrics: [Metric.METRIC_EXACT_MATCH],
      includeExamples: true,
      generation: { maxNewTokens: 40, responseFormat: jsonSchema(schema) },
    });
    const rows = res.results[0]!.examples;
    assert.equal(rows.length, 2);
    for (const r of rows) assert.match(r.generated, /^\{"answer": "[246]"\}$/);
    await rejectsWith(
      h.client.evaluate({ examples: [{ prompt: 'a', completion: 'b' }], metrics: [Metric.METRIC_EXACT_MATCH], generation: { responseFormat: jsonSchema({ type: 'string', format: 'email' }) } }),
      Code.INVALID_ARGUMENT,
      /`generation\.response_format\.json_schema\.schema\.format` is not supported/,
    );
  });
});
