/**
 * Configuration is read in one place (STYLE.md habit 10): the server's in
 * src/engine/config.ts, the client CLI's in src/cli/client-env.ts. This scans
 * every source file under src/ for `process.env`, so a second reader fails
 * here instead of surfacing as a setting that `--help` does not list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const READERS = ['src/engine/config.ts', 'src/cli/client-env.ts'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'gen' ? [] : sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

test('only src/engine/config.ts and src/cli/client-env.ts read process.env', () => {
  const files = sources(join(ROOT, 'src'));
  assert.ok(files.length > 100, `found ${files.length} source files`);
  // Code, not comments: a line that mentions process.env in a comment does not read it.
  const readers = files
    .filter((f) => readFileSync(f, 'utf8').split('\n').some((line) => /process\.env\b/.test(line.replace(/\/\/.*$|^\s*\*.*$/, ''))))
    .map((f) => relative(ROOT, f));
  assert.deepEqual(readers.sort(), [...READERS].sort());
});
