/**
 * Logs of a worker thread, written by the main thread's logger. The worker
 * logs with pino as usual (same level, same bindings), into a destination
 * that hands each finished JSON line to the next batch; the main thread
 * writes the lines to its logger's own destination, so they land where its
 * own lines do, in order.
 */
import { pino, symbols, type Logger } from 'pino';

/** Worker side: a pino logger whose lines go to `sink`. */
export function relayLogger(level: string, bindings: Record<string, unknown>, sink: (line: string) => void): Logger {
  return pino({ level }, { write: sink }).child(bindings);
}

/** Main side: writes relayed lines to `log`'s destination. */
export function lineWriter(log: Logger): (line: string) => void {
  const stream = (log as unknown as Record<symbol, { write(line: string): unknown } | undefined>)[symbols.streamSym];
  return stream ? (line) => void stream.write(line) : (line) => void process.stdout.write(line);
}
