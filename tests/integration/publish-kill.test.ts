/**
 * Faults (issue 9): a process publishing adapter versions is killed with
 * SIGKILL at seeded random moments, many times over one store. Whatever the
 * moment, the store opened afterwards lists every version the killed
 * processes reported stored, each loads to the adapter that was written,
 * no half-written version is visible, and the leftovers of the cut writes
 * (hidden temporary folders) are removed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/common/rng.js';
import { AdapterStore } from '../../src/engine/adapter-store.js';
import { type Adapter, disposeAdapter } from '../../src/model/adapter.js';
import { initLoraAdapter } from '../../src/model/adapter-init.js';
import { capturingLog } from '../helpers/capturing-log.js';
import { testBackend } from '../helpers/tiny-model.js';
import { PUBLISH_BASE, PUBLISH_LORA, PUBLISH_SEED } from './helpers/publish-adapter.js';

/** Same length and the same bits (F32 storage round-trips exactly). */
function bitwiseEqual(x: ArrayLike<number>, y: ArrayLike<number>): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
  return true;
}

const LOOP = fileURLToPath(new URL('./helpers/publish-loop.ts', import.meta.url));
/** Kills until this many landed in the middle of a write, at most {@link MAX_ROUNDS}. */
const CUT_WRITES = 3;
const MAX_ROUNDS = 30;

let dir: string;
before(async () => {
  await testBackend();
  dir = join(mkdtempSync(join(tmpdir(), 'gentune-publish-kill-')), 'adapters');
});
after(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

/** Hidden entries (temporary folders of writes in progress or cut) under the adapter's folder. */
const hidden = () => (existsSync(join(dir, 'killed')) ? readdirSync(join(dir, 'killed')).filter((e) => e.startsWith('.')) : []);

/** Runs publish-loop.ts until it has stored one version, then kills it `delayMs` later; resolves with the versions it reported. */
async function publishUntilKilled(delayMs: number): Promise<number[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', LOOP, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stored: number[] = [];
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  let killTimer: NodeJS.Timeout | undefined;
  createInterface({ input: child.stdout }).on('line', (line) => {
    stored.push(Number(/^stored (\d+)$/.exec(line)![1]));
    killTimer ??= setTimeout(() => child.kill('SIGKILL'), delayMs);
  });
  assert.equal(await exited, 'SIGKILL');
  return stored;
}

test('SIGKILL at random moments while publishing adapters: every reported version loads whole, no half-written one is visible, leftovers are removed', { timeout: 300_000 }, async (t) => {
  const rng = new Rng(20261128);
  const reported: number[] = [];
  let cutWrites = 0;
  let rounds = 0;
  for (; rounds < MAX_ROUNDS && cutWrites < CUT_WRITES; rounds++) {
    reported.push(...(await publishUntilKilled(Math.floor(rng.next() * 400))));
    if (hidden().length > 0) cutWrites++;
  }
  // The kills did land in the middle of writes (else this test proves nothing).
  assert.ok(cutWrites > 0, `no kill of ${rounds} left a write in progress`);

  const { log, lines } = capturingLog('debug');
  const store = await AdapterStore.open(dir, PUBLISH_BASE, log, { watch: false });
  const expected: Adapter = initLoraAdapter(PUBLISH_BASE, PUBLISH_LORA, { seed: PUBLISH_SEED, init: 'gaussian', baseModel: 'publish-base' });
  try {
    const listed = store.versions('killed').map((v) => v.version);
    t.diagnostic(`${rounds} kills, ${cutWrites} in the middle of a write; ${listed.length} versions stored`);
    for (const v of reported) assert.ok(listed.includes(v), `version ${v} was reported stored but is not listed`);
    // Versions are numbered without gaps: a cut write never took a number.
    assert.deepEqual(listed, Array.from({ length: listed.length }, (_, i) => i + 1));
    assert.deepEqual(hidden(), [], 'leftovers removed at open');
    assert.deepEqual(lines.filter((l) => l.level >= 40 && !/leftover/i.test(l.msg)).map((l) => l.msg), [], 'no version reported unreadable');
    for (const v of listed) {
      const got = await store.load('killed', v);
      try {
        assert.ok(got.kind === 'lora' && expected.kind === 'lora');
        assert.deepEqual([...got.lora.modules.keys()], [...expected.lora.modules.keys()]);
        for (const [key, m] of expected.lora.modules) {
          const g = got.lora.modules.get(key)!;
          assert.ok(bitwiseEqual(await g.a.data(), await m.a.data()) && bitwiseEqual(await g.b.data(), await m.b.data()), `version ${v}: ${key} loads as written`);
        }
      } finally {
        disposeAdapter(got);
      }
    }
  } finally {
    store.close();
    disposeAdapter(expected);
  }
});
