/**
 * Request bodies of the OpenAI API are checked with zod schemas; this turns
 * the first zod issue into the InvalidArgument every gentune validation
 * throws, naming the field as a path ("`messages[0].role`") and the value it
 * got, in the words of src/server/validate.ts:
 *
 *   "`temperature` must be a number, got \"hot\""
 *   "`tools` is not supported by gentune"
 *   "`messages[0].role` must be one of \"system\", \"user\", \"assistant\", got \"tool\""
 *
 * Unknown fields are errors (the schemas are strict), so a parameter gentune
 * does not implement is refused by name instead of being ignored.
 */
import type { z } from 'zod';
import { InvalidArgument } from '../common/errors.js';
import { quote } from '../server/validate.js';

/** `['messages', 0, 'role']` -> "messages[0].role"; prefixed with `root` when given. */
export function fieldPath(path: readonly PropertyKey[], root = ''): string {
  let out = root;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return quote(value);
  if (Array.isArray(value)) return 'an array';
  return `a value of type ${typeof value}`;
}

type Issue = z.core.$ZodIssue;

/** The message of one issue, naming its field. */
export function issueMessage(issue: Issue, root = ''): string {
  const field = fieldPath(issue.path, root);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const names = issue.keys.map((k) => `\`${fieldPath([...issue.path, k], root)}\``);
      return `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} not supported by gentune`;
    }
    case 'invalid_type':
      if (input === undefined) return `\`${field}\` is required`;
      return `\`${field}\` must be ${article(issue.expected)}, got ${shown(input)}`;
    case 'invalid_value':
      return `\`${field}\` must be ${issue.values.length === 1 ? quote(issue.values[0]) : `one of ${issue.values.map((v) => quote(v)).join(', ')}`}, got ${shown(input)}`;
    case 'too_small':
      return issue.origin === 'array' || issue.origin === 'string'
        ? `\`${field}\` must have at least ${String(issue.minimum)} ${issue.origin === 'array' ? 'items' : 'characters'}, got ${shown(Array.isArray(input) ? input.length : input)}`
        : `\`${field}\` must be ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}, got ${shown(input)}`;
    case 'too_big':
      return issue.origin === 'array' || issue.origin === 'string'
        ? `\`${field}\` must have at most ${String(issue.maximum)} ${issue.origin === 'array' ? 'items' : 'characters'}, got ${shown(Array.isArray(input) ? input.length : typeof input === 'string' ? [...input].length : input)}`
        : `\`${field}\` must be ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}, got ${shown(input)}`;
    case 'invalid_union':
      return `\`${field}\` has an unexpected shape, got ${shown(input)}${issue.message ? ` (${issue.message})` : ''}`;
    default:
      return `\`${field}\` ${issue.message}`;
  }
}

function article(expected: string): string {
  const name = expected === 'int' ? 'integer' : expected;
  return /^[aeiou]/.test(name) ? `an ${name}` : `a ${name}`;
}

/**
 * Parses `value` with `schema`.
 * @param root prefix of every field name ("" for a request body).
 * @throws InvalidArgument naming the first field at fault.
 */
export function parseRequest<S extends z.ZodType>(schema: S, value: unknown, root = ''): z.output<S> {
  const parsed = schema.safeParse(value ?? {}, { reportInput: true });
  if (parsed.success) return parsed.data;
  throw new InvalidArgument(issueMessage(parsed.error.issues[0]!, root));
}
