/**
 * The first check of a prompt: its size in UTF-8 bytes, before anything reads
 * it further. Tokenizing is the expensive part of validation (a 12 MB prompt
 * took 3.5 s on the serving thread, holding up every other Generate, only to
 * be refused for its token count: issue 18), and a prompt of more bytes than
 * any prompt of the token limit can have is refused unread.
 *
 * The bound: each token stands for at most `maxTokenBytes` bytes of text, so a
 * prompt of at most T tokens has at most T * maxTokenBytes bytes, where T is
 * --max-prompt-tokens (no more than the context). `--max-prompt-bytes`, when
 * set, is the bound instead (for a tokenizer that drops text, where the
 * derived bound does not hold, or to refuse sooner).
 *
 * Used by both front doors (src/server, src/http) so that the text never
 * crosses to the serving thread, and by the generation service itself before
 * it tokenizes.
 */
import { InvalidArgument } from '../common/errors.js';
import type { LimitsConfig } from './config.js';
import { limitLabel } from './limit-label.js';

/**
 * Fewest bytes counted for one token: a character outside a vocabulary with
 * `<unk>` is one token however many bytes (at most 4) it has in UTF-8.
 */
const MIN_TOKEN_BYTES = 4;

/** The byte bound of prompts and how the error names it. */
export interface PromptBytesBound {
  /** Most UTF-8 bytes of a prompt; 0 = none (the model is not loaded). */
  bytes: number;
  /** What the bound is, for messages: "limits.max_prompt_bytes (--max-prompt-bytes) 100 bytes". */
  label: string;
}

/** What a tokenizer tells about its tokens' lengths. */
export interface TokenLengths {
  readonly vocabSize: number;
  /** The bytes an id stands for (empty for special tokens). */
  tokenBytes(id: number): Uint8Array;
  /** The spelling of an id (special tokens' markup: `<|endoftext|>`), when known. */
  idToToken?(id: number): string | undefined;
}

/** The most bytes of text one token of `tokenizer` stands for (special tokens by their spelling), at least 4. */
export function maxTokenBytes(tokenizer: TokenLengths): number {
  let most = MIN_TOKEN_BYTES;
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    most = Math.max(most, tokenizer.tokenBytes(id).length);
    const spelling = tokenizer.idToToken?.(id);
    if (spelling !== undefined) most = Math.max(most, Buffer.byteLength(spelling, 'utf8'));
  }
  return most;
}

/**
 * The bound for a model with a context of `nPositions` tokens whose longest
 * token is `tokenBytes` bytes (0 before the model is loaded: no bound).
 */
export function promptBytesBound(limits: Pick<LimitsConfig, 'maxPromptBytes' | 'maxPromptTokens'>, nPositions: number, tokenBytes: number): PromptBytesBound {
  if (limits.maxPromptBytes > 0) {
    return { bytes: limits.maxPromptBytes, label: `${limitLabel('maxPromptBytes', limits.maxPromptBytes)} bytes` };
  }
  if (tokenBytes <= 0 || nPositions <= 0) return { bytes: 0, label: '' };
  const tokens = Math.min(limits.maxPromptTokens, nPositions);
  const bytes = tokens * tokenBytes;
  const which = tokens === limits.maxPromptTokens ? limitLabel('maxPromptTokens', tokens) : `the context length of ${tokens}`;
  return { bytes, label: `${bytes} bytes (${which} tokens of at most ${tokenBytes} bytes each)` };
}

/**
 * Throws InvalidArgument naming `field` when `texts` (a prompt, or the
 * contents of a prompt's messages) hold more UTF-8 bytes than `bound`.
 */
export function checkPromptBytes(field: string, texts: string | readonly string[], bound: PromptBytesBound): void {
  if (bound.bytes <= 0) return;
  let bytes = 0;
  // Counting is a fast native pass (about 1 ms per MB), nothing like tokenizing.
  for (const text of typeof texts === 'string' ? [texts] : texts) bytes += Buffer.byteLength(text, 'utf8');
  if (bytes > bound.bytes) throw new InvalidArgument(`\`${field}\` must be at most ${bound.label}, got ${bytes} bytes`);
}
