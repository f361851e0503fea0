import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSftJsonlFile } from '../../../src/training/data/jsonl-reader.js';
import { numberToWords } from '../../../scripts/datasets/number-words.js';
import { lexicon, renderEnglish, renderFrench, renderPlace, type NounPhrase } from '../../../scripts/datasets/en-fr.js';
import { firstGloss } from '../../../scripts/datasets/wordnet-definitions.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DATASETS = join(ROOT, 'datasets');
const NAMES = ['number-words', 'en-fr', 'wordnet-definitions', 'reverse-words'];
const SPLITS = ['train', 'validation', 'test'] as const;
type Split = (typeof SPLITS)[number];

/** Largest bundled file allowed, in bytes. */
const MAX_FILE_BYTES = 300 * 1024;

interface Example {
  prompt: string;
  completion: string;
}

async function readSplit(name: string, split: Split): Promise<Example[]> {
  const out: Example[] = [];
  let line = 0;
  for await (const record of readSftJsonlFile(join(DATASETS, name, `${split}.jsonl`))) {
    line++;
    assert.equal(record.line, line, `${name}/${split}: no blank lines`);
    assert.equal(record.example.kind, 'prompt_completion', `${name}/${split} line ${line}`);
    if (record.example.kind === 'prompt_completion') {
      out.push({ prompt: record.example.prompt, completion: record.example.completion });
    }
  }
  return out;
}

async function readAll(name: string): Promise<Record<Split, Example[]>> {
  return {
    train: await readSplit(name, 'train'),
    validation: await readSplit(name, 'validation'),
    test: await readSplit(name, 'test'),
  };
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? listFiles(path) : [path];
    })
    .sort();
}

function words(examples: Example[], separator: RegExp = /\s+/): Set<string> {
  return new Set(examples.flatMap((e) => e.completion.split(separator).filter((w) => w !== '')));
}

test('every line of every bundled file parses as a prompt/completion example', async () => {
  for (const name of NAMES) {
    const splits = await readAll(name);
    for (const split of SPLITS) {
      assert.ok(splits[split].length > 0, `${name}/${split} is empty`);
      for (const e of splits[split]) {
        assert.ok(e.prompt.endsWith(':'), `${name}: prompt ends with ':': ${JSON.stringify(e.prompt)}`);
        assert.match(e.completion, /^ \S/, `${name}: completion starts with one space`);
        assert.equal(e.completion, e.completion.trimEnd(), `${name}: no trailing whitespace`);
      }
    }
  }
});

test('no validation or test prompt appears in train, and prompts are unique', async () => {
  for (const name of NAMES) {
    const splits = await readAll(name);
    const train = new Set(splits.train.map((e) => e.prompt));
    assert.equal(train.size, splits.train.length, `${name}: duplicate train prompts`);
    const held = [...splits.validation, ...splits.test].map((e) => e.prompt);
    assert.equal(new Set(held).size, held.length, `${name}: duplicate held-out prompts`);
    for (const p of held) assert.ok(!train.has(p), `${name}: held-out prompt in train: ${JSON.stringify(p)}`);
  }
});

test('split sizes match dataset.json and the README table; files stay small', async () => {
  const readme = readFileSync(join(DATASETS, 'README.md'), 'utf8');
  for (const name of NAMES) {
    const meta = JSON.parse(readFileSync(join(DATASETS, name, 'dataset.json'), 'utf8'));
    assert.equal(meta.name, name);
    const splits = await readAll(name);
    for (const split of SPLITS) {
      const path = join(DATASETS, name, `${split}.jsonl`);
      assert.equal(meta.splits[split].examples, splits[split].length, `${name}/${split} examples`);
      assert.equal(meta.splits[split].bytes, statSync(path).size, `${name}/${split} bytes`);
      assert.ok(statSync(path).size < MAX_FILE_BYTES, `${name}/${split} is under ${MAX_FILE_BYTES} bytes`);
    }
    const row = readme.split('\n').find((l) => l.startsWith(`| [\`${name}\`]`));
    assert.ok(row, `README has a row for ${name}`);
    const cells = row.split('|').map((c) => c.trim());
    // | name | task | metric | train | validation | test | licence |
    assert.equal(cells[3], `\`${meta.metric}\``);
    assert.deepEqual(
      cells.slice(4, 7).map(Number),
      SPLITS.map((s) => splits[s].length),
      `README sizes for ${name}`,
    );
    assert.ok(readFileSync(join(DATASETS, name, 'LICENSE'), 'utf8').length > 100, `${name}/LICENSE`);
  }
  // The sizes the task asked for: a few hundred to ~2000 train examples. number-words is
  // the exception: 0..99 holds 100 numbers in all (the demo's task, see its README section).
  for (const name of NAMES) {
    const n = (await readSplit(name, 'train')).length;
    const min = name === 'number-words' ? 60 : 300;
    assert.ok(n >= min && n <= 2000, `${name}: ${n} train examples`);
  }
});

