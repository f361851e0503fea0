/**
 * Ready means warm (issue 17): start a real `gentune serve` process, time it
 * to /readyz 200, then the first Generate's time to its first token against
 * warm requests' (the median of the next five). Rounds alternate
 * `--warmup true` and `--warmup false`, so the two are measured side by side
 * on the same machine state. Prints a table and writes
 * bench/results/first-request.json.
 *
 *   npx tsx bench/first-request.ts [--model models/gentune-mini] [--rounds 3] [--backend wasm]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GentuneClient } from '../src/client/gentune-client.js';
import { printTable } from './lib/random-model.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/gentune-mini' },
    rounds: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const BIN = fileURLToPath(new URL('../bin/gentune.js', import.meta.url));
const PROMPT = 'The quick brown fox jumps over the lazy dog and';
const WARM_REQUESTS = 5;

interface Round {
  warmup: boolean;
  /** Spawn to /readyz 200, seconds. */
  readyS: number;
  /** First request after ready: time to its first token, milliseconds. */
  firstTtftMs: number;
  /** Median time to first token of the next requests, milliseconds. */
  warmTtftMs: number;
  ratio: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function ttft(client: GentuneClient): Promise<number> {
  const started = performance.now();
  for await (const r of client.generate({ prompt: PROMPT, sampling: { maxNewTokens: 4, temperature: 0 } })) {
    if (r.tokenIds.length > 0) return performance.now() - started;
  }
  throw new Error('no token');
}

async function round(warmup: boolean): Promise<Round> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gentune-first-'));
  const started = performance.now();
  const args = [BIN, 'serve', '--port', '0', '--metrics-port', '0', '--http-port', '0', '--data-dir', dataDir];
  args.push('--model', values.model!, '--backend', values.backend!, '--warmup', String(warmup));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    const addresses = await new Promise<{ grpc: string; metrics: string }>((resolve, reject) => {
      const seen: { grpc?: string; metrics?: string } = {};
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let entry: { msg?: string; address?: string };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          return;
        }
        if (entry.msg === 'gRPC server listening') seen.grpc = entry.address;
        if (entry.msg === 'metrics endpoint listening') seen.metrics = entry.address;
        if (seen.grpc && seen.metrics) resolve({ grpc: seen.grpc, metrics: seen.metrics });
      });
      void exited.then(() => reject(new Error('serve exited before listening')));
    });
    // Ready as an orchestrator sees it: poll /readyz.
    for (;;) {
      const res = await fetch(`http://${addresses.metrics}/readyz`).catch(() => undefined);
      if (res?.status === 200) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const readyS = (performance.now() - started) / 1000;
    const client = new GentuneClient(addresses.grpc, { defaultTimeoutMs: 120_000 });
    try {
      const firstTtftMs = await ttft(client);
      const warm: number[] = [];
      for (let i = 0; i < WARM_REQUESTS; i++) warm.push(await ttft(client));
      const warmTtftMs = median(warm);
      return { warmup, readyS, firstTtftMs, warmTtftMs, ratio: firstTtftMs / warmTtftMs };
    } finally {
      client.close();
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const rounds: Round[] = [];
for (let i = 0; i < Number(values.rounds); i++) {
  for (const warmup of i % 2 === 0 ? [true, false] : [false, true]) rounds.push(await round(warmup));
}
const summary = [true, false].map((warmup) => {
  const rs = rounds.filter((r) => r.warmup === warmup);
  return {
    warmup: String(warmup),
    rounds: rs.length,
    'ready s (median)': median(rs.map((r) => r.readyS)).toFixed(2),
    'first TTFT ms (median)': median(rs.map((r) => r.firstTtftMs)).toFixed(1),
    'warm TTFT ms (median)': median(rs.map((r) => r.warmTtftMs)).toFixed(1),
    'first / warm (median)': median(rs.map((r) => r.ratio)).toFixed(2),
  };
});
printTable(summary);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/first-request.json',
  JSON.stringify({ model: values.model, backend: values.backend, prompt: PROMPT, rounds, summary }, null, 2) + '\n',
);
