#!/usr/bin/env node
// Assembles src/model/kernels/*.wat into the committed TypeScript modules that
// embed them (base64), so nothing is compiled at start-up and wabt stays a
// development dependency. `--check` exits 1 when a committed module is stale
// (the test suite runs it).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const KERNELS = [
  { wat: 'src/model/kernels/attention.wat', ts: 'src/model/kernels/attention-wasm.ts', name: 'ATTENTION_WASM' },
  { wat: 'src/model/kernels/lora.wat', ts: 'src/model/kernels/lora-wasm.ts', name: 'LORA_WASM' },
];
const root = fileURLToPath(new URL('..', import.meta.url));
const check = process.argv.includes('--check');

const wabt = await wabtInit();
let stale = 0;
for (const k of KERNELS) {
  const module = wabt.parseWat(k.wat, readFileSync(root + k.wat, 'utf8'), { simd: true });
  module.validate();
  const { buffer } = module.toBinary({});
  module.destroy();
  const text =
    `// Generated from ${k.wat.split('/').pop()} by scripts/build-kernels.mjs; do not edit.\n` +
    `/** The assembled module, base64 (${buffer.length} bytes). */\n` +
    `export const ${k.name} = '${Buffer.from(buffer).toString('base64')}';\n`;
  let old = '';
  try {
    old = readFileSync(root + k.ts, 'utf8');
  } catch {}
  if (old === text) continue;
  if (check) {
    console.error(`${k.ts} is stale: run node scripts/build-kernels.mjs`);
    stale++;
  } else {
    writeFileSync(root + k.ts, text);
    console.log(`wrote ${k.ts} (${buffer.length} bytes)`);
  }
}
process.exit(stale > 0 ? 1 : 0);
