/**
 * Reading a job's event log (`events.jsonl`, one JobEvent a line) from disk,
 * whole or from a byte offset on: the job store reads a log whole when it
 * opens a job, and reads on from where it stopped as another replica
 * appends to it. Reads are synchronous: a log is small, and a job that
 * becomes visible a few milliseconds sooner is worth more than an await
 * that waits behind a decode step.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import type { JobEvent } from './engine-api.js';

/** What a read found: the events, the bytes consumed, and whether the log ends in a torn line. */
export interface LogRead {
  events: JobEvent[];
  /** Byte offset just past the last complete line read (where the next read starts). */
  offset: number;
  /** The file ends in a line without its newline: a cut append, or one still being written. */
  torn: boolean;
  /** 1-based line numbers (counted from `fromOffset`) of complete lines that did not parse. */
  badLines: number[];
}

/**
 * Reads the complete lines of `file` from byte `fromOffset` on. A complete
 * line that does not parse is a torn append (the process died mid-write,
 * and the next writer started a new line): it is skipped. A trailing line
 * without its newline is not consumed when `partialTail` is 'keep' (another
 * replica may be writing it); with 'parse' it is parsed when it is whole
 * JSON (the log's own writer, reopening it, counts what parses).
 */
export function readLogFrom(file: string, fromOffset: number, partialTail: 'keep' | 'parse'): LogRead {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  let buf: Buffer;
  try {
    const size = fstatSync(fd).size;
    buf = Buffer.alloc(Math.max(0, size - fromOffset));
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, fromOffset + got);
      if (n === 0) break;
      got += n;
    }
    buf = buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
  const lastNewline = buf.lastIndexOf(0x0a);
  const complete = buf.subarray(0, lastNewline + 1).toString('utf8');
  const tail = buf.subarray(lastNewline + 1).toString('utf8');
  const events: JobEvent[] = [];
  const badLines: number[] = [];
  const lines = complete.split('\n').slice(0, -1);
  if (partialTail === 'parse' && tail !== '') lines.push(tail);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const event = parseEvent(line);
    if (event) events.push(event);
    else badLines.push(i + 1);
  });
  const offset = fromOffset + (partialTail === 'parse' ? buf.length : lastNewline + 1);
  return { events, offset, torn: tail !== '', badLines };
}

function parseEvent(line: string): JobEvent | undefined {
  try {
    const event = JSON.parse(line) as JobEvent;
    if (typeof event !== 'object' || event === null || typeof event.type !== 'string') return undefined;
    return event;
  } catch {
    return undefined;
  }
}
