import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobState } from '../../src/gen/gentune/v1/fine_tune.js';
import { startHarness, type Harness } from './helpers/harness.js';

const BIN = fileURLToPath(new URL('../../bin/gentune.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/gentune.js asynchronously (the server lives in this process, so it must keep running). */
function gentune(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Resolves with the text on `stream` up to the first line matching `re`. */
function lineMatching(stream: NodeJS.ReadableStream, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const line = text.split('\n').find((l) => re.test(l));
      if (line === undefined) return;
      stream.off('data', onData);
      resolve(text);
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`stream ended before ${re}: ${text}`)));
  });
}

/** The exit code of a spawned child (a signal counts as a failure). */
async function exitCode(child: ChildProcess): Promise<number | string> {
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  return code ?? signal ?? -1;
}

const jsonLines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

describe('gentune CLI', () => {
  let h: Harness;
  let dir: string;
  let file: string;
  before(async () => {
    h = await startHarness();
    dir = mkdtempSync(join(tmpdir(), 'gentune-cli-'));
    file = join(dir, 'qa.jsonl');
    writeFileSync(file, ['{"prompt":"Q: 1+1?","completion":" 2"}', '{"prompt":"Q: 2+2?","completion":" 4"}'].join('\n') + '\n');
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('info --json (address from GENTUNE_ADDR)', async () => {
    const r = await gentune(['info', '--json'], { GENTUNE_ADDR: h.address });
    assert.equal(r.code, 0, r.stderr);
    const [info] = jsonLines(r.stdout);
    assert.equal(info.health, 'SERVING');
    assert.ok(info.model.name);
    assert.ok(info.device && Number(info.deviceMemory.numBytes) > 0, JSON.stringify(info));
    assert.equal(info.limits.maxConcurrentJobs, 1);
  });

  test('generate streams the text to stdout and a summary to stderr', async () => {
    const r = await gentune(['generate', '--addr', h.address, '--max-new-tokens', '4', '--seed', '3', 'Hello', 'world']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.trim().length > 0);
    assert.match(r.stderr, /\[(length|eos)\] \d+ tokens, ttft/);
  });

  test('generate --json prints one message per line, the last with finishReason', async () => {
    const r = await gentune(['generate', '--addr', h.address, '--json', '--max-new-tokens', '3', 'x']);
    const lines = jsonLines(r.stdout);
    assert.ok(lines.length >= 2);
    assert.match(lines.at(-1).finishReason, /FINISH_REASON_(LENGTH|EOS)/);
  });

  test('datasets upload | list | delete', async () => {
    const up = await gentune(['datasets', 'upload', file, '--addr', h.address, '--json']);
    assert.equal(up.code, 0, up.stderr);
    const [ds] = jsonLines(up.stdout);
    assert.equal(ds.numExamples, '2'); // uint64: a string in proto3 JSON
    const list = await gentune(['datasets', 'list', '--addr', h.address]);
    assert.match(list.stdout, /^ID\s+NAME\s+FORMAT/m);
    assert.ok(list.stdout.includes(ds.id));
    const del = await gentune(['datasets', 'delete', ds.id, '--addr', h.address]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /deleted/);
  });

  test('finetune --file follows the job to success; jobs list, adapters list/load, evaluate use it', async () => {
    const ft = await gentune(['finetune', '--addr', h.address, '--adapter', 'cli-ad', '--file', file, '--max-steps', '2', '--r', '4', '--lr-scheduler', 'linear']);
    assert.equal(ft.code, 0, ft.stderr);
    assert.match(ft.stdout, /succeeded: adapter cli-ad@1/);

    const jobs = await gentune(['jobs', 'list', '--addr', h.address, '--state', 'succeeded', '--json']);
    assert.ok(jobsOk(jsonLines(jobs.stdout)));

    const adapters = await gentune(['adapters', 'list', '--addr', h.address]);
    assert.match(adapters.stdout, /cli-ad@1 \(latest\)\s+lora\s+4/);
    const load = await gentune(['adapters', 'load', 'cli-ad', '--pin', '--addr', h.address]);
    assert.match(load.stdout, /pinned/);

    const ev = await gentune(['evaluate', '--addr', h.address, '--file', file, '--adapters', 'cli-ad', '--base', '--metrics', 'loss,perplexity']);
    assert.equal(ev.code, 0, ev.stderr);
    assert.match(ev.stdout, /^MODEL\s+LOSS\s+PERPLEXITY\s+SECONDS$/m);
    assert.match(ev.stdout, /^base\s/m);
    assert.match(ev.stdout, /^cli-ad@1\s/m);

    // Enum names and CLI names both work; the header says the CLI name.
    const named = await gentune(['evaluate', '--addr', h.address, '--file', file, '--metrics', 'METRIC_LOSS,rouge_l', '--max-new-tokens', '2']);
    assert.equal(named.code, 0, named.stderr);
    assert.match(named.stdout, /^MODEL\s+LOSS\s+ROUGEL\s+SECONDS$/m);
    assert.match(named.stdout, /^base\s+\d[\d.]*\s+\d[\d.]*\s/m);
    const bad = await gentune(['evaluate', '--addr', h.address, '--file', file, '--metrics', 'loss,rogue']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /`--metrics`: unknown metric "rogue"; valid: loss, perplexity, .*rougeL/);

    // The evaluation was the one request cli-ad@1 served.
    const served = await gentune(['adapters', 'list', '--addr', h.address]);
    assert.match(served.stdout, /^ADAPTER\s+METHOD\s+RANK\s+RESIDENCY\s+SIZE\s+BASE\s+REQUESTS\s+LAST USED$/m);
    assert.match(served.stdout, /^cli-ad@1 \(latest\)\s+lora\s+4\s+pinned\s+\S+ \S+\s+\S+\s+1\s+\d{4}-/m);
  });

  test('finetune --detach prints the job id; jobs watch follows it', async () => {
    const ft = await gentune(['finetune', '--addr', h.address, '--adapter', 'cli-det', '--file', file, '--max-steps', '2', '--detach']);
    assert.equal(ft.code, 0, ft.stderr);
    const id = /gentune jobs watch (\S+)/.exec(ft.stdout)?.[1];
    assert.ok(id, ft.stdout);
    const watch = await gentune(['jobs', 'watch', id, '--addr', h.address, '--json']);
    assert.equal(jsonLines(watch.stdout).at(-1).succeeded.adapter, 'cli-det');
    const get = await gentune(['jobs', 'get', id, '--addr', h.address]);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, new RegExp(`^id:\\s+${id}$`, 'm'));
    assert.match(get.stdout, /^state:\s+succeeded$/m);
    assert.match(get.stdout, /^adapter:\s+cli-det@1$/m);
    assert.match(get.stdout, /^step:\s+2\/2$/m);
    const getJson = await gentune(['jobs', 'get', id, '--addr', h.address, '--json']);
    assert.equal(jsonLines(getJson.stdout)[0].state, 'JOB_STATE_SUCCEEDED');
  });

  test('Ctrl-C during finetune names the running job and exits 130; jobs watch into a closed pipe exits 0 quietly', async () => {
    // Its own process group, so that SIGINT reaches the CLI as a terminal sends it (bin/gentune.js ignores it itself).
    const ft = spawn(process.execPath, [BIN, 'finetune', '--addr', h.address, '--adapter', 'cli-int', '--file', file, '--max-steps', '1000'], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let ftErr = '';
    ft.stderr!.on('data', (c: Buffer) => (ftErr += c.toString()));
    const ftExit = exitCode(ft);
    await lineMatching(ft.stdout!, /^step \d+\/1000 /);
    process.kill(-ft.pid!, 'SIGINT');
    assert.equal(await ftExit, 130, ftErr);
    const id = /job (\S+) is still running/.exec(ftErr)?.[1];
    assert.ok(id, ftErr);
    assert.match(ftErr, new RegExp(`gentune jobs watch ${id}\n[^]*gentune jobs cancel ${id}\n`));
    const job = await h.client.getFineTuneJob(id);
    assert.ok(job.state === JobState.JOB_STATE_RUNNING || job.state === JobState.JOB_STATE_QUEUED, JobState[job.state]);

    // `gentune jobs watch ID | head -1`: the reader goes away while the job still streams.
    const watch = spawn(process.execPath, [BIN, 'jobs', 'watch', id, '--addr', h.address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let watchErr = '';
    watch.stderr!.on('data', (c: Buffer) => (watchErr += c.toString()));
    const watchExit = exitCode(watch);
    await lineMatching(watch.stdout!, /./);
    watch.stdout!.destroy();
    assert.equal(await watchExit, 0, watchErr);
    assert.equal(watchErr, '');

    const cancel = await gentune(['jobs', 'cancel', id, '--addr', h.address]);
    assert.equal(cancel.code, 0, cancel.stderr);
  });

  test('datasets upload of a missing file says so (as finetune --file does) and exits 1', async () => {
    const missing = join(dir, 'missing.jsonl');
    const up = await gentune(['datasets', 'upload', missing, '--addr', h.address]);
    const ft = await gentune(['finetune', '--addr', h.address, '--adapter', 'x', '--file', missing]);
    assert.equal(up.code, 1);
    assert.match(up.stderr, /^gentune: ERROR: ENOENT: no such file or directory, open '.*missing\.jsonl'$/m);
    assert.equal(up.stderr, ft.stderr);
  });

  test('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await gentune(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
  });

  test('server errors print CODE: details and exit 1; bad flags name the flag', async () => {
    const nf = await gentune(['jobs', 'cancel', 'ft-none', '--addr', h.address]);
    assert.equal(nf.code, 1);
    assert.match(nf.stderr, /^gentune: NOT_FOUND: .*ft-none/m);
    const inv = await gentune(['generate', '--addr', h.address, '--adapter', '../x', 'hi']);
    assert.equal(inv.code, 1);
    assert.match(inv.stderr, /INVALID_ARGUMENT: `adapter` must not contain/);
    const flag = await gentune(['generate', '--addr', h.address, '--temperature', 'hot', 'hi']);
    assert.notEqual(flag.code, 0);
    assert.match(flag.stderr, /`--temperature` must be a number, got "hot"/);
    const down = await gentune(['info', '--addr', '127.0.0.1:1', '--timeout', '300']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /gentune: (UNAVAILABLE|DEADLINE_EXCEEDED)/);
  });
});

function jobsOk(jobs: { state: string; request: { adapter: string } }[]): boolean {
  return jobs.length >= 1 && jobs.every((j) => j.state === 'JOB_STATE_SUCCEEDED');
}
