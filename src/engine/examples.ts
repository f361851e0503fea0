/**
 * Examples as jobs and evaluations read them: from a stored dataset or from
 * inline examples (validated exactly like dataset lines), then tokenized with
 * the truncation that suits each shape.
 */
import { InvalidArgument } from '../common/errors.js';
import type { Tokenizer } from '../model/tokenizer/tokenizer.js';
import { parseSftExample, type NumberedExample } from '../training/data/sft-example.js';
import { type ChatSegmenter, tokenizeExample, type TokenizedExample } from '../training/data/tokenize-example.js';
import type { DatasetStore } from './dataset-store.js';
import type { DataSource, Example } from './engine-api.js';

/** Every example of a source, numbered (dataset line, or 1-based index of an inline example). */
export async function readExamples(source: DataSource, datasets: DatasetStore, field = 'dataset_id'): Promise<NumberedExample[]> {
  if ('datasetId' in source) {
    datasets.get(source.datasetId, field);
    const out: NumberedExample[] = [];
    for await (const record of datasets.read(source.datasetId)) out.push(record);
    return out;
  }
  return inlineExamples(source.examples);
}

/** Inline examples, validated as dataset lines are ("examples[2]: missing `completion`"). */
export function inlineExamples(examples: readonly Example[]): NumberedExample[] {
  return examples.map((e, i) => {
    try {
      return { line: i + 1, example: parseSftExample(e, i + 1) };
    } catch (err) {
      if (err instanceof InvalidArgument) {
        throw new InvalidArgument(err.message.replace(/^line \d+:/, `examples[${i}]:`), { cause: err });
      }
      throw err;
    }
  });
}

/**
 * Tokenizes for training or scoring. Too-long examples are cut rather than
 * refused: prompts and conversations lose their oldest tokens (the final
 * completion is kept whole), plain text loses its end.
 */
export function tokenizeExamples(
  records: readonly NumberedExample[],
  tokenizer: Tokenizer,
  maxSeqLen: number,
  completionOnly: boolean,
  /** The model's chat template, for chat examples (default gentune's own). */
  chat?: ChatSegmenter,
): TokenizedExample[] {
  return records.map((r) =>
    tokenizeExample(r, tokenizer, {
      maxSeqLen,
      completionOnly,
      chat,
      truncation: r.example.kind === 'text' ? 'truncate_right' : 'truncate_prompt_left',
    }),
  );
}
