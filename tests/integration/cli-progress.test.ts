/**
 * `gentune finetune` and `gentune evaluate` in a terminal: run under a pseudo-terminal (util-linux
 * script(1)) against the real server, its raw output replayed on a terminal
 * model (tests/helpers/terminal-screen.ts). Every event line must be on the
 * final screen, in order, above the bar; the bar's final state is the last
 * line, ended by a newline, and nothing follows it. Skipped without script(1),
 * failed without it under CI.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from './helpers/harness.js';
import { TerminalScreen } from '../helpers/terminal-screen.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const BIN = fileURLToPath(new URL('../../bin/gentune.js', import.meta.url));
const missing = spawnSync('script', ['--version']).status !== 0 && 'script(1) not installed (apt-get install -y util-linux)';
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI with `args` on a 100x12 pseudo-terminal; the final screen's lines, the shell's `[exit N]` last. */
async function onTerminal(args: string[]): Promise<string[]> {
  const inner = `stty cols 100 rows 12; ${[process.execPath, BIN, ...args].map(quote).join(' ')}; echo "[exit $?]"`;
  const raw = await new Promise<string>((resolve, reject) =>
    execFile('script', ['-qfec', inner, '/dev/null'], { timeout: 120_000, encoding: 'utf8' }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const screen = new TerminalScreen(100, 12);
  screen.write(raw);
  return screen.lines();
}

let h: Harness;
let dir: string;
before(async () => {
  h = await startHarness();
  dir = mkdtempSync(join(tmpdir(), 'gentune-pty-'));
});
after(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

test('finetune on a terminal: event lines above the bar, in order; the bar last, with a newline; nothing after', { skip: skipWithoutPeer(missing) }, async () => {
  requirePeer(missing);
  const file = join(dir, 'qa.jsonl');
  writeFileSync(file, ['cat', 'dog', 'cow', 'owl', 'hen', 'pig'].map((w) => JSON.stringify({ prompt: `Q: ${w}? A:`, completion: ` ${w}` })).join('\n') + '\n');
  const args = ['finetune', '--addr', h.address, '--adapter', 'pty-ad', '--file', file, '--max-steps', '8', '--eval-interval', '1', '--validation-split', '0.34', '--r', '2'];
  const lines = await onTerminal(args);
  const shown = lines.join('\n');
  assert.equal(lines.at(-1), '[exit 0]', shown);
  const bar = lines.at(-2)!;
  assert.match(bar, /^\u2588+ 100% \| step 8\/8 \| loss /, `the bar's final state is the last line before the prompt:\n${shown}`);
  const events = lines.slice(0, -2);
  assert.match(events[0]!, /^uploaded .*qa\.jsonl as dataset /, shown);
  assert.ok(events.some((l) => /^job \S+ queued/.test(l)), shown);
  assert.ok(events.some((l) => /^started: 8 steps, 4 train \/ 2 validation examples/.test(l)), shown);
  const evals = events.filter((l) => /^eval at step \d+: loss \S+ perplexity \S+$/.test(l)).map((l) => Number(/step (\d+)/.exec(l)![1]));
  assert.deepEqual(evals, [1, 2, 3, 4, 5, 6, 7, 8], `every eval line, in order:\n${shown}`);
  assert.match(events.at(-1)!, /^succeeded: adapter pty-ad@1 \(train loss/, shown);
  // No bar (or piece of one) left among the event lines.
  assert.deepEqual(events.filter((l) => /\u2588|\u2591/.test(l)), [], shown);
});

test('evaluate on a terminal: one finished bar per model and phase, then the table, then nothing', { skip: skipWithoutPeer(missing) }, async () => {
  requirePeer(missing);
  const file = join(dir, 'eval.jsonl');
  writeFileSync(file, ['cat', 'dog', 'cow'].map((w) => JSON.stringify({ prompt: `Q: ${w}? A:`, completion: ` ${w}` })).join('\n') + '\n');
  const lines = await onTerminal(['evaluate', '--addr', h.address, '--file', file, '--metrics', 'loss,exact_match', '--max-new-tokens', '2']);
  const shown = lines.join('\n');
  assert.equal(lines.at(-1), '[exit 0]', shown);
  const bars = lines.filter((l) => /\u2588|\u2591/.test(l));
  assert.deepEqual(bars, [
    `${'\u2588'.repeat(40)} 100% | base (1/1) loss | 3/3 examples`,
    `${'\u2588'.repeat(40)} 100% | base (1/1) generation | 3/3 examples`,
  ], shown);
  const table = lines.slice(lines.indexOf(bars.at(-1)!) + 1, -1);
  assert.match(table[0]!, /^3 examples, \d+ target tokens$/, shown);
  assert.match(table[1]!, /^MODEL\s+LOSS\s+EXACT_MATCH\s+SECONDS$/, shown);
  assert.match(table[2]!, /^base\s/, shown);
});
