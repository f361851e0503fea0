import { createReadStream } from 'node:fs';
import { InvalidArgument } from '../../common/errors.js';
import { parseSftExample, type NumberedExample } from './sft-example.js';

/** Default longest line, in bytes (1 MiB), not counting the newline. */
export const DEFAULT_MAX_LINE_BYTES = 1 << 20;

/** Limits on a JSONL dataset. A limit that is passed is an InvalidArgument naming it. */
export interface JsonlReaderOptions {
  /** Longest line in bytes, not counting `\n`; default {@link DEFAULT_MAX_LINE_BYTES}. */
  maxLineBytes?: number;
  /**
   * Most examples (non-blank lines); default no cap. The server's limit
   * (--max-dataset-examples) is the caller's to apply, as ResourceExhausted
   * naming its flag: a cap of the reader's own answered first, differently
   * (issue 18).
   */
  maxExamples?: number;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Parses a JSONL dataset as a stream: one example per line, blank (or
 * whitespace-only) lines skipped, `\r\n` line ends and a leading UTF-8 BOM
 * accepted. Chunks may split lines, and UTF-8 characters, anywhere.
 *
 * Memory stays bounded by `maxLineBytes`: a line is rejected as soon as it
 * grows past the limit, before it is complete.
 *
 * Yields each example with its 1-based physical line number (blank lines
 * count). Throws InvalidArgument at the first bad line, naming the line and
 * field: "line 17: invalid JSON", "line 3: missing `completion`".
 */
export async function* readSftJsonl(
  chunks: AsyncIterable<string | Uint8Array>,
  options: JsonlReaderOptions = {},
): AsyncGenerator<NumberedExample> {
  const maxLineBytes = positiveInteger(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, 'max_line_bytes');
  const maxExamples = options.maxExamples === undefined ? Number.POSITIVE_INFINITY : positiveInteger(options.maxExamples, 'max_examples');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let line = 0;
  let count = 0;

  const take = (piece: Uint8Array): void => {
    pendingBytes += piece.length;
    if (pendingBytes > maxLineBytes) {
      throw new InvalidArgument(`line ${line + 1}: longer than max_line_bytes ${maxLineBytes} bytes`);
    }
    if (piece.length > 0) pending.push(piece);
  };

  const finishLine = (): NumberedExample | null => {
    line++;
    const bytes = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    const text = decodeLine(decoder, bytes, line);
    if (text.trim() === '') return null;
    count++;
    if (count > maxExamples) {
      throw new InvalidArgument(`line ${line}: more than max_examples ${maxExamples} examples`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      // The parser's message quotes the line's text; keep it for the log only.
      throw new InvalidArgument(`line ${line}: invalid JSON`, { cause });
    }
    return { line, example: parseSftExample(value, line) };
  };

  for await (const chunk of chunks) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl === -1) {
        // Copy the tail: a stream may reuse its chunk buffers.
        take(Uint8Array.prototype.slice.call(buf, start));
        break;
      }
      take(buf.subarray(start, nl));
      const record = finishLine();
      if (record) yield record;
      start = nl + 1;
    }
  }
  if (pendingBytes > 0) {
    const record = finishLine();
    if (record) yield record;
  }
}

/** {@link readSftJsonl} over a file. File system errors (ENOENT, ...) pass through unchanged. */
export function readSftJsonlFile(path: string, options: JsonlReaderOptions = {}): AsyncGenerator<NumberedExample> {
  return readSftJsonl(createReadStream(path), options);
}

function decodeLine(decoder: TextDecoder, bytes: Uint8Array, line: number): string {
  let start = 0;
  let end = bytes.length;
  if (line === 1 && end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
  if (end > start && bytes[end - 1] === CARRIAGE_RETURN) end--;
  try {
    return decoder.decode(bytes.subarray(start, end));
  } catch (cause) {
    throw new InvalidArgument(`line ${line}: invalid UTF-8`, { cause });
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new InvalidArgument(`\`${name}\` must be a positive integer, got ${value}`);
  }
  return value;
}
