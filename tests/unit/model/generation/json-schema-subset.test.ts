import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GentuneError } from '../../../../src/common/errors.js';
import { checkJsonSchemaSubset, MAX_SCHEMA_DEPTH } from '../../../../src/model/generation/json-schema-subset.js';
import { checkResponseFormat } from '../../../../src/model/generation/response-format.js';

const PATH = 'response_format.json_schema.schema';
const ok = (schema: unknown) => assert.doesNotThrow(() => checkJsonSchemaSubset(schema, PATH), JSON.stringify(schema));
const refused = (schema: unknown, message: RegExp) =>
  assert.throws(
    () => checkJsonSchemaSubset(schema, PATH),
    (err: unknown) => err instanceof GentuneError && err.code === 'INVALID_ARGUMENT' && message.test(err.message),
    `${JSON.stringify(schema)} should be refused with ${message}`,
  );

test('each supported keyword is accepted', () => {
  ok({ type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false });
  ok({ type: 'string', enum: ['x', 'y'] });
  ok({ type: 'string', const: 'x' });
  ok({ type: 'string', minLength: 1, maxLength: 8 });
  ok({ type: 'number' });
  ok({ type: 'number', minimum: -1.5, maximum: 2.5 });
  ok({ type: 'integer', minimum: 0, maximum: 10 });
  ok({ type: 'boolean' });
  ok({ type: 'null' });
  ok({ type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: 3 });
  ok({ anyOf: [{ type: 'string' }, { type: 'null' }] });
  ok({ type: ['string', 'null'], maxLength: 3 });
  ok({ enum: [1, 'a', null, { b: [2] }] });
  ok({ const: { a: 1 } });
  ok({ type: 'object', properties: { o: { type: 'object', properties: { p: { type: 'array', items: { type: 'object', properties: {} } } } } } });
  ok({ $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'T', description: 'd', $comment: 'c', examples: [1], default: 1, type: 'integer' });
});

