/**
 * en-fr: short English phrases -> French, built compositionally from a small
 * hand-written bilingual lexicon and a handful of templates, with French
 * agreement done right: article and adjective forms follow the noun's gender
 * and number, most adjectives follow the noun while a few (petit, grand,
 * jeune, joli, bon, vieux) precede it, le/la elide to l' before a vowel,
 * ce becomes cet, ma becomes mon, vieux becomes vieil, des becomes de before
 * a preceding adjective, and "près de le" contracts to "près du".
 *
 * Held out for validation and test: a seeded set of (noun, adjective) pairs.
 * No train phrase puts a held-out adjective on its noun (attributively or as
 * a predicate); every held-out phrase does at least once. So scoring measures
 * whether the model composes words it has seen in new combinations.
 */
import type { Rng } from '../../src/common/rng.js';
import {
  assertCompletionWordsCovered,
  assertDistinctPrompts,
  CC0_TEXT,
  chance,
  compareStrings,
  pick,
  seeded,
  takeParts,
  type BuiltDataset,
  type PromptCompletion,
} from './common.js';

export type Gender = 'm' | 'f';

export interface Noun {
  en: string;
  enPl: string;
  fr: string;
  frPl: string;
  g: Gender;
}

/** Adjective forms: masculine singular, feminine singular, masculine plural, feminine plural. */
export interface Adjective {
  en: string;
  fr: [string, string, string, string];
  /** Placed before the noun in French (petit, grand, ...); most follow it. */
  pre?: boolean;
  /** Masculine singular before a vowel, where it differs (vieux -> vieil). */
  msBeforeVowel?: string;
  /** A colour: a predicate never gives a second colour to a noun that has one. */
  colour?: boolean;
}

export interface Verb {
  en: string;
  enPl: string;
  fr: string;
  frPl: string;
}

/** Singular place nouns for prepositional phrases, with the prepositions that suit each. */
export interface Place {
  en: string;
  fr: string;
  g: Gender;
  preps: Preposition[];
}

export type Preposition = 'in' | 'on' | 'under' | 'near' | 'behind';

const n = (en: string, enPl: string, fr: string, frPl: string, g: Gender): Noun => ({ en, enPl, fr, frPl, g });

export const NOUNS: Noun[] = [
  n('cat', 'cats', 'chat', 'chats', 'm'),
  n('dog', 'dogs', 'chien', 'chiens', 'm'),
  n('bird', 'birds', 'oiseau', 'oiseaux', 'm'),
  n('horse', 'horses', 'cheval', 'chevaux', 'm'),
  n('mouse', 'mice', 'souris', 'souris', 'f'),
  n('cow', 'cows', 'vache', 'vaches', 'f'),
  n('rabbit', 'rabbits', 'lapin', 'lapins', 'm'),
  n('duck', 'ducks', 'canard', 'canards', 'm'),
  n('goat', 'goats', 'chèvre', 'chèvres', 'f'),
  n('pig', 'pigs', 'cochon', 'cochons', 'm'),
  n('frog', 'frogs', 'grenouille', 'grenouilles', 'f'),
  n('bear', 'bears', 'ours', 'ours', 'm'),
  n('fox', 'foxes', 'renard', 'renards', 'm'),
  n('wolf', 'wolves', 'loup', 'loups', 'm'),
  n('lion', 'lions', 'lion', 'lions', 'm'),
  n('turtle', 'turtles', 'tortue', 'tortues', 'f'),
  n('owl', 'owls', 'chouette', 'chouettes', 'f'),
  n('elephant', 'elephants', 'éléphant', 'éléphants', 'm'),
  n('spider', 'spiders', 'araignée', 'araignées', 'f'),
  n('bee', 'bees', 'abeille', 'abeilles', 'f'),
  n('ant', 'ants', 'fourmi', 'fourmis', 'f'),
  n('hen', 'hens', 'poule', 'poules', 'f'),
  n('squirrel', 'squirrels', 'écureuil', 'écureuils', 'm'),
  n('child', 'children', 'enfant', 'enfants', 'm'),
  n('girl', 'girls', 'fille', 'filles', 'f'),
  n('boy', 'boys', 'garçon', 'garçons', 'm'),
  n('woman', 'women', 'femme', 'femmes', 'f'),
  n('man', 'men', 'homme', 'hommes', 'm'),
];

const a = (en: string, fr: [string, string, string, string], extra: Partial<Adjective> = {}): Adjective => ({
  en,
  fr,
  ...extra,
});

