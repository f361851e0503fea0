import { InvalidArgument } from '../../common/errors.js';
import type { Tokenizer } from '../../model/tokenizer/tokenizer.js';
import { type ChatMessage, renderChat, type TemplateSegment } from '../../model/tokenizer/chat-segments.js';
import type { NumberedExample, SftExample } from './sft-example.js';
import type { TokenSequence } from './token-sequence.js';

/**
 * What to do with an example longer than max_seq_len:
 * - `error`: reject it (InvalidArgument naming the line and both lengths).
 * - `truncate_prompt_left`: drop the oldest prompt tokens (the start of the
 *   prompt, or of the conversation) and keep the whole final completion;
 *   reject the example if the final completion and one prompt token do not fit.
 * - `truncate_right`: keep the first max_seq_len tokens; reject the example if
 *   no loss token is left.
 */
export type TruncationPolicy = 'error' | 'truncate_prompt_left' | 'truncate_right';

/** The accepted {@link TruncationPolicy} values. */
export const TRUNCATION_POLICIES: readonly TruncationPolicy[] = ['error', 'truncate_prompt_left', 'truncate_right'];

/** How examples become token sequences. */
export interface TokenizeOptions {
  /** Longest sequence, in tokens (EOS included); at least 2. Usually the model's n_positions. */
  maxSeqLen: number;
  /**
   * Train on completions only (default true): prompt tokens, chat headers and
   * user/system turns are masked out. False trains on every token. `text`
   * examples always train on every token.
   */
  completionOnly?: boolean;
  /** Default `error`. */
  truncation?: TruncationPolicy;
  /** Renders chat examples: the model's chat template (GptModel.chat). Default: gentune's own ({@link renderChat}). */
  chat?: ChatSegmenter;
}

/** What renders a conversation into segments (ChatTemplate, or {@link renderChat} alone). */
export interface ChatSegmenter {
  segments(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean }): TemplateSegment[];
}

/** One example as token ids with its loss mask (convention: {@link TokenSequence}). */
export interface TokenizedExample extends TokenSequence {
  /** The dataset line (1-based) the example came from. */
  readonly line: number;
  /** Tokens dropped by truncation; 0 when the example fit. */
  readonly truncatedTokens: number;
}

/** Encoded segments, before any truncation. */
export interface EncodedSegments {
  ids: Int32Array;
  lossMask: Uint8Array;
  /**
   * Index (tokens) where the final completion starts: the trailing run of
   * segments the template marks as loss (last assistant turn + EOS, or
   * completion + EOS). 0 for `text` examples, which have no prompt.
   */
  completionStart: number;
}

/**
 * The template segments of an example:
 * - prompt/completion: `prompt`, then `completion` (loss), then EOS (loss).
 *   The prompt is used as is: add a separator (space, newline) in the data.
 * - chat: `chat`'s segments (the model's template; default gentune's own, {@link renderChat}).
 * - text: `text` (loss), then EOS (loss).
 */
export function exampleSegments(example: SftExample, chat?: ChatSegmenter): TemplateSegment[] {
  switch (example.kind) {
    case 'prompt_completion':
      return [
        { kind: 'text', text: example.prompt, loss: false },
        { kind: 'text', text: example.completion, loss: true },
        { kind: 'eos', loss: true },
      ];
    case 'chat':
      return chat ? chat.segments(example.messages) : renderChat(example.messages);
    case 'text':
      return [
        { kind: 'text', text: example.text, loss: true },
        { kind: 'eos', loss: true },
      ];
  }
}

/**
 * Encodes segments one by one (so prompt and completion never share a BPE
 * merge, as at inference) and builds the loss mask. With `completionOnly`
 * false every token after the first is a loss target. Inference can use this
 * too, with `renderChat(messages, { addGenerationPrompt: true })`.
 */
