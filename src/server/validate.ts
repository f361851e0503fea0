/**
 * Request validation: one rule per check, each throwing InvalidArgument with a
 * message that quotes the field (proto name, snake_case; `list[i]` for list
 * items) and the value it got, in the style of TGI's validation errors:
 *
 *   "`temperature` must be >= 0 and <= 100, got -1"
 *   "`adapter` must not contain '/', '\\' or '..', got \"../x\""
 *
 * Handlers compose these rules while decoding a request into engine types.
 */
import { InvalidArgument } from '../common/errors.js';
import { isStoreName, STORE_NAME_RULE } from '../common/store-name.js';
import type { LimitsConfig } from '../engine/config.js';
import { limitLabel } from '../engine/limit-label.js';
import type { AdapterRef } from '../engine/engine-api.js';

/** Longest value quoted in a message, in characters (the rest is elided). */
const QUOTE_LIMIT = 80;

/** Renders a value for a message: strings JSON-quoted (and shortened), numbers as is. */
export function quote(value: unknown): string {
  if (typeof value === 'string') {
    const short = value.length > QUOTE_LIMIT ? `${value.slice(0, QUOTE_LIMIT)}...` : value;
    return JSON.stringify(short);
  }
  return String(value);
}

function fail(message: string): never {
  throw new InvalidArgument(message);
}

/** `value` must be a finite number (NaN and Infinity decode from floats/doubles). */
export function checkFinite(field: string, value: number): number {
  if (!Number.isFinite(value)) fail(`\`${field}\` must be a finite number, got ${quote(value)}`);
  return value;
}

/** Bounds of {@link checkRange}; `*Exclusive` makes a bound strict. */
export interface Bounds {
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

/** `value` must lie within `bounds`, e.g. "`top_p` must be > 0 and <= 1, got 1.5". */
export function checkRange(field: string, value: number, bounds: Bounds): number {
  checkFinite(field, value);
  const { min, max, minExclusive = false, maxExclusive = false } = bounds;
  const low = min === undefined || (minExclusive ? value > min : value >= min);
  const high = max === undefined || (maxExclusive ? value < max : value <= max);
  if (!low || !high) {
    const parts: string[] = [];
    if (min !== undefined) parts.push(`${minExclusive ? '>' : '>='} ${min}`);
    if (max !== undefined) parts.push(`${maxExclusive ? '<' : '<='} ${max}`);
    fail(`\`${field}\` must be ${parts.join(' and ')}, got ${quote(value)}`);
  }
  return value;
}

/** `value` must not be empty. */
export function checkRequired(field: string, value: string): string {
  if (value.length === 0) fail(`\`${field}\` is required, got ""`);
  return value;
}

/** `value` must be at most `max` characters. */
export function checkMaxLength(field: string, value: string, max: number): string {
  if ([...value].length > max) fail(`\`${field}\` must be at most ${max} characters, got ${quote(value)}`);
  return value;
}

/** `value` must not be usable as a path: no '/', '\' or '..'. */
export function checkNoPath(field: string, value: string): string {
  if (/[/\\]/.test(value) || value.includes('..')) {
    fail(`\`${field}\` must not contain '/', '\\' or '..', got ${quote(value)}`);
  }
  return value;
}

/** `value` must not contain control characters (they break logs and file names). */
export function checkPrintable(field: string, value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) fail(`\`${field}\` must not contain control characters, got ${quote(value)}`);
  return value;
}

/** An adapter name: required, no path, the store's name rule (src/common/store-name.ts). */
export function checkAdapterName(field: string, value: string): string {
  return checkStoreName(field, value);
}

/** A server-assigned id (job, dataset): a folder name of its store, so the same rule as adapter names. */
export function checkId(field: string, value: string): string {
  return checkStoreName(field, value);
}

/** Required, no path, and {@link STORE_NAME_RULE}: no `.`, `.tmp` or other hidden name reaches a store. */
function checkStoreName(field: string, value: string): string {
  checkRequired(field, value);
  checkNoPath(field, value);
  if (!isStoreName(value)) fail(`\`${field}\` must be ${STORE_NAME_RULE}, got ${quote(value)}`);
  return value;
}

/** An alias name: a letter, then up to 31 of [A-Za-z0-9_-] (so never a version number). */
const ALIAS = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/** An alias name, as {@link ALIAS} says. */
export function checkAliasName(field: string, value: string): string {
  checkRequired(field, value);
  if (!ALIAS.test(value)) fail(`\`${field}\` must be a letter followed by up to 31 characters of [A-Za-z0-9_-], got ${quote(value)}`);
  return value;
}