export const ADJECTIVES: Adjective[] = [
  // Before the noun.
  a('small', ['petit', 'petite', 'petits', 'petites'], { pre: true }),
  a('big', ['grand', 'grande', 'grands', 'grandes'], { pre: true }),
  a('young', ['jeune', 'jeune', 'jeunes', 'jeunes'], { pre: true }),
  a('pretty', ['joli', 'jolie', 'jolis', 'jolies'], { pre: true }),
  a('good', ['bon', 'bonne', 'bons', 'bonnes'], { pre: true }),
  a('old', ['vieux', 'vieille', 'vieux', 'vieilles'], { pre: true, msBeforeVowel: 'vieil' }),
  // After the noun: colours.
  a('red', ['rouge', 'rouge', 'rouges', 'rouges'], { colour: true }),
  a('blue', ['bleu', 'bleue', 'bleus', 'bleues'], { colour: true }),
  a('green', ['vert', 'verte', 'verts', 'vertes'], { colour: true }),
  a('black', ['noir', 'noire', 'noirs', 'noires'], { colour: true }),
  a('white', ['blanc', 'blanche', 'blancs', 'blanches'], { colour: true }),
  a('yellow', ['jaune', 'jaune', 'jaunes', 'jaunes'], { colour: true }),
  a('grey', ['gris', 'grise', 'gris', 'grises'], { colour: true }),
  a('brown', ['brun', 'brune', 'bruns', 'brunes'], { colour: true }),
  // After the noun: other qualities.
  a('happy', ['heureux', 'heureuse', 'heureux', 'heureuses']),
  a('tired', ['fatigué', 'fatiguée', 'fatigués', 'fatiguées']),
  a('sad', ['triste', 'triste', 'tristes', 'tristes']),
  a('fast', ['rapide', 'rapide', 'rapides', 'rapides']),
  a('slow', ['lent', 'lente', 'lents', 'lentes']),
  a('calm', ['calme', 'calme', 'calmes', 'calmes']),
  a('clever', ['intelligent', 'intelligente', 'intelligents', 'intelligentes']),
  a('noisy', ['bruyant', 'bruyante', 'bruyants', 'bruyantes']),
  a('hungry', ['affamé', 'affamée', 'affamés', 'affamées']),
];

const v = (en: string, enPl: string, fr: string, frPl: string): Verb => ({ en, enPl, fr, frPl });

export const INTRANSITIVE_VERBS: Verb[] = [
  v('sleeps', 'sleep', 'dort', 'dorment'),
  v('runs', 'run', 'court', 'courent'),
  v('eats', 'eat', 'mange', 'mangent'),
  v('sings', 'sing', 'chante', 'chantent'),
  v('jumps', 'jump', 'saute', 'sautent'),
  v('swims', 'swim', 'nage', 'nagent'),
  v('walks', 'walk', 'marche', 'marchent'),
  v('plays', 'play', 'joue', 'jouent'),
  v('dances', 'dance', 'danse', 'dansent'),
  v('drinks', 'drink', 'boit', 'boivent'),
  v('waits', 'wait', 'attend', 'attendent'),
  v('laughs', 'laugh', 'rit', 'rient'),
  v('cries', 'cry', 'pleure', 'pleurent'),
  v('falls', 'fall', 'tombe', 'tombent'),
  v('works', 'work', 'travaille', 'travaillent'),
];

export const TRANSITIVE_VERBS: Verb[] = [
  v('sees', 'see', 'voit', 'voient'),
  v('likes', 'like', 'aime', 'aiment'),
  v('follows', 'follow', 'suit', 'suivent'),
  v('watches', 'watch', 'regarde', 'regardent'),
  v('chases', 'chase', 'chasse', 'chassent'),
  v('finds', 'find', 'trouve', 'trouvent'),
  v('hears', 'hear', 'entend', 'entendent'),
  v('helps', 'help', 'aide', 'aident'),
  v('bites', 'bite', 'mord', 'mordent'),
  v('wakes', 'wake', 'réveille', 'réveillent'),
];

const p = (en: string, fr: string, g: Gender, preps: Preposition[]): Place => ({ en, fr, g, preps });

