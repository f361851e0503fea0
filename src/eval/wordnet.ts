/**
 * WordNet synonyms for METEOR, read from the compact file that
 * scripts/build-wordnet.ts packs (WordNet 3.1 with WordNet's exception lists;
 * license in src/eval/wordnet/LICENSE). Lookups copy NLTK's
 * `WordNetCorpusReader.synsets(word)` and its `_morphy`, rule for rule, so
 * that the synonym stage of {@link meteorScore} matches NLTK's.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** A WordNet part of speech as NLTK names it: noun, verb, adjective, adverb. */
export type WordNetPos = 'n' | 'v' | 'a' | 'r';

/** NLTK's `POS_LIST`: the order `synsets(word)` walks the parts of speech. */
const POS_LIST: readonly WordNetPos[] = ['n', 'v', 'a', 'r'];

/** NLTK's `MORPHOLOGICAL_SUBSTITUTIONS`: [suffix, replacement], tried in this order. */
const SUBSTITUTIONS: Readonly<Record<WordNetPos, readonly (readonly [string, string])[]>> = {
  n: [['s', ''], ['ses', 's'], ['ves', 'f'], ['xes', 'x'], ['zes', 'z'], ['ches', 'ch'], ['shes', 'sh'], ['men', 'man'], ['ies', 'y']],
  v: [['s', ''], ['ies', 'y'], ['es', 'e'], ['es', ''], ['ed', 'e'], ['ed', ''], ['ing', 'e'], ['ing', '']],
  a: [['er', ''], ['est', ''], ['er', 'e'], ['est', 'e']],
  r: [],
};

/** The packed file shipped with the evaluator. */
export const WORDNET_PATH = fileURLToPath(new URL('./wordnet/meteor-wordnet.txt.gz', import.meta.url));

/** The lookups METEOR needs, over one packed WordNet. */
export class WordNet {
  // Lines are kept as read and split only when looked up: parsing all 235k
  // records up front took most of the load time.
  private readonly synsetLines: string[] = [];
  /** Per part of speech: lemma -> its space-separated synset ids ('' for none). */
  private readonly index = new Map<WordNetPos, Map<string, string>>();
  /** Per part of speech: inflected form -> its space-separated base forms. */
  private readonly exceptions = new Map<WordNetPos, Map<string, string>>();
  /** First line of the packed file: which WordNet this is. */
  readonly provenance: string;

  /** Parses the packed text (the format `packWordNet` in scripts/wordnet-pack.ts writes). */
  constructor(packed: string) {
    const lines = packed.split('\n');
    this.provenance = lines[0];
    let section: Map<string, string> | null = null;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      if (line === '') continue;
      if (line.startsWith('@')) {
        const [kind, pos] = line.slice(1).split(' ') as [string, WordNetPos];
        if (kind === 'synsets') section = null;
        else {
          section = new Map();
          (kind === 'index' ? this.index : this.exceptions).set(pos, section);
        }
        continue;
      }
      if (section === null) {
        this.synsetLines.push(line);
        continue;
      }
      const space = line.indexOf(' ');
      if (space < 0) section.set(line, '');
      else section.set(line.slice(0, space), line.slice(space + 1));
    }
  }

  /** Loads the shipped file once per process (under a second and about 25 MB of heap on these machines). */
  static shipped(): WordNet {
    shippedWordNet ??= new WordNet(gunzipSync(readFileSync(WORDNET_PATH)).toString('latin1'));
    return shippedWordNet;
  }

  /**
   * NLTK's `_morphy(form, pos)`: the base forms of `form` that WordNet lists
   * under `pos`, from the exception list if `form` is in it, else by suffix
   * rules applied until some result is a lemma.
   */
  morphy(form: string, pos: WordNetPos): string[] {
    const lemmas = this.index.get(pos)!;
    const filter = (forms: readonly string[]): string[] => [...new Set(forms.filter((f) => lemmas.has(f)))];
    // NLTK keeps duplicates between rounds; a set gives the same results (a
    // duplicate yields duplicates) and keeps a hostile `eseses...` token from
    // growing the list 3x per round: distinct forms are a prefix plus one of
    // a few endings, so there are O(length) of them.
    const applyRules = (forms: readonly string[]): string[] => [
      ...new Set(forms.flatMap((f) => SUBSTITUTIONS[pos].filter(([old]) => f.endsWith(old)).map(([old, rep]) => f.slice(0, f.length - old.length) + rep))),
    ];
    const exception = this.exceptions.get(pos)!.get(form);
    if (exception !== undefined) return filter([form, ...words(exception)]);
    let forms = applyRules([form]);
    const first = filter([form, ...forms]);
    if (first.length > 0) return first;
    while (forms.length > 0) {
      forms = applyRules(forms);
      const results = filter(forms);
      if (results.length > 0) return results;
    }
    return [];
  }

  /**
   * The lemma names without `_` of every synset of `word` in any part of
   * speech, plus `word` itself: the set `_enum_wordnetsyn_match` in NLTK's
   * meteor_score.py builds for a hypothesis word. Case is kept (`Party`);
   * the lookup lowercases `word` as `synsets()` does.
   */
  synonyms(word: string): Set<string> {
    const out = new Set<string>();
    const lemma = word.toLowerCase();
    for (const pos of POS_LIST) {
      for (const form of this.morphy(lemma, pos)) {
        for (const id of words(this.index.get(pos)!.get(form)!)) {
          for (const name of this.synsetLines[Number(id)].split(' ')) out.add(name);
        }
      }
    }
    out.add(word);
    return out;
  }
}

let shippedWordNet: WordNet | undefined;

/** The space-separated fields of a record's value ('' has none). */
function words(value: string): string[] {
  return value === '' ? [] : value.split(' ');
}
