/**
 * Every `--json` output of the gentune CLI is proto3's canonical JSON, as
 * other languages print it: each line the CLI prints for a real server call is
 * parsed by Python's google.protobuf.json_format (strict: an unknown or
 * mistyped field fails) and printed back by its MessageToJson with fields
 * without presence at their defaults (python/canonical_json.py), and the two
 * must be the same JSON value. Needs /usr/bin/python3 with protobuf and what
 * scripts/python-stubs.sh needs: skipped without them, failed without them
 * under CI (tests/helpers/test-peer.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from './helpers/harness.js';
import { requirePeer, skipWithoutPeer } from '../helpers/test-peer.js';

const BIN = fileURLToPath(new URL('../../bin/gentune.js', import.meta.url));
const PYTHON = '/usr/bin/python3';
const CANONICAL = fileURLToPath(new URL('./python/canonical_json.py', import.meta.url));
const STUBS_SCRIPT = fileURLToPath(new URL('../../scripts/python-stubs.sh', import.meta.url));

/** Runs bin/gentune.js with --addr and --json; resolves with the JSON lines of stdout. */
function gentuneJson(address: string, args: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [BIN, ...args, '--addr', address, '--json'], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`gentune ${args.join(' ')}: ${err.message}\n${stderr}\n${stdout}`));
      else resolve(stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
    }),
  );
}

/** What Python's MessageToJson prints for each (type, line) after parsing it. */
function pythonCanonical(gen: string, lines: [typeName: string, json: Record<string, unknown>][]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [CANONICAL, gen], { timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim().split('\n').map((l) => JSON.parse(l))),
    );
    child.stdin!.end(lines.map(([type, json]) => `${type}\t${JSON.stringify(json)}\n`).join(''));
  });
}

const pythonOk = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import google.protobuf.json_format']).status === 0;
let missing: string | false = pythonOk ? false : `${PYTHON} with protobuf not available (apt-get install -y python3-protobuf)`;

describe('gentune --json prints proto3 canonical JSON', () => {
  let h: Harness;
  let dir: string;
  let gen: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gentune-cli-json-'));
    gen = join(dir, 'py');
    if (!missing) {
      const r = spawnSync(STUBS_SCRIPT, [gen], { encoding: 'utf8' });
      if (r.status !== 0) missing = `scripts/python-stubs.sh failed: ${(r.stderr || String(r.error)).trim().split('\n')[0]}`;
    }
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every command: the same JSON as Python json_format; uint64 as strings, zeros and empty lists present', async (t) => {
    if (skipWithoutPeer(missing)) return t.skip(missing || undefined);
    requirePeer(missing);
    const file = join(dir, 'qa.jsonl');
    const rows = ['cat', 'dog', 'cow', 'owl', 'hen', 'pig'].map((w) => JSON.stringify({ prompt: `Q: ${w}? A:`, completion: ` ${w}` }));
    writeFileSync(file, rows.join('\n') + '\n');

    const seen: [string, Record<string, unknown>][] = [];
    const keep = (type: string, lines: Record<string, unknown>[]) => {
      lines.forEach((l) => seen.push([type, l]));
      return lines;
    };

    const [info] = await gentuneJson(h.address, ['info']);
    assert.equal(info!.health, 'SERVING');
    const { health: _health, ...serverInfo } = info!;
    keep('gentune.v1.GetServerInfoResponse', [serverInfo]);

    const generated = keep('gentune.v1.GenerateResponse', await gentuneJson(h.address, ['generate', '--max-new-tokens', '3', '--seed', '5', '--temperature', '0.7', 'Hello']));
    const [ds] = keep('gentune.v1.Dataset', await gentuneJson(h.address, ['datasets', 'upload', file]));
    keep('gentune.v1.Dataset', await gentuneJson(h.address, ['datasets', 'list']));
    const events = keep(
      'gentune.v1.FineTuneEvent',
      await gentuneJson(h.address, ['finetune', '--adapter', 'json-ad', '--dataset', String(ds!.id), '--max-steps', '4', '--r', '2', '--lora-dropout', '0.05', '--eval-interval', '2', '--validation-split', '0.34', '--seed', '9']),
    );
    const jobId = String(events[0]!.jobId);
    keep('gentune.v1.FineTuneEvent', await gentuneJson(h.address, ['jobs', 'watch', jobId, '--from', '1']));
    const [job] = keep('gentune.v1.FineTuneJob', await gentuneJson(h.address, ['jobs', 'get', jobId]));
    keep('gentune.v1.FineTuneJob', await gentuneJson(h.address, ['jobs', 'list']));
    keep('gentune.v1.Adapter', await gentuneJson(h.address, ['adapters', 'load', 'json-ad', '--pin']));
    keep('gentune.v1.Adapter', await gentuneJson(h.address, ['adapters', 'list']));
    keep('gentune.v1.Adapter', await gentuneJson(h.address, ['adapters', 'unload', 'json-ad']));
    const [evaluation] = keep(
      'gentune.v1.EvaluateResponse',
      await gentuneJson(h.address, ['evaluate', '--file', file, '--adapters', 'json-ad', '--base', '--metrics', 'loss,exact_match', '--max-new-tokens', '2', '--examples']),
    );

    // The properties the issue names, checked by hand on the CLI's own output.
    assert.equal(events[0]!.sequence, 0, 'the first event says sequence 0');
    assert.ok(events.some((e) => 'evaluation' in e) && 'succeeded' in events.at(-1)!, JSON.stringify(events.map(Object.keys)));
    assert.equal(ds!.numExamples, '6', 'uint64 prints as a string');
    assert.match(String(ds!.sizeBytes), /^\d+$/);
    assert.equal(typeof (info!.model as Record<string, unknown>).numParameters, 'string');
    assert.equal(job!.state, 'JOB_STATE_SUCCEEDED', 'enums print by name');
    assert.match(String(job!.createdAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'Timestamps print in RFC 3339');
    const hp = (job!.request as { hyperparameters: Record<string, unknown> }).hyperparameters;
    assert.equal(hp.seed, '9');
    assert.equal((job!.request as { lora: Record<string, unknown> }).lora.loraDropout, 0.05, 'a float prints as the shortest decimal that reads back as it');
    assert.equal(generated[0]!.finishReason, 'FINISH_REASON_UNSPECIFIED', 'default enum values are printed');
    assert.ok(Array.isArray(generated[0]!.tokenIds));
    assert.ok((evaluation!.results as unknown[]).length === 2);

    // And the whole of it, line by line, against Python.
    const python = await pythonCanonical(gen, seen);
    assert.equal(python.length, seen.length);
    seen.forEach(([type, ours], i) => assert.deepEqual(ours, python[i], `${type} line ${i}`));
  });
});