export const PLACES: Place[] = [
  p('garden', 'jardin', 'm', ['in', 'near']),
  p('house', 'maison', 'f', ['in', 'near', 'behind']),
  p('river', 'rivière', 'f', ['in', 'near']),
  p('table', 'table', 'f', ['on', 'under', 'near']),
  p('bed', 'lit', 'm', ['on', 'under']),
  p('forest', 'forêt', 'f', ['in', 'near']),
  p('park', 'parc', 'm', ['in', 'near']),
  p('tree', 'arbre', 'm', ['under', 'behind', 'near']),
  p('field', 'champ', 'm', ['in']),
  p('lake', 'lac', 'm', ['near', 'in']),
  p('road', 'route', 'f', ['on']),
  p('kitchen', 'cuisine', 'f', ['in']),
  p('bridge', 'pont', 'm', ['under', 'on', 'near']),
  p('wall', 'mur', 'm', ['on', 'behind']),
];

const PREPOSITIONS: Record<Preposition, string> = {
  in: 'dans',
  on: 'sur',
  under: 'sous',
  near: 'près de',
  behind: 'derrière',
};

/** 2..10: English and French. */
const CARDINALS: [string, string][] = [
  ['two', 'deux'],
  ['three', 'trois'],
  ['four', 'quatre'],
  ['five', 'cinq'],
  ['six', 'six'],
  ['seven', 'sept'],
  ['eight', 'huit'],
  ['nine', 'neuf'],
  ['ten', 'dix'],
];

export type Determiner =
  | { kind: 'the' | 'a' | 'some' | 'this' | 'my' }
  | { kind: 'number'; en: string; fr: string };

export interface NounPhrase {
  det: Determiner;
  noun: Noun;
  plural: boolean;
  pre?: Adjective;
  post?: Adjective;
}

/**
 * Words that begin with a vowel sound for elision and liaison forms. Every
 * word of the lexicon that starts with h has a mute h (homme, heureux).
 */
function frenchVowelStart(word: string): boolean {
  return /^[aeiouyàâéèêëîïôûh]/.test(word);
}

function englishVowelStart(word: string): boolean {
  return /^[aeiou]/.test(word);
}

function adjectiveForm(adj: Adjective, g: Gender, plural: boolean): string {
  return adj.fr[(plural ? 2 : 0) + (g === 'f' ? 1 : 0)];
}

export function renderEnglish(np: NounPhrase): string {
  const words: string[] = [];
  if (np.pre) words.push(np.pre.en);
  if (np.post) words.push(np.post.en);
  words.push(np.plural ? np.noun.enPl : np.noun.en);
  let det: string;
  switch (np.det.kind) {
    case 'the':
      det = 'the';
      break;
    case 'a':
      det = englishVowelStart(words[0]) ? 'an' : 'a';
      break;
    case 'some':
      det = 'some';
      break;
    case 'this':
      det = np.plural ? 'these' : 'this';
      break;
    case 'my':
      det = 'my';
      break;
    case 'number':
      det = np.det.en;
      break;
  }
  return [det, ...words].join(' ');
}

export function renderFrench(np: NounPhrase): string {
  const { noun, plural } = np;
  const g = noun.g;
  const nounForm = plural ? noun.frPl : noun.fr;
  const words: string[] = [];
  if (np.pre) {
    const form =
      !plural && g === 'm' && np.pre.msBeforeVowel && frenchVowelStart(nounForm)
        ? np.pre.msBeforeVowel
        : adjectiveForm(np.pre, g, plural);
    words.push(form);
  }
  words.push(nounForm);
  if (np.post) words.push(adjectiveForm(np.post, g, plural));
  const vowel = frenchVowelStart(words[0]);
  let det: string;
  switch (np.det.kind) {
    case 'the':
      det = plural ? 'les' : vowel ? "l'" : g === 'm' ? 'le' : 'la';
      break;
    case 'a':
      det = g === 'm' ? 'un' : 'une';
      break;
    case 'some':
      // des becomes de (d') when an adjective precedes the noun.
      det = np.pre ? (vowel ? "d'" : 'de') : 'des';
      break;
    case 'this':
      det = plural ? 'ces' : g === 'f' ? 'cette' : vowel ? 'cet' : 'ce';
      break;
    case 'my':
      det = plural ? 'mes' : g === 'm' || vowel ? 'mon' : 'ma';
      break;
    case 'number':
      det = np.det.fr;
      break;
  }
  const rest = words.join(' ');
  return det.endsWith("'") ? det + rest : `${det} ${rest}`;
}

export function renderPlace(prep: Preposition, place: Place): { en: string; fr: string } {
  const vowel = frenchVowelStart(place.fr);
  const article = vowel ? "l'" : place.g === 'm' ? 'le' : 'la';
  let fr: string;
  if (prep === 'near' && article === 'le') fr = `près du ${place.fr}`;
  else fr = `${PREPOSITIONS[prep]} ${article === "l'" ? article + place.fr : `${article} ${place.fr}`}`;
  return { en: `${prep} the ${place.en}`, fr };
}

