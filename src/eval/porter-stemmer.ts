/**
 * The Porter stemmer exactly as NLTK implements it (`nltk/stem/porter.py`,
 * NLTK 3.x), which is the stemmer Google's rouge-score uses
 * (`porter.PorterStemmer()`, i.e. the default `NLTK_EXTENSIONS` mode).
 *
 * Porter, M. "An algorithm for suffix stripping." Program 14.3 (1980): 130-137.
 */

/**
 * NLTK's three modes: `ORIGINAL_ALGORITHM` (the 1980 paper),
 * `MARTIN_EXTENSIONS` (Martin Porter's own published implementations) and
 * `NLTK_EXTENSIONS` (NLTK's default, adding an irregular-forms table and
 * several rule changes on top of Martin's).
 */
export type PorterMode = 'NLTK_EXTENSIONS' | 'MARTIN_EXTENSIONS' | 'ORIGINAL_ALGORITHM';

type Condition = ((stem: string) => boolean) | null;
/** [suffix, replacement, condition]; suffix `*d` means "ends in a double consonant". */
type Rule = readonly [string, string, Condition];

// NLTK_EXTENSIONS only: irregular forms that bypass the algorithm.
const IRREGULAR_FORMS: Readonly<Record<string, readonly string[]>> = {
  sky: ['sky', 'skies'],
  die: ['dying'],
  lie: ['lying'],
  tie: ['tying'],
  news: ['news'],
  inning: ['innings', 'inning'],
  outing: ['outings', 'outing'],
  canning: ['cannings', 'canning'],
  howe: ['howe'],
  proceed: ['proceed'],
  exceed: ['exceed'],
  succeed: ['succeed'],
};

const POOL = new Map<string, string>(
  Object.entries(IRREGULAR_FORMS).flatMap(([stem, forms]) => forms.map((f) => [f, stem] as [string, string])),
);

const VOWELS = new Set(['a', 'e', 'i', 'o', 'u']);

/**
 * A consonant is a letter other than a, e, i, o, u, and other than y preceded
 * by a consonant (so a run of y's alternates).
 */
function isConsonant(word: string, i: number): boolean {
  if (VOWELS.has(word[i])) return false;
  if (word[i] === 'y') {
    return i === 0 ? true : !isConsonant(word, i - 1);
  }
  return true;
}

/** Porter's m: the number of VC sequences in [C](VC){m}[V]. */
function measure(stem: string): number {
  let m = 0;
  let previousVowel = false;
  for (let i = 0; i < stem.length; i++) {
    const consonant = isConsonant(stem, i);
    if (consonant && previousVowel) m++;
    previousVowel = !consonant;
  }
  return m;
}

const positiveMeasure = (stem: string): boolean => measure(stem) > 0;
const measureAbove1 = (stem: string): boolean => measure(stem) > 1;

function containsVowel(stem: string): boolean {
  for (let i = 0; i < stem.length; i++) if (!isConsonant(stem, i)) return true;
  return false;
}

/** Condition *d: ends with a double consonant. */
function endsDoubleConsonant(word: string): boolean {
  return word.length >= 2 && word.at(-1) === word.at(-2) && isConsonant(word, word.length - 1);
}

function dropSuffix(word: string, suffix: string): string {
  return suffix === '' ? word : word.slice(0, word.length - suffix.length);
}

/**
 * Stems English words with the Porter algorithm, rule for rule as NLTK's
 * `PorterStemmer(mode)`. Strings are indexed by UTF-16 code unit, which
 * matches Python for every character outside the astral planes.
 */
export class PorterStemmer {
  constructor(readonly mode: PorterMode = 'NLTK_EXTENSIONS') {}

