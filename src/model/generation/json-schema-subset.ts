/**
 * The JSON Schema subset that constrained decoding supports, checked before a
 * schema reaches xgrammar. Two reasons to refuse rather than pass through:
 * a keyword the grammar ignores (`pattern`, `format`, `$ref`) would produce
 * output that does not validate, which breaks the promise that constrained
 * output always validates; and xgrammar reports a schema it cannot handle by
 * aborting its wasm runtime (`Unsupported type`, `minItems is greater than
 * maxItems`) with no message for the client. So every rule here is one
 * check whose message names the keyword's path, e.g.
 * "`response_format.json_schema.schema.properties.x.pattern` is not supported (supported: ...)".
 */
import { InvalidArgument } from '../../common/errors.js';

/** The JSON types a schema's `type` may name. */
export const JSON_TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
type JsonType = (typeof JSON_TYPES)[number];

/** Keywords that only describe (ignored by the grammar; they change nothing an output must satisfy). */
const ANNOTATIONS = ['title', 'description', '$comment', 'examples', 'default'];

/** Keywords allowed on any schema node. */
const GENERIC = ['type', 'enum', 'const', 'anyOf'];

/** Keywords that need `type` to include the given type. */
const TYPED: Record<string, JsonType> = {
  properties: 'object',
  required: 'object',
  additionalProperties: 'object',
  items: 'array',
  minItems: 'array',
  maxItems: 'array',
  minLength: 'string',
  maxLength: 'string',
};

/** Bounds allowed for numbers and integers. */
const RANGE = ['minimum', 'maximum'];

/** Every keyword the checker accepts, for the "supported: ..." part of messages. */
export const SUPPORTED_SCHEMA_KEYWORDS: readonly string[] = [...GENERIC, ...Object.keys(TYPED), ...RANGE, ...ANNOTATIONS];

/** Nesting depth at most (objects, arrays and anyOf count one level each): bounds compile time and the checker's recursion. */
export const MAX_SCHEMA_DEPTH = 32;

const SUPPORTED_LIST = SUPPORTED_SCHEMA_KEYWORDS.join(', ');

