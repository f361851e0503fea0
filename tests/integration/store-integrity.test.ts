/**
 * Store integrity (issue 18), with hostile input on one real server and the
 * real client: names that would be hidden or `.` are refused everywhere;
 * nothing in the store is followed through a symbolic link, and DeleteAdapter
 * never deletes outside the data directory; an adapter whose files do not
 * load (an `r` its tensors do not have, a corrupt gentune.json, a weights
 * file linked to /etc/passwd) is listed as broken with the reason, and
 * Generate with it is FAILED_PRECONDITION with that reason, naming no server path.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import type { Adapter as AdapterMessage } from '../../src/gen/gentune/v1/adapters.js';
import { disposeAdapter } from '../../src/model/adapter.js';
import { initLoraAdapter } from '../../src/model/adapter-init.js';
import { saveAdapter } from '../../src/model/checkpoint/peft-adapter.js';
import { testBackend } from '../helpers/tiny-model.js';
import { FIXTURE_MODEL } from './helpers/fixture-model.js';
import { collect, rejectsWith, startHarness, type Harness } from './helpers/harness.js';

const EXAMPLES = [{ prompt: 'Q: 2+2?', completion: ' 4' }];
const GEN = { prompt: 'Hello', sampling: { maxNewTokens: 2, temperature: 0 } };
const RULE = '1..64 characters of [A-Za-z0-9._-], starting with a letter or digit';

let h: Harness;
let dataDir: string;
let outside: string;
let adapters: string;

/** A valid LoRA adapter of the fixture model (r=4) written to `dir`. */
async function writeAdapter(dir: string, seed: number): Promise<void> {
  const adapter = initLoraAdapter(FIXTURE_MODEL, { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['attn.c_attn'], useRslora: false }, { seed, init: false, baseModel: 'tiny-gpt2' });
  try {
    await saveAdapter(dir, adapter, FIXTURE_MODEL);
  } finally {
    disposeAdapter(adapter);
  }
}

const versionOf = (list: AdapterMessage[], name: string, version: number) => list.find((a) => a.name === name)?.versions.find((v) => v.version === version);

before(async () => {
  await testBackend();
  dataDir = mkdtempSync(join(tmpdir(), 'gentune-integrity-'));
  outside = mkdtempSync(join(tmpdir(), 'gentune-outside-'));
  adapters = join(dataDir, 'adapters');
  // Outside the data directory: a whole adapter, reachable only through links.
  await writeAdapter(join(outside, 'ext', '1'), 1);
  // A name that is a link to a folder outside.
  mkdirSync(adapters, { recursive: true });
  symlinkSync(join(outside, 'ext'), join(adapters, 'linked'));
  // A real name whose version 2 is a link to a version outside.
  await writeAdapter(join(adapters, 'real', '1'), 2);
  symlinkSync(join(outside, 'ext', '1'), join(adapters, 'real', '2'));
  // A version whose weights file is a link to /etc/passwd.
  await writeAdapter(join(adapters, 'passwd', '1'), 3);
  rmSync(join(adapters, 'passwd', '1', 'adapter_model.safetensors'));
  symlinkSync('/etc/passwd', join(adapters, 'passwd', '1', 'adapter_model.safetensors'));
  // adapter_config.json says r=8; the tensors have rank 4.
  await writeAdapter(join(adapters, 'rank', '1'), 4);
  const configFile = join(adapters, 'rank', '1', 'adapter_config.json');
  writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), r: 8 }));
  // A corrupt gentune.json.
  await writeAdapter(join(adapters, 'meta', '1'), 5);
  writeFileSync(join(adapters, 'meta', '1', 'gentune.json'), '{"createdAtMs": 17');
  h = await startHarness({ dataDir });
});

