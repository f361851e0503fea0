/**
 * Builds gentune's bundled SFT datasets (see datasets/README.md):
 *
 *   npx tsx scripts/build-datasets.ts [--out <dir>]
 *
 * --out defaults to the repository's datasets/ folder. The build is seeded
 * and deterministic: re-running it reproduces the files byte for byte.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BuiltDataset } from './datasets/common.js';
import { buildEnFr } from './datasets/en-fr.js';
import { buildNumberWords } from './datasets/number-words.js';
import { buildReverseWords } from './datasets/reverse-words.js';
import { buildWordnetDefinitions } from './datasets/wordnet-definitions.js';
import { renderFiles, writeFiles } from './datasets/write.js';

/** The repository's datasets/ folder. */
export const DEFAULT_DATASETS_DIR = fileURLToPath(new URL('../datasets/', import.meta.url));

/** Every bundled dataset, in README order. */
export function buildAllDatasets(): BuiltDataset[] {
  return [buildNumberWords(), buildEnFr(), buildWordnetDefinitions(), buildReverseWords()];
}

function main(): void {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write('usage: npx tsx scripts/build-datasets.ts [--out <dir>]\n');
    return;
  }
  const outDir = resolve(values.out ?? DEFAULT_DATASETS_DIR);
  const files = renderFiles(buildAllDatasets());
  writeFiles(outDir, files);
  for (const [rel, text] of files) {
    if (rel.endsWith('.jsonl')) {
      const lines = text.split('\n').length - 1;
      const bytes = Buffer.byteLength(text);
      process.stdout.write(`${rel.padEnd(36)} ${String(lines).padStart(5)} lines ${String(bytes).padStart(8)} bytes\n`);
    }
  }
  process.stdout.write(`wrote ${files.size} files to ${outDir}\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