function fail(message: string): never {
  throw new InvalidArgument(message);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The JSON type of a parsed JSON value (integers are numbers too: see {@link matchesType}). */
function jsonTypeOf(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as 'object' | 'string' | 'boolean';
}

function matchesType(v: unknown, types: readonly JsonType[]): boolean {
  const t = jsonTypeOf(v);
  return types.includes(t) || (t === 'integer' && types.includes('number'));
}

/**
 * Throws InvalidArgument unless `schema` uses only the supported subset:
 * `type` (a name or a list of names), `enum`, `const`, `anyOf`; objects with
 * `properties`, `required` (names from `properties`), `additionalProperties`
 * (false only; absent means false: objects get no keys beyond `properties`); arrays with `items` (one schema), `minItems`, `maxItems`;
 * strings with `minLength`, `maxLength`; numbers and integers with `minimum`,
 * `maximum`; and the annotations `title`, `description`, `$comment`,
 * `examples`, `default` (ignored). `$schema` is allowed at the root.
 * @param path the schema's field name in messages, e.g. `response_format.json_schema.schema`.
 */
export function checkJsonSchemaSubset(schema: unknown, path: string): void {
  checkNode(schema, path, 0, true);
}

function checkNode(node: unknown, path: string, depth: number, root = false): void {
  if (!isPlainObject(node)) fail(`\`${path}\` must be a JSON object (a schema), got ${JSON.stringify(node)?.slice(0, 40) ?? String(node)}`);
  if (depth > MAX_SCHEMA_DEPTH) fail(`\`${path}\` nests deeper than ${MAX_SCHEMA_DEPTH} levels`);
  const types = checkType(node, path);
  for (const key of Object.keys(node)) {
    const at = `${path}.${key}`;
    if (ANNOTATIONS.includes(key) || GENERIC.includes(key) || (root && key === '$schema')) continue;
    const needs = TYPED[key] ?? (RANGE.includes(key) ? 'number' : undefined);
    if (needs === undefined) fail(`\`${at}\` is not supported (supported: ${SUPPORTED_LIST})`);
    if (!types || !(types.includes(needs) || (needs === 'number' && types.includes('integer')))) {
      fail(`\`${at}\` needs \`${path}.type\` to include "${needs}"`);
    }
  }
  if ('enum' in node) checkEnum(node['enum'], `${path}.enum`, types);
  if ('const' in node && types && !matchesType(node['const'], types)) fail(`\`${path}.const\` must be of \`${path}.type\` ${JSON.stringify(types)}`);
  if ('anyOf' in node) {
    const anyOf = node['anyOf'];
    if (!Array.isArray(anyOf) || anyOf.length === 0) fail(`\`${path}.anyOf\` must be a non-empty list of schemas`);
    anyOf.forEach((s, i) => checkNode(s, `${path}.anyOf[${i}]`, depth + 1));
  }
  checkObject(node, path, depth);
  checkArray(node, path, depth);
  checkBounds(node, path, 'minLength', 'maxLength', true);
  checkBounds(node, path, 'minItems', 'maxItems', true);
  checkBounds(node, path, 'minimum', 'maximum', false);
  if (types?.length === 1 && types[0] === 'integer') {
    for (const key of RANGE) {
      if (key in node && !Number.isSafeInteger(node[key])) fail(`\`${path}.${key}\` of an integer must be an integer, got ${JSON.stringify(node[key])}`);
    }
  }
}

/** `type` as a list of names, or undefined when absent. */
function checkType(node: Record<string, unknown>, path: string): JsonType[] | undefined {
  if (!('type' in node)) return undefined;
  const t = node['type'];
  const list = Array.isArray(t) ? t : [t];
  if (list.length === 0) fail(`\`${path}.type\` must not be an empty list`);
  list.forEach((name, i) => {
    if (typeof name !== 'string' || !(JSON_TYPES as readonly string[]).includes(name)) {
      const at = Array.isArray(t) ? `${path}.type[${i}]` : `${path}.type`;
      fail(`\`${at}\` must be one of ${JSON_TYPES.join(', ')}, got ${JSON.stringify(name)}`);
    }
  });
  if (new Set(list).size !== list.length) fail(`\`${path}.type\` lists a type twice: ${JSON.stringify(t)}`);
  return list as JsonType[];
}

function checkEnum(values: unknown, at: string, types: JsonType[] | undefined): void {
  if (!Array.isArray(values) || values.length === 0) fail(`\`${at}\` must be a non-empty list of values`);
  values.forEach((v, i) => {
    if (types && !matchesType(v, types)) fail(`\`${at}[${i}]\` must be of the schema's \`type\` ${JSON.stringify(types)}, got ${JSON.stringify(v)}`);
  });
}

function checkObject(node: Record<string, unknown>, path: string, depth: number): void {
  const props = node['properties'];
  if (props !== undefined) {
    if (!isPlainObject(props)) fail(`\`${path}.properties\` must be an object of schemas`);
    for (const [name, s] of Object.entries(props)) checkNode(s, `${path}.properties.${name}`, depth + 1);
  }
  const required = node['required'];
  if (required !== undefined) {
    if (!Array.isArray(required)) fail(`\`${path}.required\` must be a list of property names`);
    required.forEach((name, i) => {
      // A required name the grammar does not know would never be generated: the output would not validate.
      if (typeof name !== 'string' || !isPlainObject(props) || !(name in props)) {
        fail(`\`${path}.required[${i}]\` must name a property in \`${path}.properties\`, got ${JSON.stringify(name)}`);
      }
    });
  }
  // Only false: xgrammar compiles `true` to "any string key", which can spell a
  // listed key again with a value of the wrong type ({"a": 1, "a": "x"}), so
  // the output would not validate. Absent means false here (no extra keys).
  const extra = node['additionalProperties'];
  if (extra !== undefined && extra !== false) fail(`\`${path}.additionalProperties\` must be false (extra properties are not supported), got ${JSON.stringify(extra)}`);
}

function checkArray(node: Record<string, unknown>, path: string, depth: number): void {
  const items = node['items'];
  if (items === undefined) return;
  if (!isPlainObject(items)) fail(`\`${path}.items\` must be one schema (tuples are not supported)`);
  checkNode(items, `${path}.items`, depth + 1);
}

/** A min/max pair: numbers (non-negative integers for counts and lengths), min <= max. */
function checkBounds(node: Record<string, unknown>, path: string, minKey: string, maxKey: string, count: boolean): void {
  const check = (key: string): number | undefined => {
    const v = node[key];
    if (v === undefined) return undefined;
    const ok = typeof v === 'number' && (count ? Number.isSafeInteger(v) && v >= 0 : Number.isFinite(v));
    if (!ok) fail(`\`${path}.${key}\` must be ${count ? 'an integer >= 0' : 'a finite number'}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const min = check(minKey);
  const max = check(maxKey);
  if (min !== undefined && max !== undefined && min > max) fail(`\`${path}.${minKey}\` ${min} must be <= \`${path}.${maxKey}\` ${max}`);
}
