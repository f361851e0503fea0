#!/usr/bin/env node
// Launcher of the gentune CLI: runs src/cli/main.ts under tsx (no build step).
// SIGTERM and SIGHUP are forwarded to the child; SIGINT is not, because a
// terminal already sends it to the whole process group (forwarding it would
// deliver it twice, and a second SIGINT makes `gentune serve` skip draining).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const child = spawn(process.execPath, ['--import', tsx, main, ...process.argv.slice(2)], { stdio: 'inherit' });

for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
process.on('SIGINT', () => {});
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