test('generated tasks never need a word in validation or test that train lacks', async () => {
  for (const name of ['number-words', 'en-fr', 'reverse-words']) {
    const splits = await readAll(name);
    // Every held-out number is hyphenated ("forty-two"): its pieces are the words to know.
    const separator = name === 'number-words' ? /[\s-]+/ : /\s+/;
    const trained = words(splits.train, separator);
    for (const split of ['validation', 'test'] as const) {
      const missing = [...words(splits[split], separator)].filter((w) => !trained.has(w));
      assert.deepEqual(missing, [], `${name}/${split} words missing from train`);
    }
  }
});

test('number-words: completions are the English words of the prompt number; 0..99, 0..19 all in train', async () => {
  const cases: [number, string][] = [
    [0, 'zero'],
    [7, 'seven'],
    [15, 'fifteen'],
    [20, 'twenty'],
    [42, 'forty-two'],
    [100, 'one hundred'],
    [101, 'one hundred one'],
    [347, 'three hundred forty-seven'],
    [1000, 'one thousand'],
    [1205, 'one thousand two hundred five'],
    [9999, 'nine thousand nine hundred ninety-nine'],
  ];
  for (const [n, w] of cases) assert.equal(numberToWords(n), w);
  assert.throws(() => numberToWords(10000), RangeError);
  const splits = await readAll('number-words');
  const numbers: Record<Split, number[]> = { train: [], validation: [], test: [] };
  for (const split of SPLITS) {
    for (const e of splits[split]) {
      const m = /^Number: (\d+)\nWords:$/.exec(e.prompt);
      assert.ok(m, e.prompt);
      assert.equal(e.completion, ` ${numberToWords(Number(m[1]))}`);
      numbers[split].push(Number(m[1]));
    }
  }
  const all = SPLITS.flatMap((s) => numbers[s]).sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: 100 }, (_, n) => n), 'each of 0..99 exactly once');
  // 0..19 are words of their own: a held-out one could not be inferred from train.
  for (let n = 0; n < 20; n++) assert.ok(numbers.train.includes(n), `${n} is in train`);
  assert.ok(numbers.test.length >= 20, `${numbers.test.length} test numbers`);
});

test('en-fr: French agreement, elision and adjective placement', () => {
  const lex = lexicon();
  const np = (
    det: NounPhrase['det']['kind'],
    noun: string,
    plural: boolean,
    pre?: string,
    post?: string,
  ): NounPhrase => ({
    det: det === 'number' ? { kind: 'number', en: 'three', fr: 'trois' } : { kind: det },
    noun: lex.noun(noun),
    plural,
    pre: pre === undefined ? undefined : lex.adjective(pre),
    post: post === undefined ? undefined : lex.adjective(post),
  });
  const cases: [NounPhrase, string, string][] = [
    [np('the', 'cat', false, undefined, 'red'), 'the red cat', 'le chat rouge'],
    [np('the', 'dog', true, 'small'), 'the small dogs', 'les petits chiens'],
    [np('the', 'bird', false), 'the bird', "l'oiseau"],
    [np('the', 'man', false, 'old'), 'the old man', 'le vieil homme'],
    [np('a', 'elephant', false), 'an elephant', 'un éléphant'],
    [np('a', 'cat', false, 'old'), 'an old cat', 'un vieux chat'],
    [np('a', 'owl', false, undefined, 'white'), 'a white owl', 'une chouette blanche'],
    [np('some', 'bird', true, 'small'), 'some small birds', 'de petits oiseaux'],
    [np('some', 'bird', true, undefined, 'happy'), 'some happy birds', 'des oiseaux heureux'],
    [np('this', 'man', false), 'this man', 'cet homme'],
    [np('this', 'man', false, 'old'), 'this old man', 'ce vieil homme'],
    [np('this', 'cow', true, undefined, 'brown'), 'these brown cows', 'ces vaches brunes'],
    [np('my', 'spider', false), 'my spider', 'mon araignée'],
    [np('my', 'spider', false, 'small'), 'my small spider', 'ma petite araignée'],
    [np('my', 'woman', true, 'old', 'tired'), 'my old tired women', 'mes vieilles femmes fatiguées'],
    [np('number', 'horse', true, undefined, 'white'), 'three white horses', 'trois chevaux blancs'],
    [np('the', 'mouse', true, undefined, 'grey'), 'the grey mice', 'les souris grises'],
  ];
  for (const [phrase, en, fr] of cases) {
    assert.equal(renderEnglish(phrase), en);
    assert.equal(renderFrench(phrase), fr);
  }
  assert.deepEqual(renderPlace('near', lex.place('garden')), { en: 'near the garden', fr: 'près du jardin' });
  assert.deepEqual(renderPlace('near', lex.place('tree')), { en: 'near the tree', fr: "près de l'arbre" });
  assert.deepEqual(renderPlace('near', lex.place('house')), { en: 'near the house', fr: 'près de la maison' });
  assert.deepEqual(renderPlace('under', lex.place('table')), { en: 'under the table', fr: 'sous la table' });
});

