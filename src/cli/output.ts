/**
 * CLI plumbing shared by the commands: the --addr / --json / --timeout options
 * (and the auth / TLS ones of client-security.ts),
 * a client per command, number parsing that names the flag, tables, JSON lines
 * (proto3 canonical JSON for messages),
 * and error reporting (gRPC errors print as "gentune: NOT_FOUND: ..." and exit 1).
 */
import { readFileSync } from 'node:fs';
import { status as Code } from '@grpc/grpc-js';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { GentuneClient } from '../client/gentune-client.js';
import { type ProtoMessageType, toProto3Json } from '../client/proto-json.js';
import { defaultClientAddress } from './client-env.js';
import type { Example } from '../gen/gentune/v1/datasets.js';
import { clientSecurity, securityOptions, type ClientSecurityFlags } from './client-security.js';

/** Options every client command takes. */
export interface ClientOptions extends ClientSecurityFlags {
  addr: string;
  json?: boolean;
  /** Deadline per call, milliseconds. */
  timeout?: number;
}

/** Adds --addr, --json, --timeout and the auth / TLS flags to a command. */
export function clientOptions(cmd: Command): Command {
  return securityOptions(cmd)
    .option('--addr <host:port>', 'server address (env GENTUNE_ADDR)', defaultClientAddress())
    .option('--json', 'print JSON (one object per line for streams)')
    .addOption(new Option('--timeout <ms>', 'deadline per call, milliseconds').argParser(intArg('--timeout', 1)));
}

/** A commander parser for an integer flag in [min, max]. */
export function intArg(flag: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(`\`${flag}\` must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/** A commander parser for a finite number flag. */
export function numArg(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`\`${flag}\` must be a number, got ${JSON.stringify(value)}`);
    return n;
  };
}

/** Collects a repeatable flag into a list. */
export function collectArg(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Splits "a,b,c" into a list (empty items dropped). */
export function listArg(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Runs `fn` with a client for `opts.addr`, reporting failures; sets process.exitCode. */
export async function withClient(opts: ClientOptions, fn: (client: GentuneClient) => Promise<number | void>): Promise<void> {
  let client: GentuneClient;
  try {
    client = new GentuneClient(opts.addr, { ...clientSecurity(opts), ...(opts.timeout ? { defaultTimeoutMs: opts.timeout } : {}) });
  } catch (err) {
    reportError(err, opts.json);
    process.exitCode = 1;
    return;
  }
  try {
    process.exitCode = (await fn(client)) ?? 0;
  } catch (err) {
    reportError(err, opts.json);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

/** Prints an error: gRPC ones as "CODE: details", others by message. */
export function reportError(err: unknown, json = false): void {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  const grpc = typeof e?.code === 'number' && typeof e?.details === 'string';
  const code = grpc ? (Code[e.code as number] ?? String(e.code)) : 'ERROR';
  const message = grpc ? (e.details as string) : String(e?.message ?? err);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`gentune: ${code}: ${message}\n`);
}

/**
 * Makes a closed stdout pipe (`gentune jobs watch ID | head -3`) end the
 * process with code 0: the reader has all it wanted, as with `seq | head`.
 * Without this Node raises EPIPE as an unhandled 'error' event and prints a
 * stack trace.
 */
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

/** Writes one JSON line. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/**
 * Writes one message as a JSON line in proto3's canonical JSON, defaults
 * included (src/client/proto-json.ts): what every --json prints, so that its
 * output reads the same as any other language's protobuf library prints it.
 * `typeName` is the full name, "gentune.v1.Adapter".
 */
export function printProto<T>(type: ProtoMessageType<T>, typeName: string, message: T): void {
  printJson(toProto3Json(type, typeName, message));
}

/** Renders rows as an aligned text table with a header. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** Formats a number for a table: 4 significant digits, '-' when absent. */
export function fmt(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
}

/** Formats bytes as KiB / MiB / GiB. */
export function fmtBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** Reads a local JSONL file into inline examples ("file.jsonl line 3: ..." on errors). */
export function readExamples(path: string): Example[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((line, i): Example[] => {
      if (line.trim() === '') return [];
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(line);
      } catch {
        throw new Error(`${path} line ${i + 1}: not valid JSON`);
      }
      return [
        {
          prompt: typeof row.prompt === 'string' ? row.prompt : '',
          completion: typeof row.completion === 'string' ? row.completion : '',
          messages: Array.isArray(row.messages) ? (row.messages as Example['messages']) : [],
          text: typeof row.text === 'string' ? row.text : '',
        },
      ];
    });
}
