import type { Tokenizer } from '../../../../src/model/tokenizer/tokenizer.js';

/** A tiny byte-level tokenizer for tests: ids 0..255 are bytes, 256 is EOS. */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 257;
  readonly eosId = 256;

  encode(text: string): number[] {
    return [...Buffer.from(text, 'utf8')];
  }

  decode(ids: readonly number[]): string {
    return Buffer.from(ids.filter((id) => id < 256)).toString('utf8');
  }

  tokenBytes(id: number): Uint8Array {
    return id < 256 ? Uint8Array.of(id) : new Uint8Array(0);
  }
}

export const EOS = 256;

/** Collects an async iterable into an array. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** An async iterable over the given chunks. */
export async function* chunksOf(...chunks: (string | Uint8Array)[]): AsyncGenerator<string | Uint8Array> {
  for (const chunk of chunks) yield chunk;
}