test('an unsupported keyword is refused, naming its path and the supported ones', () => {
  refused({ type: 'object', properties: { x: { type: 'string', pattern: '^a' } } }, /^`response_format\.json_schema\.schema\.properties\.x\.pattern` is not supported \(supported: type, enum, const, anyOf, properties/);
  refused({ type: 'string', format: 'date' }, /`response_format\.json_schema\.schema\.format` is not supported/);
  refused({ $ref: '#/$defs/a', $defs: { a: { type: 'string' } } }, /`response_format\.json_schema\.schema\.\$ref` is not supported/);
  refused({ oneOf: [{ type: 'string' }] }, /\.oneOf` is not supported/);
  refused({ allOf: [{ type: 'string' }] }, /\.allOf` is not supported/);
  refused({ type: 'array', items: { type: 'string' }, uniqueItems: true }, /\.uniqueItems` is not supported/);
  refused({ type: 'integer', exclusiveMinimum: 0 }, /\.exclusiveMinimum` is not supported/);
  refused({ type: 'object', patternProperties: {} }, /\.patternProperties` is not supported/);
  refused({ anyOf: [{ type: 'string', multipleOf: 2 }] }, /`response_format\.json_schema\.schema\.anyOf\[0\]\.multipleOf` is not supported/);
  refused({ type: 'array', items: { type: 'object', properties: { d: { not: {} } } } }, /`response_format\.json_schema\.schema\.items\.properties\.d\.not` is not supported/);
});

test('$schema only at the root', () => {
  refused({ type: 'object', properties: { a: { $schema: 'x', type: 'string' } } }, /properties\.a\.\$schema` is not supported/);
});

test('type: names and lists of names of JSON types only', () => {
  refused({ type: 'integeer' }, /`response_format\.json_schema\.schema\.type` must be one of object, array, string, number, integer, boolean, null, got "integeer"/);
  refused({ type: ['string', 5] }, /`response_format\.json_schema\.schema\.type\[1\]` must be one of/);
  refused({ type: [] }, /\.type` must not be an empty list/);
  refused({ type: ['string', 'string'] }, /\.type` lists a type twice/);
});

test('type-specific keywords need their type', () => {
  refused({ properties: { a: { type: 'string' } } }, /`response_format\.json_schema\.schema\.properties` needs `response_format\.json_schema\.schema\.type` to include "object"/);
  refused({ type: 'string', items: { type: 'string' } }, /\.items` needs .*"array"/);
  refused({ type: 'integer', maxLength: 3 }, /\.maxLength` needs .*"string"/);
  refused({ type: 'string', minimum: 3 }, /\.minimum` needs .*"number"/);
});

test('enum and const: non-empty, of the schema type', () => {
  refused({ enum: [] }, /\.enum` must be a non-empty list of values/);
  refused({ enum: 'a' }, /\.enum` must be a non-empty list of values/);
  refused({ type: 'string', enum: ['a', 1] }, /`response_format\.json_schema\.schema\.enum\[1\]` must be of the schema's `type` \["string"\], got 1/);
  refused({ type: 'integer', const: 1.5 }, /\.const` must be of/);
  ok({ type: 'number', enum: [1, 2.5] });
});

test('anyOf: a non-empty list of schemas, each checked', () => {
  refused({ anyOf: [] }, /\.anyOf` must be a non-empty list of schemas/);
  refused({ anyOf: [{ type: 'string' }, 3] }, /`response_format\.json_schema\.schema\.anyOf\[1\]` must be a JSON object \(a schema\)/);
});

test('objects: properties are schemas, required names listed properties, additionalProperties false', () => {
  refused({ type: 'object', properties: [] }, /\.properties` must be an object of schemas/);
  refused({ type: 'object', properties: { a: 'string' } }, /\.properties\.a` must be a JSON object/);
  refused({ type: 'object', properties: { a: { type: 'string' } }, required: ['a', 'b'] }, /`response_format\.json_schema\.schema\.required\[1\]` must name a property in `response_format\.json_schema\.schema\.properties`, got "b"/);
  refused({ type: 'object', required: 'a' }, /\.required` must be a list of property names/);
  refused({ type: 'object', additionalProperties: { type: 'string' } }, /\.additionalProperties` must be false \(extra properties are not supported\), got \{"type":"string"\}/);
  refused({ type: 'object', additionalProperties: true }, /\.additionalProperties` must be false/);
});

test('arrays: items is one schema', () => {
  refused({ type: 'array', items: [{ type: 'string' }] }, /\.items` must be one schema \(tuples are not supported\)/);
});

test('bounds: counts are integers >= 0, numbers finite, min <= max', () => {
  refused({ type: 'array', minItems: 5, maxItems: 2 }, /`response_format\.json_schema\.schema\.minItems` 5 must be <= `response_format\.json_schema\.schema\.maxItems` 2/);
  refused({ type: 'string', minLength: 4, maxLength: 3 }, /\.minLength` 4 must be <= .*\.maxLength` 3/);
  refused({ type: 'string', maxLength: -1 }, /\.maxLength` must be an integer >= 0, got -1/);
  refused({ type: 'array', maxItems: 1.5 }, /\.maxItems` must be an integer >= 0, got 1.5/);
  refused({ type: 'number', minimum: 'a' }, /\.minimum` must be a finite number, got "a"/);
  refused({ type: 'number', minimum: 3, maximum: 1 }, /\.minimum` 3 must be <= .*\.maximum` 1/);
  refused({ type: 'integer', minimum: 0.5 }, /\.minimum` of an integer must be an integer, got 0.5/);
});

test('the schema is a JSON object, nested at most MAX_SCHEMA_DEPTH levels', () => {
  refused(true, /^`response_format\.json_schema\.schema` must be a JSON object \(a schema\), got true/);
  refused([], /must be a JSON object/);
  let deep: Record<string, unknown> = { type: 'string' };
  for (let i = 0; i <= MAX_SCHEMA_DEPTH; i++) deep = { type: 'array', items: deep };
  refused(deep, /nests deeper than 32 levels/);
});

test('checkResponseFormat checks the schema under the given field and passes other formats', () => {
  assert.throws(() => checkResponseFormat({ type: 'json_schema', schema: { type: 'string', pattern: 'a' } }, 'sampling.response_format'), /`sampling\.response_format\.json_schema\.schema\.pattern` is not supported/);
  assert.deepEqual(checkResponseFormat({ type: 'json_object' }, 'response_format'), { type: 'json_object' });
  assert.deepEqual(checkResponseFormat({ type: 'text' }, 'response_format'), { type: 'text' });
  assert.throws(() => checkResponseFormat({ type: 'yaml' } as never, 'response_format'), /`response_format\.type` must be one of text, json_object, json_schema, got "yaml"/);
});
