// METEOR against NLTK's meteor_score: the committed goldens
// (tests/unit/eval/meteor-golden.json, written by
// `tests/reference/meteor_reference.py golden`), and a live comparison over
// seeded random sentences and WordNet lookups run through python3-nltk
// (scripts/test.sh installs it; missing, it skips here and fails under CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { corpusMeteor, meteorScore, singleMeteorScore } from '../../../src/eval/meteor.js';
import { WordNet } from '../../../src/eval/wordnet.js';
import { Rng } from '../../../src/common/rng.js';
import { requirePeer, skipWithoutPeer } from '../../helpers/test-peer.js';

const PYTHON = '/usr/bin/python3';
const REFERENCE = fileURLToPath(new URL('../../reference/meteor_reference.py', import.meta.url));
const GOLDEN = JSON.parse(readFileSync(new URL('./meteor-golden.json', import.meta.url), 'utf8')) as {
  cases: { hypothesis: string; references: string[]; meteor: number }[];
};
const missing = !(existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import nltk.translate.meteor_score']).status === 0) &&
  `${PYTHON} with NLTK not available (apt-get install -y python3-nltk)`;

// The same float operations as NLTK: equal up to pow()'s last bit.
const EPSILON = 1e-12;

function python(mode: string, input: unknown): unknown {
  return JSON.parse(execFileSync(PYTHON, [REFERENCE, mode], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 64 << 20 }));
}

test('every golden case scores as NLTK meteor_score did', () => {
  const scores = corpusMeteor(GOLDEN.cases.map((c) => c.hypothesis), GOLDEN.cases.map((c) => c.references));
  assert.ok(GOLDEN.cases.length >= 16);
  GOLDEN.cases.forEach((c, i) => {
    assert.ok(Math.abs(scores.perExample[i] - c.meteor) < EPSILON, `${JSON.stringify(c.hypothesis)}: NLTK ${c.meteor}, got ${scores.perExample[i]}`);
  });
  const mean = GOLDEN.cases.reduce((sum, c) => sum + c.meteor, 0) / GOLDEN.cases.length;
  assert.ok(Math.abs(scores.score - mean) < EPSILON);
});

test("NLTK's doctest: 0.6944 for its example, 0 without a match, and the parameters change the score", () => {
  const hyp = 'It is a guide to action which ensures that the military always obeys the commands of the party'.split(' ');
  const ref = 'It is a guide to action that ensures that the military will forever heed Party commands'.split(' ');
  assert.equal(Math.round(singleMeteorScore(ref, hyp) * 1e4) / 1e4, 0.6944);
  assert.equal(singleMeteorScore(['this', 'is', 'a', 'cat'], ['non', 'matching', 'hypothesis']), 0);
  assert.notEqual(singleMeteorScore(ref, hyp, { gamma: 0 }), singleMeteorScore(ref, hyp));
  assert.notEqual(singleMeteorScore(ref, hyp, { alpha: 0.5 }), singleMeteorScore(ref, hyp));
  // The best reference wins.
  assert.equal(meteorScore([['x', 'y'], ref], hyp), singleMeteorScore(ref, hyp));
});

test('each alignment stage counts: exact, Porter stem, then WordNet synonym of the stem', () => {
  // One matched unigram of one word each: 1 chunk, fragmentation 1, score = (1 - 0.5) * 1.
  assert.equal(singleMeteorScore(['Cat'], ['cat']), 0.5);
  assert.equal(singleMeteorScore(['runs'], ['running']), 0.5); // stems run / run
  assert.equal(singleMeteorScore(['auto'], ['car']), 0.5); // synonyms
  assert.equal(singleMeteorScore(['good'], ['better']), 0.5); // adj.exc: better -> good
  // NLTK's quirk, copied: the synonym stage looks up the Porter stem, and
  // WordNet has no `automobil` (nor `gees`), so these synonyms never align.
  assert.equal(singleMeteorScore(['car'], ['automobile']), 0);
  assert.equal(singleMeteorScore(['goose'], ['geese']), 0);
  assert.equal(singleMeteorScore(['dog'], ['auto']), 0);
});

test('the shipped WordNet answers synsets() as NLTK does over the same files', (t) => {
  if (skipWithoutPeer(missing)) return t.skip(missing || undefined);
  requirePeer(missing);
  // Exceptions, every suffix rule, several parts of speech, capitalised lemma names, unknown words.
  const words = ['run', 'geese', 'better', 'best', 'ran', 'boxes', 'wolves', 'churches', 'dishes', 'women', 'flies', 'happier',
    'finest', 'bought', 'went', 'abaci', 'party', 'quickly', 'am', 'is', 'lying', 'zzzz', 'eseseses', 'car', 'dog', 'glad', 'play'];
  const nltk = python('synonyms', words) as Record<string, string[]>;
  const wordnet = WordNet.shipped();
  for (const word of words) {
    const ours = [...wordnet.synonyms(word)].filter((w) => w !== word || nltk[word].includes(word)).sort();
    assert.deepEqual(ours, nltk[word], word);
  }
});

/** Groups of related words (synonyms, inflections, stems) and fillers, so every stage of the alignment gets work. */
const VOCABULARY = [
  'big', 'large', 'great', 'huge', 'run', 'runs', 'running', 'ran', 'car', 'auto', 'automobile', 'machine', 'happy', 'glad',
  'geese', 'goose', 'better', 'good', 'well', 'children', 'child', 'kid', 'kids', 'buy', 'bought', 'purchase', 'house', 'home',
  'Party', 'party', 'the', 'a', 'of', 'to', 'and', 'is', 'was', 'quick', 'fast', 'quickly', 'dog', 'dogs', 'Dog', 'cat.', 'cat',
  'begin', 'start', 'commence', 'end', 'finish', 'stop', 'talk', 'speak', 'spoke', 'ship', 'boat', 'vessel',
];

function sentence(rng: Rng): string {
  const n = rng.int(12);
  return Array.from({ length: n }, () => VOCABULARY[rng.int(VOCABULARY.length)]).join(' ');
}

test('400 seeded random cases score within 1e-12 of NLTK meteor_score', (t) => {
  if (skipWithoutPeer(missing)) return t.skip(missing || undefined);
  requirePeer(missing);
  const rng = new Rng(20261207);
  const cases = Array.from({ length: 400 }, () => ({
    hypothesis: sentence(rng),
    references: Array.from({ length: 1 + rng.int(3) }, () => sentence(rng)),
  }));
  const nltk = python('score', cases) as number[];
  const ours = corpusMeteor(cases.map((c) => c.hypothesis), cases.map((c) => c.references)).perExample;
  let nonZero = 0;
  cases.forEach((c, i) => {
    if (nltk[i] > 0) nonZero++;
    assert.ok(Math.abs(ours[i] - nltk[i]) < EPSILON, `${JSON.stringify(c)}: NLTK ${nltk[i]}, got ${ours[i]}`);
  });
  assert.ok(nonZero > 200, `only ${nonZero} of 400 cases align anything: the comparison would prove little`);
});
