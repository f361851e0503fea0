import type { Tokenizer } from './tokenizer.js';

/**
 * Turns a stream of token ids into text deltas for streaming generation.
 *
 * A byte-level token may end in the middle of a UTF-8 character (an emoji is
 * four bytes, often two or more tokens), so the bytes of an unfinished
 * character are held back until the token that completes it arrives. The
 * concatenation of every {@link push} result and the final {@link flush}
 * equals `tokenizer.decode(allIds)`; for valid UTF-8 no delta contains U+FFFD.
 */
export class TextStreamDecoder {
  // A streaming WHATWG decoder keeps exactly the bytes of an unfinished
  // sequence pending, and emits U+FFFD for invalid bytes just as the one-shot
  // decode does; ignoreBOM matches the tokenizer's decode.
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  constructor(private readonly tokenizer: Tokenizer) {}

  /** Adds one token; returns the text it completed (possibly empty). */
  push(id: number): string {
    const bytes = this.tokenizer.tokenBytes(id);
    return bytes.length === 0 ? '' : this.decoder.decode(bytes, { stream: true });
  }

  /** Ends the stream: returns the held-back bytes (invalid ones as U+FFFD) and resets for reuse. */
  flush(): string {
    // A non-streaming decode() call flushes and resets the decoder (WHATWG Encoding, TextDecoder.decode).
    return this.decoder.decode();
  }
}