after(async () => {
  await h?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

describe('names: one rule, no leading dot', () => {
  for (const name of ['.', '.tmp', '.hidden']) {
    test(`FineTune with adapter ${JSON.stringify(name)} is INVALID_ARGUMENT naming the field and the rule; nothing is written`, async () => {
      await rejectsWith(collect(h.client.fineTune({ adapter: name, examples: EXAMPLES, hyperparameters: { maxSteps: 1 } })), Code.INVALID_ARGUMENT, `\`adapter\` must be ${RULE}, got ${JSON.stringify(name)}`);
      assert.deepEqual(await h.client.listFineTuneJobs(), [], 'no job created');
      assert.ok(!readdirSync(adapters).includes(name === '.' ? '1' : name), readdirSync(adapters).join(','));
    });
  }

  test('Generate, LoadAdapter and DeleteAdapter refuse a hidden name the same way', async () => {
    const details = `\`adapter\` must be ${RULE}, got ".hidden"`;
    await rejectsWith(h.client.generateText({ ...GEN, adapter: '.hidden' }), Code.INVALID_ARGUMENT, details);
    await rejectsWith(h.client.loadAdapter('.hidden'), Code.INVALID_ARGUMENT, details);
    await rejectsWith(h.client.deleteAdapter('.hidden@1'), Code.INVALID_ARGUMENT, details);
  });
});

describe('symbolic links are never followed', () => {
  test('a name linked to a folder outside the data directory is not listed, not served, and DeleteAdapter leaves the target alone', async () => {
    assert.equal((await h.client.listAdapters()).find((a) => a.name === 'linked'), undefined);
    await rejectsWith(h.client.generateText({ ...GEN, adapter: 'linked' }), Code.NOT_FOUND, /^`adapter` "linked": no such adapter/);
    await rejectsWith(h.client.generateText({ ...GEN, adapter: 'linked@1' }), Code.NOT_FOUND);
    await rejectsWith(h.client.deleteAdapter('linked'), Code.NOT_FOUND);
    await rejectsWith(h.client.deleteAdapter('linked@1'), Code.NOT_FOUND);
    assert.deepEqual(readdirSync(join(outside, 'ext', '1')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  });

  test('a version linked outside is listed as broken; the name serves its real version; deleting it removes the link only', async () => {
    const v2 = versionOf(await h.client.listAdapters(), 'real', 2);
    assert.match(v2?.brokenReason ?? '', /symbolic link/);
    assert.ok(!v2!.brokenReason.includes(dataDir) && !v2!.brokenReason.includes(outside), v2!.brokenReason);
    assert.equal((await h.client.listAdapters()).find((a) => a.name === 'real')?.latestVersion, 1);
    await rejectsWith(h.client.generateText({ ...GEN, adapter: 'real@2' }), Code.FAILED_PRECONDITION, /^`adapter` "real@2" is stored but broken: .*symbolic link/);
    assert.equal((await h.client.generateText({ ...GEN, adapter: 'real' })).tokenIds.length, 2);
    await h.client.deleteAdapter('real@2');
    assert.ok(!existsSync(join(adapters, 'real', '2')) && lstatSync(join(adapters, 'real', '1')).isDirectory());
    assert.deepEqual(readdirSync(join(outside, 'ext', '1')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  });

  test('a weights file linked to /etc/passwd is never opened: broken, with the reason, and Generate is FAILED_PRECONDITION', async () => {
    const v = versionOf(await h.client.listAdapters(), 'passwd', 1);
    assert.equal(v?.brokenReason, 'adapter_model.safetensors: is a symbolic link, which is not followed');
    await rejectsWith(h.client.generateText({ ...GEN, adapter: 'passwd' }), Code.FAILED_PRECONDITION, '`adapter` "passwd@1" is stored but broken: adapter_model.safetensors: is a symbolic link, which is not followed');
    await rejectsWith(h.client.loadAdapter('passwd'), Code.FAILED_PRECONDITION, /is stored but broken/);
  });
});

describe('every adapter is checked when it is listed', () => {
  test('an adapter_config.json whose r its tensors do not have is listed as broken with the reason', async () => {
    const list = await h.client.listAdapters();
    const reason = versionOf(list, 'rank', 1)?.brokenReason ?? '';
    assert.match(reason, /^adapter_model\.safetensors: tensor `base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight` has shape \[4,32\]: rank 4, but adapter_config\.json says r=8$/);
    assert.equal(list.find((a) => a.name === 'rank')?.latestVersion, 0);
    await rejectsWith(h.client.generateText({ ...GEN, adapter: 'rank' }), Code.FAILED_PRECONDITION, `\`adapter\` "rank@1" is stored but broken: ${reason}`);
  });

  test('a corrupt gentune.json is listed as broken with the reason', async () => {
    const reason = versionOf(await h.client.listAdapters(), 'meta', 1)?.brokenReason ?? '';
    assert.match(reason, /^gentune\.json: not valid JSON \(/);
    await rejectsWith(h.client.generateText({ ...GEN, adapter: 'meta' }), Code.FAILED_PRECONDITION, /^`adapter` "meta@1" is stored but broken: gentune\.json: not valid JSON/);
  });

  test('a broken version can be deleted', async () => {
    await h.client.deleteAdapter('meta');
    assert.equal((await h.client.listAdapters()).find((a) => a.name === 'meta'), undefined);
  });
});
