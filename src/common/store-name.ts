/**
 * The one rule for every name that becomes a folder of the data directory:
 * adapter names, dataset and job ids (and aliases, when they come). A name
 * starts with a letter or a digit, so that no name is `.`, `..` or hidden:
 * the stores keep hidden names for their own temporary and trash folders
 * (store-files.ts), and remove those at start as leftovers.
 */

/** `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`: 1..64 characters, no leading dot, no path. */
export const STORE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The rule in words, for error messages ("`adapter` must be ..."). */
export const STORE_NAME_RULE = '1..64 characters of [A-Za-z0-9._-], starting with a letter or digit';

/** True when `name` may name an entry of a store. */
export function isStoreName(name: string): boolean {
  return STORE_NAME.test(name);
}
