import type { Tokenizer } from '../../model/tokenizer/tokenizer.js';
import type { NumberedExample } from './sft-example.js';
import { tokenizeExample, type TokenizedExample, type TokenizeOptions } from './tokenize-example.js';
import { lossTokenCount } from './token-sequence.js';

/** Totals over a tokenized dataset, for job progress and logs. */
export interface DatasetStats {
  examples: number;
  /** Tokens after truncation. */
  tokens: number;
  /** Tokens that count in the loss. */
  lossTokens: number;
  /** Examples that truncation shortened. */
  truncatedExamples: number;
  /** Tokens truncation dropped. */
  truncatedTokens: number;
  /** Longest example, in tokens. */
  maxTokens: number;
}

/**
 * Tokenizes every example of a dataset (for instance `readSftJsonl(...)`),
 * stopping at the first error, which names its line. A typical pipeline:
 * read -> tokenizeDataset -> resolveValidation -> (packSequences) -> batcher.
 */
export async function tokenizeDataset(
  records: AsyncIterable<NumberedExample> | Iterable<NumberedExample>,
  tokenizer: Tokenizer,
  options: TokenizeOptions,
): Promise<{ examples: TokenizedExample[]; stats: DatasetStats }> {
  const examples: TokenizedExample[] = [];
  const stats: DatasetStats = {
    examples: 0,
    tokens: 0,
    lossTokens: 0,
    truncatedExamples: 0,
    truncatedTokens: 0,
    maxTokens: 0,
  };
  for await (const record of records) {
    const example = tokenizeExample(record, tokenizer, options);
    examples.push(example);
    stats.examples++;
    stats.tokens += example.ids.length;
    stats.lossTokens += lossTokenCount(example);
    stats.maxTokens = Math.max(stats.maxTokens, example.ids.length);
    if (example.truncatedTokens > 0) {
      stats.truncatedExamples++;
      stats.truncatedTokens += example.truncatedTokens;
    }
  }
  return { examples, stats };
}