/** A random noun phrase (subjects and objects share the grammar). */
function randomNounPhrase(rng: Rng): NounPhrase {
  const noun = pick(rng, NOUNS);
  const r = rng.next();
  let det: Determiner;
  let plural: boolean;
  if (r < 0.3) {
    det = { kind: 'the' };
    plural = chance(rng, 0.4);
  } else if (r < 0.45) {
    det = { kind: 'a' };
    plural = false;
  } else if (r < 0.55) {
    det = { kind: 'some' };
    plural = true;
  } else if (r < 0.7) {
    det = { kind: 'this' };
    plural = chance(rng, 0.4);
  } else if (r < 0.82) {
    det = { kind: 'my' };
    plural = chance(rng, 0.4);
  } else {
    const [en, fr] = pick(rng, CARDINALS);
    det = { kind: 'number', en, fr };
    plural = true;
  }
  const np: NounPhrase = { det, noun, plural };
  const preAdjectives = ADJECTIVES.filter((x) => x.pre);
  const postAdjectives = ADJECTIVES.filter((x) => !x.pre);
  const s = rng.next();
  if (s < 0.4) {
    // No adjective.
  } else if (s < 0.6) {
    np.pre = pick(rng, preAdjectives);
  } else if (s < 0.88) {
    np.post = pick(rng, postAdjectives);
  } else {
    np.pre = pick(rng, preAdjectives);
    np.post = pick(rng, postAdjectives);
  }
  return np;
}

interface Phrase extends PromptCompletion {
  /** "noun|adjective" pairs the phrase uses (attributive and predicate). */
  pairs: string[];
}

/** Looks lexicon entries up by their English (singular) word, for tests. */
export function lexicon(): {
  noun: (en: string) => Noun;
  adjective: (en: string) => Adjective;
  place: (en: string) => Place;
  /** The singular English noun of a singular or plural English form, if it is one. */
  nounForm: (word: string) => string | undefined;
  isAdjective: (word: string) => boolean;
} {
  const find = <T extends { en: string }>(items: readonly T[], en: string): T => {
    const found = items.find((x) => x.en === en);
    if (!found) throw new Error(`not in the lexicon: ${en}`);
    return found;
  };
  return {
    noun: (en) => find(NOUNS, en),
    adjective: (en) => find(ADJECTIVES, en),
    place: (en) => find(PLACES, en),
    nounForm: (word) => NOUNS.find((x) => x.en === word || x.enPl === word)?.en,
    isAdjective: (word) => ADJECTIVES.some((x) => x.en === word),
  };
}

const pairKey = (noun: Noun, adj: Adjective): string => `${noun.en}|${adj.en}`;

function pairsOf(np: NounPhrase): string[] {
  const out: string[] = [];
  if (np.pre) out.push(pairKey(np.noun, np.pre));
  if (np.post) out.push(pairKey(np.noun, np.post));
  return out;
}

function phrase(en: string, fr: string, pairs: string[]): Phrase {
  return { prompt: `English: ${en}\nFrench:`, completion: ` ${fr}`, pairs };
}

/** One random phrase from the templates. */
export function randomPhrase(rng: Rng): Phrase {
  const subject = randomNounPhrase(rng);
  const r = rng.next();
  if (r < 0.12) {
    // A noun phrase alone: "three white horses" -> "trois chevaux blancs".
    return phrase(renderEnglish(subject), renderFrench(subject), pairsOf(subject));
  }
  if (r < 0.5) {
    // Intransitive verb, sometimes with a place: "the cat sleeps under the table".
    const verb = pick(rng, INTRANSITIVE_VERBS);
    let en = `${renderEnglish(subject)} ${subject.plural ? verb.enPl : verb.en}`;
    let fr = `${renderFrench(subject)} ${subject.plural ? verb.frPl : verb.fr}`;
    if (chance(rng, 0.45)) {
      const place = pick(rng, PLACES);
      const pp = renderPlace(pick(rng, place.preps), place);
      en += ` ${pp.en}`;
      fr += ` ${pp.fr}`;
    }
    return phrase(en, fr, pairsOf(subject));
  }
  if (r < 0.8) {
    // Transitive verb: "the dog sees a bird" -> "le chien voit un oiseau".
    const verb = pick(rng, TRANSITIVE_VERBS);
    const object = randomNounPhrase(rng);
    const en = `${renderEnglish(subject)} ${subject.plural ? verb.enPl : verb.en} ${renderEnglish(object)}`;
    const fr = `${renderFrench(subject)} ${subject.plural ? verb.frPl : verb.fr} ${renderFrench(object)}`;
    return phrase(en, fr, [...pairsOf(subject), ...pairsOf(object)]);
  }
  // Predicate adjective: "the cats are black" -> "les chats sont noirs".
  const adj = pick(
    rng,
    ADJECTIVES.filter((x) => x !== subject.pre && x !== subject.post && !(x.colour && subject.post?.colour)),
  );
  const en = `${renderEnglish(subject)} ${subject.plural ? 'are' : 'is'} ${adj.en}`;
  const fr = `${renderFrench(subject)} ${subject.plural ? 'sont' : 'est'} ${adjectiveForm(adj, subject.noun.g, subject.plural)}`;
  return phrase(en, fr, [...pairsOf(subject), pairKey(subject.noun, adj)]);
}