export function encodeSegments(
  segments: readonly TemplateSegment[],
  tokenizer: Tokenizer,
  options: { completionOnly?: boolean } = {},
): EncodedSegments {
  const completionOnly = options.completionOnly ?? true;
  const ids: number[] = [];
  const mask: number[] = [];
  let completionStart = 0;
  let inCompletion = false;
  for (const segment of segments) {
    if (!segment.loss) inCompletion = false;
    else if (!inCompletion) {
      inCompletion = true;
      completionStart = ids.length;
    }
    const pieceIds = segment.kind === 'eos' ? [tokenizer.eosId] : tokenizer.encode(segment.text, { parseSpecialTokens: segment.special ?? false });
    const weight = !completionOnly || segment.loss ? 1 : 0;
    for (const id of pieceIds) {
      ids.push(id);
      mask.push(weight);
    }
  }
  // A run of prompt segments at the very end leaves no final completion.
  if (!inCompletion) completionStart = ids.length;
  const lossMask = Uint8Array.from(mask);
  if (lossMask.length > 0) lossMask[0] = 0;
  return { ids: Int32Array.from(ids), lossMask, completionStart };
}

/**
 * Tokenizes one example, applying the truncation policy. Errors name the
 * line: "line 7: example is 812 tokens, longer than max_seq_len 512".
 */
export function tokenizeExample(
  record: NumberedExample,
  tokenizer: Tokenizer,
  options: TokenizeOptions,
): TokenizedExample {
  const { line, example } = record;
  const maxSeqLen = checkMaxSeqLen(options.maxSeqLen);
  const truncation = checkTruncation(options.truncation ?? 'error');
  const encoded = encodeSegments(exampleSegments(example, options.chat), tokenizer, options);
  const n = encoded.ids.length;
  if (n <= maxSeqLen) return { line, ids: encoded.ids, lossMask: encoded.lossMask, truncatedTokens: 0 };

  const tooLong = `line ${line}: example is ${n} tokens, longer than max_seq_len ${maxSeqLen}`;
  switch (truncation) {
    case 'error':
      throw new InvalidArgument(tooLong);
    case 'truncate_prompt_left': {
      if (example.kind === 'text') {
        throw new InvalidArgument(`${tooLong}, and a \`text\` example has no prompt to truncate`);
      }
      const completionTokens = n - encoded.completionStart;
      // Keep one prompt token so the first completion token is still predicted.
      if (completionTokens + 1 > maxSeqLen) {
        throw new InvalidArgument(
          `line ${line}: completion is ${completionTokens} tokens (EOS included); ` +
            `with at least one prompt token it does not fit in max_seq_len ${maxSeqLen}`,
        );
      }
      return slice(line, encoded, n - maxSeqLen, n);
    }
    case 'truncate_right': {
      const kept = slice(line, encoded, 0, maxSeqLen);
      if (!kept.lossMask.includes(1)) {
        throw new InvalidArgument(`${tooLong}, and truncating it on the right leaves no loss tokens`);
      }
      return kept;
    }
  }
}

function slice(line: number, encoded: EncodedSegments, start: number, end: number): TokenizedExample {
  const lossMask = encoded.lossMask.slice(start, end);
  // The new first token has no context left to be predicted from.
  lossMask[0] = 0;
  return {
    line,
    ids: encoded.ids.slice(start, end),
    lossMask,
    truncatedTokens: encoded.ids.length - (end - start),
  };
}

/** Validates max_seq_len (tokens): an integer >= 2, since one token has no target. */
export function checkMaxSeqLen(maxSeqLen: number): number {
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 2) {
    throw new InvalidArgument(`\`max_seq_len\` must be an integer >= 2, got ${maxSeqLen}`);
  }
  return maxSeqLen;
}

function checkTruncation(truncation: string): TruncationPolicy {
  if (!(TRUNCATION_POLICIES as readonly string[]).includes(truncation)) {
    throw new InvalidArgument(
      `\`truncation\` must be one of ${TRUNCATION_POLICIES.join(', ')}, got ${JSON.stringify(truncation)}`,
    );
  }
  return truncation as TruncationPolicy;
}
