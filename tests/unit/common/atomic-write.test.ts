// The one atomic-write helper (issue 19) on a real full disk (a 256 KiB
// tmpfs; mounting needs root, elsewhere the tests skip saying so): a write
// that does not fit throws DiskFull (RESOURCE_EXHAUSTED), leaves the old file
// or folder as it was, and leaves no temporary file or folder behind.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskFull, diskError, hiddenName, isOrphanedName, writeFileAtomic, writeFileSynced, writeFolderAtomic } from '../../../src/common/atomic-write.js';
import { GentuneError } from '../../../src/common/errors.js';

let disk: string;
let mounted = false;
const TOO_BIG = Buffer.alloc(512 * 1024, 7);

before(() => {
  disk = mkdtempSync(join(tmpdir(), 'gentune-atomic-'));
  mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', disk]).status === 0;
});

after(() => {
  if (mounted) spawnSync('umount', [disk]);
  rmSync(disk, { recursive: true, force: true });
});

const isDiskFull = (err: unknown) => {
  assert.ok(err instanceof DiskFull, String(err));
  assert.equal((err as GentuneError).code, 'RESOURCE_EXHAUSTED');
  assert.equal((err as Error).message, 'no space left on the disk (ENOSPC); nothing was stored');
  return true;
};

test('writeFileAtomic on a full disk: DiskFull, the old file intact, no temporary file left', async (t) => {
  if (!mounted) return t.skip('cannot mount a tmpfs (needs root)');
  const file = join(disk, 'config.json');
  await writeFileAtomic(file, '{"old":true}\n');
  await assert.rejects(writeFileAtomic(file, [TOO_BIG]), isDiskFull);
  assert.equal(readFileSync(file, 'utf8'), '{"old":true}\n');
  assert.deepEqual(readdirSync(disk), ['config.json']);
  rmSync(file);
});

test('writeFolderAtomic on a full disk: DiskFull, the old folder intact, no temporary folder left', async (t) => {
  if (!mounted) return t.skip('cannot mount a tmpfs (needs root)');
  const dir = join(disk, 'adapter');
  await writeFolderAtomic(dir, (tmp) => writeFileSynced(join(tmp, 'a.bin'), 'v1'));
  await assert.rejects(
    writeFolderAtomic(dir, async (tmp) => {
      await writeFileSynced(join(tmp, 'a.bin'), 'v2');
      await writeFileSynced(join(tmp, 'b.bin'), [TOO_BIG]);
    }),
    isDiskFull,
  );
  assert.deepEqual(readdirSync(dir), ['a.bin']);
  assert.equal(readFileSync(join(dir, 'a.bin'), 'utf8'), 'v1');
  assert.deepEqual(readdirSync(disk), ['adapter']);
  rmSync(dir, { recursive: true });
});

test('diskError names the data directory, keeps other errors, and temporary names are leftovers of this process', () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const edquot = Object.assign(new Error('EDQUOT: disk quota exceeded, write'), { code: 'EDQUOT' });
  assert.equal((diskError(enospc, '/var/lib/gentune') as Error).message, 'no space left on the disk of the data directory /var/lib/gentune (ENOSPC); nothing was stored');
  assert.equal((diskError(new DiskFull(undefined, { cause: edquot }), '/d') as Error).message, 'no space left on the disk of the data directory /d (EDQUOT: quota exhausted); nothing was stored');
  const other = Object.assign(new Error('EACCES'), { code: 'EACCES' });
  assert.equal(diskError(other, '/d'), other);
  assert.ok(isOrphanedName(hiddenName('tmp')) && isOrphanedName(`${hiddenName('tmp')}.tmp`) && isOrphanedName(hiddenName('trash')));
  assert.ok(!isOrphanedName('.tmp') && !isOrphanedName('chat'));
});