export const EN_FR_SEED = 7_031_789;
export const EN_FR_SIZES = { train: 2000, validation: 200, test: 300 };
/** Share of (noun, adjective) pairs held out from train. */
const HELD_OUT_PAIR_SHARE = 0.12;

export function buildEnFr(): BuiltDataset {
  const rng = seeded(EN_FR_SEED);
  const allPairs: string[] = [];
  for (const noun of NOUNS) for (const adj of ADJECTIVES) allPairs.push(pairKey(noun, adj));
  rng.shuffle(allPairs);
  const heldOut = new Set(allPairs.slice(0, Math.round(allPairs.length * HELD_OUT_PAIR_SHARE)));

  const seen = new Set<string>();
  const train: PromptCompletion[] = [];
  const held: PromptCompletion[] = [];
  const heldNeeded = EN_FR_SIZES.validation + EN_FR_SIZES.test;
  for (let tries = 0; train.length < EN_FR_SIZES.train || held.length < heldNeeded; tries++) {
    if (tries > 1_000_000) throw new Error('en-fr: could not fill the splits');
    const ph = randomPhrase(rng);
    if (seen.has(ph.prompt)) continue;
    const isHeld = ph.pairs.some((k) => heldOut.has(k));
    const target = isHeld ? held : train;
    const cap = isHeld ? heldNeeded : EN_FR_SIZES.train;
    if (target.length >= cap) continue;
    seen.add(ph.prompt);
    target.push({ prompt: ph.prompt, completion: ph.completion });
  }
  const [validation, test] = takeParts(held, [EN_FR_SIZES.validation, EN_FR_SIZES.test], 'en-fr');
  const splits = { train, validation, test };
  assertDistinctPrompts('en-fr', splits);
  assertCompletionWordsCovered('en-fr', splits);
  const heldList = [...heldOut].sort(compareStrings);
  return {
    name: 'en-fr',
    title: 'English to French phrases',
    description:
      'Short English phrases and present-tense sentences to translate into French. Built compositionally ' +
      `from a hand-written bilingual lexicon (${NOUNS.length} nouns, ${ADJECTIVES.length} adjectives, ` +
      `${INTRANSITIVE_VERBS.length + TRANSITIVE_VERBS.length} verbs, ${PLACES.length} places, determiners ` +
      'the/a/some/this/my and the numbers two to ten) and four templates: a noun phrase alone, subject + ' +
      'intransitive verb (optionally + place), subject + transitive verb + object, and subject + is/are + ' +
      'adjective. French agreement is applied: le/la/l\'/les, un/une, des/de, ce/cet/cette/ces, mon/ma/mes ' +
      'by gender, number and elision; adjectives agree and most follow the noun, while petit, grand, jeune, ' +
      'joli, bon and vieux (vieil) precede it; verbs agree in number; près de + le contracts to près du. ' +
      'No parallel corpus is involved.',
    heldOut:
      `${heldOut.size} of the ${allPairs.length} (noun, adjective) pairs are held out: no train phrase puts ` +
      'one of those adjectives on that noun, and every validation and test phrase does at least once, so the ' +
      'held-out splits test new combinations of known words (every held-out French word occurs in train; ' +
      'the pairs are listed in `dataset.json`).',
    extra: { heldOutPairs: heldList.map((k) => k.split('|').reverse().join(' ')) },
    metric: 'bleu',
    seed: EN_FR_SEED,
    source: 'Generated by `scripts/datasets/en-fr.ts` from a lexicon written for gentune; no external data.',
    license: 'CC0-1.0',
    licenseText: CC0_TEXT,
    splits,
  };
}
