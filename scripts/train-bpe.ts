// Trains a byte-level BPE tokenizer on text files and writes it as a Hugging Face
// tokenizer (vocab.json, merges.txt, tokenizer.json) into a model folder.
//
//   tsx scripts/train-bpe.ts --vocab-size 2048 --out models/x in1.txt in2.txt
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { trainByteLevelBpe } from '../src/model/tokenizer/bpe-trainer.js';
import { saveTokenizer } from '../src/model/tokenizer/load-tokenizer.js';

function parseVocabSize(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 257) throw new InvalidArgumentError(`must be an integer >= 257, got ${value}`);
  return n;
}

const program = new Command('train-bpe')
  .description('Train a GPT-2-style byte-level BPE tokenizer on text files')
  .requiredOption('--vocab-size <n>', 'vocabulary size in tokens, <|endoftext|> included', parseVocabSize)
  .requiredOption('--out <dir>', 'folder to write vocab.json, merges.txt and tokenizer.json into')
  .argument('<files...>', 'UTF-8 text files to train on (each is one document)')
  .action(async (files: string[], options: { vocabSize: number; out: string }) => {
    const texts = await Promise.all(files.map((f) => readFile(f, 'utf8')));
    const bytes = texts.reduce((sum, t) => sum + Buffer.byteLength(t), 0);
    const started = performance.now();
    const tokenizer = trainByteLevelBpe(texts, options.vocabSize);
    const seconds = (performance.now() - started) / 1000;
    await saveTokenizer(options.out, tokenizer);
    const tokens = texts.reduce((sum, t) => sum + tokenizer.encode(t).length, 0);
    console.log(
      `trained ${tokenizer.vocabSize} tokens (${tokenizer.getMerges().length} merges) on ` +
        `${(bytes / 1e6).toFixed(2)} MB in ${seconds.toFixed(1)} s; ` +
        `${(bytes / tokens).toFixed(2)} bytes/token on the training text; wrote ${options.out}`,
    );
  });

await program.parseAsync();
