/**
 * METEOR as NLTK's `nltk.translate.meteor_score` computes it (NLTK 3.8):
 * unigram alignment in three stages (exact, Porter stem, WordNet synonym),
 * each greedy from the right, then an F-mean weighted towards recall times a
 * fragmentation penalty; the best score over the references.
 *
 * Banerjee, S. and Lavie, A. "METEOR: An Automatic Metric for MT Evaluation
 * with Improved Correlation with Human Judgments." ACL workshop, 2005;
 * parameters as Lavie and Agarwal, 2007.
 *
 * NLTK takes pre-tokenized text; gentune tokenizes each string with Python's
 * `str.split()` (whitespace), so `meteor_score([r.split() for r in refs],
 * hyp.split())` is the reference computation.
 */
import { PorterStemmer } from './porter-stemmer.js';
import { pySplit } from './python-text.js';
import { WordNet } from './wordnet.js';

/** Parameters of METEOR; defaults are NLTK's. */
export interface MeteorOptions {
  /** Relative weight of precision against recall in the F-mean (0..1). Default 0.9. */
  alpha?: number;
  /** Shape of the fragmentation penalty. Default 3. */
  beta?: number;
  /** Weight of the fragmentation penalty (0..1). Default 0.5. */
  gamma?: number;
  /** The WordNet of the synonym stage; default the shipped WordNet 3.1. */
  wordnet?: WordNet;
}

/** Corpus METEOR: the mean of the per-example scores (0..1), as Hugging Face's `evaluate` reports it. */
export interface CorpusMeteor {
  /** Mean of {@link perExample}. */
  score: number;
  /** Each hypothesis's best score over its references (0..1). */
  perExample: number[];
}

/** A word and its position in the sentence, as NLTK's enumerated lists. */
type Enum = [index: number, word: string];
/** [hypothesis index, reference index]. */
type Match = [number, number];

const stemmer = new PorterStemmer();

/**
 * NLTK's `_match_enums`: from the last hypothesis word backwards, pair it with
 * the last equal reference word still unmatched, and remove both. Mutates
 * both lists to the unmatched words.
 */
function matchEnums(hyp: Enum[], ref: Enum[], same: (h: string, r: string) => boolean): Match[] {
  const matches: Match[] = [];
  for (let i = hyp.length - 1; i >= 0; i--) {
    for (let j = ref.length - 1; j >= 0; j--) {
      if (same(hyp[i][1], ref[j][1])) {
        matches.push([hyp[i][0], ref[j][0]]);
        hyp.splice(i, 1);
        ref.splice(j, 1);
        break;
      }
    }
  }
  return matches;
}

/**
 * NLTK's `_enum_align_words`: exact matches, then matches of Porter stems
 * among the rest, then WordNet synonyms among the rest. As in NLTK, the
 * synonym stage sees the *stemmed* words left over by the stem stage, and
 * tests whether a reference stem is a lemma name of some synset of the
 * hypothesis stem (or the stem itself). Sorted by hypothesis position.
 */
function alignWords(hypothesis: readonly string[], reference: readonly string[], wordnet: WordNet): Match[] {
  let hyp: Enum[] = hypothesis.map((w, i) => [i, w]);
  let ref: Enum[] = reference.map((w, i) => [i, w]);
  const exact = matchEnums(hyp, ref, (h, r) => h === r);
  hyp = hyp.map(([i, w]) => [i, stemmer.stem(w)]);
  ref = ref.map(([i, w]) => [i, stemmer.stem(w)]);
  const stem = matchEnums(hyp, ref, (h, r) => h === r);
  const synonyms = new Map<string, Set<string>>();
  const synonym = matchEnums(hyp, ref, (h, r) => {
    let set = synonyms.get(h);
    if (set === undefined) synonyms.set(h, (set = wordnet.synonyms(h)));
    return set.has(r);
  });
  return [...exact, ...stem, ...synonym].sort((a, b) => a[0] - b[0]);
}

/** NLTK's `_count_chunks`: runs of matches adjacent in both sentences, over the matches sorted by hypothesis position. */
function countChunks(matches: readonly Match[]): number {
  let chunks = 1;
  for (let i = 0; i < matches.length - 1; i++) {
    const adjacent = matches[i + 1][0] === matches[i][0] + 1 && matches[i + 1][1] === matches[i][1] + 1;
    if (!adjacent) chunks += 1;
  }
  return chunks;
}

/**
 * NLTK's `single_meteor_score(reference, hypothesis)` over pre-tokenized
 * words (lowercased here, as NLTK's default `preprocess=str.lower`).
 * Returns 0 when nothing aligns (NLTK catches the division by zero).
 */
export function singleMeteorScore(reference: readonly string[], hypothesis: readonly string[], options: MeteorOptions = {}): number {
  const { alpha = 0.9, beta = 3.0, gamma = 0.5 } = options;
  const hyp = hypothesis.map((w) => w.toLowerCase());
  const ref = reference.map((w) => w.toLowerCase());
  const matches = alignWords(hyp, ref, options.wordnet ?? WordNet.shipped());
  const matchCount = matches.length;
  if (matchCount === 0) return 0;
  // The same operations in the same order as NLTK, so the floats agree bit for bit
  // wherever Math.pow and C's pow do.
  const precision = matchCount / hyp.length;
  const recall = matchCount / ref.length;
  const fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall);
  const fragFrac = countChunks(matches) / matchCount;
  const penalty = gamma * fragFrac ** beta;
  return (1 - penalty) * fmean;
}

/** NLTK's `meteor_score(references, hypothesis)`: the best {@link singleMeteorScore} over the references. */
export function meteorScore(references: readonly (readonly string[])[], hypothesis: readonly string[], options: MeteorOptions = {}): number {
  return Math.max(...references.map((reference) => singleMeteorScore(reference, hypothesis, options)));
}

/**
 * METEOR of each hypothesis string against its reference strings, each split
 * on whitespace, and their mean. `references[i]` lists every reference of
 * `hypotheses[i]` (one or more; the caller checks the shapes).
 */
export function corpusMeteor(hypotheses: readonly string[], references: readonly (readonly string[])[], options: MeteorOptions = {}): CorpusMeteor {
  const perExample = hypotheses.map((hyp, i) => meteorScore(references[i].map(pySplit), pySplit(hyp), options));
  const score = perExample.reduce((sum, s) => sum + s, 0) / perExample.length;
  return { score, perExample };
}