  /**
   * Returns the stem of `word`, lowercased first unless `toLowercase` is
   * false. Outside ORIGINAL_ALGORITHM, words of 1 or 2 characters are left
   * unstemmed.
   */
  stem(word: string, toLowercase = true): string {
    let stem = toLowercase ? word.toLowerCase() : word;
    if (this.mode === 'NLTK_EXTENSIONS') {
      const irregular = POOL.get(stem);
      if (irregular !== undefined) return irregular;
    }
    if (this.mode !== 'ORIGINAL_ALGORITHM' && word.length <= 2) return stem;
    stem = this.step1a(stem);
    stem = this.step1b(stem);
    stem = this.step1c(stem);
    stem = this.step2(stem);
    stem = this.step3(stem);
    stem = this.step4(stem);
    stem = this.step5a(stem);
    stem = this.step5b(stem);
    return stem;
  }

  /** Condition *o: ends cvc where the last c is not w, x or y (NLTK also accepts a 2-letter vc). */
  private endsCvc(word: string): boolean {
    const n = word.length;
    return (
      (n >= 3 &&
        isConsonant(word, n - 3) &&
        !isConsonant(word, n - 2) &&
        isConsonant(word, n - 1) &&
        !['w', 'x', 'y'].includes(word[n - 1])) ||
      (this.mode === 'NLTK_EXTENSIONS' && n === 2 && !isConsonant(word, 0) && isConsonant(word, 1))
    );
  }

  /** Applies the first rule whose suffix matches; if its condition fails, no later rule is tried. */
  private applyRules(word: string, rules: readonly Rule[]): string {
    for (const [suffix, replacement, condition] of rules) {
      if (suffix === '*d' && endsDoubleConsonant(word)) {
        const stem = word.slice(0, -2);
        return condition === null || condition(stem) ? stem + replacement : word;
      }
      if (word.endsWith(suffix)) {
        const stem = dropSuffix(word, suffix);
        return condition === null || condition(stem) ? stem + replacement : word;
      }
    }
    return word;
  }

  private step1a(word: string): string {
    // NLTK: 'flies' -> 'fli' but 'dies' -> 'die'.
    if (this.mode === 'NLTK_EXTENSIONS' && word.endsWith('ies') && word.length === 4) {
      return dropSuffix(word, 'ies') + 'ie';
    }
    return this.applyRules(word, [
      ['sses', 'ss', null],
      ['ies', 'i', null],
      ['ss', 'ss', null],
      ['s', '', null],
    ]);
  }

  private step1b(word: string): string {
    // NLTK: 'spied' -> 'spi' but 'died' -> 'die'.
    if (this.mode === 'NLTK_EXTENSIONS' && word.endsWith('ied')) {
      return dropSuffix(word, 'ied') + (word.length === 4 ? 'ie' : 'i');
    }
    if (word.endsWith('eed')) {
      const stem = dropSuffix(word, 'eed');
      return measure(stem) > 0 ? stem + 'ee' : word;
    }
    let intermediate: string | undefined;
    for (const suffix of ['ed', 'ing']) {
      if (word.endsWith(suffix)) {
        const candidate = dropSuffix(word, suffix);
        if (containsVowel(candidate)) {
          intermediate = candidate;
          break;
        }
      }
    }
    if (intermediate === undefined) return word;
    const last = intermediate.at(-1) ?? '';
    return this.applyRules(intermediate, [
      ['at', 'ate', null],
      ['bl', 'ble', null],
      ['iz', 'ize', null],
      ['*d', last, () => !['l', 's', 'z'].includes(last)],
      ['', 'e', (stem) => measure(stem) === 1 && this.endsCvc(stem)],
    ]);
  }

  private step1c(word: string): string {
    // NLTK: y -> i only after a consonant that is not the whole stem
    // ('happy' -> 'happi', 'enjoy' -> 'enjoy', 'spy' -> 'spi').
    const condition =
      this.mode === 'NLTK_EXTENSIONS'
        ? (stem: string) => stem.length > 1 && isConsonant(stem, stem.length - 1)
        : containsVowel;
    return this.applyRules(word, [['y', 'i', condition]]);
  }