/** Parses "name", "name@version" (version a positive integer) or "name@alias" (alias a letter, then [A-Za-z0-9_-]). */
export function parseAdapterRef(field: string, value: string): AdapterRef {
  checkRequired(field, value);
  checkNoPath(field, value);
  const at = value.lastIndexOf('@');
  if (at < 0) return { name: checkAdapterName(field, value) };
  const suffix = value.slice(at + 1);
  if (ALIAS.test(suffix)) return { name: checkAdapterName(field, value.slice(0, at)), alias: suffix };
  if (!/^[1-9]\d{0,8}$/.test(suffix)) {
    fail(`\`${field}\` version must be a positive integer ("name@3") or an alias ("name@prod"), got ${quote(value)}`);
  }
  return { name: checkAdapterName(field, value.slice(0, at)), version: Number(suffix) };
}

/** Like {@link parseAdapterRef}, but '' means the base model (null). */
export function parseOptionalAdapterRef(field: string, value: string): AdapterRef | null {
  return value === '' ? null : parseAdapterRef(field, value);
}

/** A list must have at least `min` items. */
export function checkMinItems(field: string, items: readonly unknown[], min: number): void {
  if (items.length < min) fail(`\`${field}\` must have at least ${min} item${min === 1 ? '' : 's'}, got ${items.length}`);
}

/** A list must have at most `max` items. */
export function checkMaxItems(field: string, items: readonly unknown[], max: number): void {
  if (items.length > max) fail(`\`${field}\` must have at most ${max} items, got ${items.length}`);
}

/** Some item of a list must satisfy `predicate`, e.g. "must include a message with role \"assistant\"". */
export function checkSome<T>(field: string, items: readonly T[], predicate: (item: T) => boolean, what: string, show: (items: readonly T[]) => unknown): void {
  if (!items.some(predicate)) fail(`\`${field}\` must include ${what}, got ${JSON.stringify(show(items))}`);
}

/**
 * A value must stay within a server limit (`limits[key]`); the message names
 * the limit by its config key and flag, so that the caller knows what to ask
 * the operator to raise:
 *
 *   "`max_new_tokens` must be <= limits.max_new_tokens (--max-new-tokens) 256, got 300"
 */
export function checkLimit(field: string, value: number, limits: LimitsConfig, key: keyof LimitsConfig): number {
  const max = limits[key];
  if (value > max) fail(`\`${field}\` must be <= ${limitLabel(key, max)}, got ${quote(value)}`);
  return value;
}

/**
 * A list must have at most `limits[key]` items (`noun` names them):
 *
 *   "`examples` must have at most limits.max_dataset_examples (--max-dataset-examples) 10 examples, got 11"
 */
export function checkItemsLimit(field: string, items: readonly unknown[], limits: LimitsConfig, key: keyof LimitsConfig, noun = 'items'): void {
  const max = limits[key];
  if (items.length > max) fail(`\`${field}\` must have at most ${limitLabel(key, max)} ${noun}, got ${items.length}`);
}

/** A list must not repeat an item. */
export function checkUnique(field: string, items: readonly (string | number)[]): void {
  const seen = new Set<string | number>();
  for (const item of items) {
    if (seen.has(item)) fail(`\`${field}\` must not contain duplicates, got ${quote(item)} twice`);
    seen.add(item);
  }
}

/** `value` must be one of `allowed`. */
export function checkOneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    fail(`\`${field}\` must be one of ${allowed.join(', ')}, got ${quote(value)}`);
  }
  return value as T;
}

/**
 * Decodes a proto enum number through `mapping` (number -> domain value);
 * unknown numbers (a newer client) are rejected by name.
 */
export function checkEnum<T>(field: string, value: number, mapping: ReadonlyMap<number, T>, names: string): T {
  if (!mapping.has(value)) fail(`\`${field}\` must be one of ${names}, got ${quote(value)}`);
  return mapping.get(value) as T;
}

/** Exactly one of the named alternatives must be set. */
export function checkExactlyOne(alternatives: Record<string, boolean>): string {
  const names = Object.keys(alternatives);
  const set = names.filter((n) => alternatives[n]);
  if (set.length === 1) return set[0]!;
  const list = names.map((n) => `\`${n}\``).join(names.length === 2 ? ' and ' : ', ');
  fail(`exactly one of ${list} must be set, got ${set.length === 0 ? 'none' : set.map((n) => `\`${n}\``).join(' and ')}`);
}

/**
 * A field that only makes sense with another one: `requirement` must hold when
 * `field` is set, e.g. "`top_logprobs` requires `logprobs` to be true, got 3".
 */
export function checkRequires(field: string, value: unknown, requirement: boolean, needs: string): void {
  if (!requirement) fail(`\`${field}\` requires ${needs}, got ${quote(value)}`);
}

/** A decimal string holding an integer in 0..2^53-1 (uint64 fields read as strings). */
export function parseSafeUint(field: string, value: string): number {
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    fail(`\`${field}\` must be an integer in 0..${Number.MAX_SAFE_INTEGER}, got ${quote(value)}`);
  }
  return Number(value);
}
