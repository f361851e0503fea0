/**
 * A closed-loop load generator: `concurrency` streams, each issuing one
 * request after another for a fixed time, timing every token as the client
 * sees it. Aggregate tokens/s counts the tokens that arrive inside the
 * measured window (after a warm-up), so requests still running at its edges
 * count only for the part inside it.
 */

/** One message of a streamed generation, as the load generator sees it. */
export interface StreamEvent {
  /** Tokens the message carries. */
  tokens: number;
  /** On the last message: the adapter that served the request ("name@version", '' for the base model). */
  adapter?: string;
}

/** Starts request `k` of stream `s`. */
export type OpenStream = (s: number, k: number) => AsyncIterable<StreamEvent>;

/** One finished request. */
export interface RequestRecord {
  stream: number;
  startMs: number;
  /** Undefined when no token came. */
  firstTokenMs?: number;
  endMs: number;
  tokens: number;
  adapter: string;
  error?: string;
}

/** What a load run measured. */
export interface LoadResult {
  concurrency: number;
  /** Length of the measured window, seconds. */
  windowSec: number;
  requests: number;
  failed: number;
  /** Tokens that arrived inside the window, per second. */
  tokensPerSec: number;
  /**
   * CPU seconds this process (every thread: server, engine worker, client)
   * used inside the window. On a shared machine, tokens per CPU-second says
   * how well batching works regardless of what else runs.
   */
  cpuSec: number;
  tokensPerCpuSec: number;
  /** Time to first token of requests started inside the window, milliseconds. */
  ttftMs: Percentiles;
  /** Gaps between consecutive tokens of a request, inside the window, milliseconds. */
  itlMs: Percentiles;
  records: RequestRecord[];
  errors: string[];
}

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

/** Nearest-rank percentiles. */
export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: NaN, p99: NaN, max: NaN, n: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1], n: sorted.length };
}

export interface LoadOptions {
  concurrency: number;
  /** Measured window, milliseconds. */
  durationMs: number;
  /** Run before the window opens (batch filling, adapters loading), milliseconds. */
  warmupMs: number;
  /** Keeps issuing requests while this returns true, even after the window (the swap test); default: until the window closes. */
  keepGoing?: () => boolean;
}

/** Runs the load; resolves once every stream's last request has finished. */
export async function runLoad(open: OpenStream, options: LoadOptions): Promise<LoadResult> {
  const t0 = performance.now();
  const from = t0 + options.warmupMs;
  const to = from + options.durationMs;
  const keepGoing = options.keepGoing ?? (() => performance.now() < to);
  const records: RequestRecord[] = [];
  const ttft: number[] = [];
  const itl: number[] = [];
  let windowTokens = 0;
  const inWindow = (t: number) => t >= from && t <= to;
  let cpuFrom: NodeJS.CpuUsage | undefined;
  let cpuWindow: NodeJS.CpuUsage | undefined;
  const opened = setTimeout(() => (cpuFrom = process.cpuUsage()), options.warmupMs);
  const closed = setTimeout(() => (cpuWindow = process.cpuUsage(cpuFrom)), options.warmupMs + options.durationMs);

  const stream = async (s: number) => {
    for (let k = 0; keepGoing(); k++) {
      const rec: RequestRecord = { stream: s, startMs: performance.now(), endMs: 0, tokens: 0, adapter: '' };
      let last: number | undefined;
      try {
        for await (const ev of open(s, k)) {
          if (ev.adapter !== undefined) rec.adapter = ev.adapter;
          if (ev.tokens === 0) continue;
          const now = performance.now();
          if (last === undefined) {
            rec.firstTokenMs = now;
            if (inWindow(rec.startMs)) ttft.push(now - rec.startMs);
          } else if (inWindow(now)) itl.push(now - last);
          if (inWindow(now)) windowTokens += ev.tokens;
          rec.tokens += ev.tokens;
          last = now;
        }
      } catch (err) {
        rec.error = err instanceof Error ? err.message : String(err);
      }
      rec.endMs = performance.now();
      records.push(rec);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, s) => stream(s)));
  clearTimeout(opened);
  clearTimeout(closed);
  cpuWindow ??= process.cpuUsage(cpuFrom);
  const cpuSec = (cpuWindow.user + cpuWindow.system) / 1e6;
  const failed = records.filter((r) => r.error !== undefined);
  return {
    concurrency: options.concurrency,
    windowSec: options.durationMs / 1000,
    requests: records.length,
    failed: failed.length,
    tokensPerSec: windowTokens / (options.durationMs / 1000),
    cpuSec,
    tokensPerCpuSec: windowTokens / cpuSec,
    ttftMs: percentiles(ttft),
    itlMs: percentiles(itl),
    records,
    errors: [...new Set(failed.map((r) => r.error!))].slice(0, 5),
  };
}
