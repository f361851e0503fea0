import { ByteLevelBpe } from '../../src/model/tokenizer/byte-level-bpe.js';
import { BYTE_TO_UNICODE } from '../../src/model/tokenizer/bytes-to-unicode.js';

/** A byte-level tokenizer with no merges: id b = byte b, 256 = <|endoftext|>. */
export function byteTokenizer(): ByteLevelBpe {
  const vocab = new Map<string, number>();
  for (let b = 0; b < 256; b++) vocab.set(BYTE_TO_UNICODE[b], b);
  vocab.set('<|endoftext|>', 256);
  return new ByteLevelBpe({ vocab, merges: [], source: 'byte-tokenizer' });
}
