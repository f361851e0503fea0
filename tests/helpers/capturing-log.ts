/**
 * A pino logger that keeps every line it writes, parsed, so that a test can
 * check what was reported (a warning naming the corrupt file, ...).
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/** One parsed log line: pino's fields (msg, level, ...) and the bindings. */
export type LogLine = Record<string, unknown> & { msg: string; level: number };

export function capturingLog(level = 'info'): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { log: pino({ level }, stream), lines };
}