test('en-fr: no train phrase uses a held-out (noun, adjective) pair; every held-out phrase does', async () => {
  const meta = JSON.parse(readFileSync(join(DATASETS, 'en-fr', 'dataset.json'), 'utf8'));
  const heldPairs = new Set<string>(meta.heldOutPairs);
  assert.ok(heldPairs.size > 0);
  const lex = lexicon();
  // Every adjective in a noun phrase sits between the determiner and the noun,
  // and a predicate adjective follows is/are: scan the English left to right.
  const pairsIn = (english: string): string[] => {
    const tokens = english.split(' ');
    const pairs: string[] = [];
    let pending: string[] = [];
    let lastNoun: string | undefined;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      const noun = lex.nounForm(t);
      if (noun) {
        for (const a of pending) pairs.push(`${a} ${noun}`);
        pending = [];
        lastNoun = noun;
      } else if (lex.isAdjective(t)) {
        if ((tokens[i - 1] === 'is' || tokens[i - 1] === 'are') && lastNoun) pairs.push(`${t} ${lastNoun}`);
        else pending.push(t);
      }
    }
    return pairs;
  };
  const splits = await readAll('en-fr');
  const english = (e: Example) => e.prompt.replace(/^English: /, '').replace(/\nFrench:$/, '');
  for (const e of splits.train) {
    const used = pairsIn(english(e)).filter((p) => heldPairs.has(p));
    assert.deepEqual(used, [], `train phrase uses a held-out pair: ${english(e)}`);
  }
  for (const e of [...splits.validation, ...splits.test]) {
    assert.ok(pairsIn(english(e)).some((p) => heldPairs.has(p)), `held-out phrase without a held-out pair: ${english(e)}`);
  }
});

test('wordnet-definitions: first gloss before ";", one entry per lowercase word', async () => {
  assert.equal(
    firstGloss('a sheltered port where ships can take on or discharge cargo;  "the harbor was full"'),
    'a sheltered port where ships can take on or discharge cargo',
  );
  const splits = await readAll('wordnet-definitions');
  for (const split of SPLITS) {
    for (const e of splits[split]) {
      assert.match(e.prompt, /^Word: [a-z]{3,10}\nDefinition:$/);
      assert.ok(!e.completion.includes(';'), e.completion);
    }
  }
  const license = readFileSync(join(DATASETS, 'wordnet-definitions', 'LICENSE'), 'utf8');
  assert.match(license, /Copyright 2011 by Princeton University/);
});

test('the builder reproduces the committed datasets byte for byte', () => {
  const out = mkdtempSync(join(tmpdir(), 'gentune-datasets-'));
  try {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build-datasets.ts', '--out', out], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    const committed = listFiles(DATASETS).map((p) => relative(DATASETS, p));
    const rebuilt = listFiles(out).map((p) => relative(out, p));
    assert.deepEqual(rebuilt, committed);
    for (const rel of committed) {
      assert.ok(readFileSync(join(out, rel)).equals(readFileSync(join(DATASETS, rel))), `${rel} differs`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