  private step2(word: string): string {
    if (this.mode === 'NLTK_EXTENSIONS' && word.endsWith('alli') && positiveMeasure(dropSuffix(word, 'alli'))) {
      return this.step2(dropSuffix(word, 'alli') + 'al');
    }
    const rules: Rule[] = [
      ['ational', 'ate', positiveMeasure],
      ['tional', 'tion', positiveMeasure],
      ['enci', 'ence', positiveMeasure],
      ['anci', 'ance', positiveMeasure],
      ['izer', 'ize', positiveMeasure],
      this.mode === 'ORIGINAL_ALGORITHM' ? ['abli', 'able', positiveMeasure] : ['bli', 'ble', positiveMeasure],
      ['alli', 'al', positiveMeasure],
      ['entli', 'ent', positiveMeasure],
      ['eli', 'e', positiveMeasure],
      ['ousli', 'ous', positiveMeasure],
      ['ization', 'ize', positiveMeasure],
      ['ation', 'ate', positiveMeasure],
      ['ator', 'ate', positiveMeasure],
      ['alism', 'al', positiveMeasure],
      ['iveness', 'ive', positiveMeasure],
      ['fulness', 'ful', positiveMeasure],
      ['ousness', 'ous', positiveMeasure],
      ['aliti', 'al', positiveMeasure],
      ['iviti', 'ive', positiveMeasure],
      ['biliti', 'ble', positiveMeasure],
    ];
    if (this.mode === 'NLTK_EXTENSIONS') {
      rules.push(['fulli', 'ful', positiveMeasure]);
      // The 'l' of 'logi' stays with the stem, so 'geo', 'theo' work like 'archaeo', 'philo'.
      rules.push(['logi', 'log', () => positiveMeasure(word.slice(0, -3))]);
    }
    if (this.mode === 'MARTIN_EXTENSIONS') rules.push(['logi', 'log', positiveMeasure]);
    return this.applyRules(word, rules);
  }

  private step3(word: string): string {
    return this.applyRules(word, [
      ['icate', 'ic', positiveMeasure],
      ['ative', '', positiveMeasure],
      ['alize', 'al', positiveMeasure],
      ['iciti', 'ic', positiveMeasure],
      ['ical', 'ic', positiveMeasure],
      ['ful', '', positiveMeasure],
      ['ness', '', positiveMeasure],
    ]);
  }

  private step4(word: string): string {
    return this.applyRules(word, [
      ['al', '', measureAbove1],
      ['ance', '', measureAbove1],
      ['ence', '', measureAbove1],
      ['er', '', measureAbove1],
      ['ic', '', measureAbove1],
      ['able', '', measureAbove1],
      ['ible', '', measureAbove1],
      ['ant', '', measureAbove1],
      ['ement', '', measureAbove1],
      ['ment', '', measureAbove1],
      ['ent', '', measureAbove1],
      ['ion', '', (stem) => measure(stem) > 1 && ['s', 't'].includes(stem.at(-1) ?? '')],
      ['ou', '', measureAbove1],
      ['ism', '', measureAbove1],
      ['ate', '', measureAbove1],
      ['iti', '', measureAbove1],
      ['ous', '', measureAbove1],
      ['ive', '', measureAbove1],
      ['ize', '', measureAbove1],
    ]);
  }

  private step5a(word: string): string {
    // Both (m>1) E -> and (m=1 and not *o) E -> are tried, unlike a rule list.
    if (word.endsWith('e')) {
      const stem = dropSuffix(word, 'e');
      if (measure(stem) > 1) return stem;
      if (measure(stem) === 1 && !this.endsCvc(stem)) return stem;
    }
    return word;
  }

  private step5b(word: string): string {
    return this.applyRules(word, [['ll', 'l', () => measure(word.slice(0, -1)) > 1]]);
  }
}
