/**
 * A port in use fails `gentune serve` before the base model loads, naming the
 * flag (issue 20): bin/gentune.js as a user runs it, with the port held by
 * another server in this process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeFixtureModel, removeFixtureModel } from './helpers/fixture-model.js';

const BIN = fileURLToPath(new URL('../../bin/gentune.js', import.meta.url));
let model: string;
before(async () => {
  model = await makeFixtureModel();
});
after(() => removeFixtureModel(model));

function serve(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--model', model, '--metrics-port', '0', '--log-level', 'info', ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

for (const flag of ['--port', '--http-port']) {
  test(`${flag} in use: the start fails before the model loads, naming the flag`, async () => {
    const holder = createServer();
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const busy = (holder.address() as AddressInfo).port;
    try {
      const other = flag === '--port' ? ['--http-port', '0'] : ['--port', '0'];
      const r = await serve([flag, String(busy), ...other]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`\`${flag}\` ${busy} on 127\\.0\\.0\\.1 is in use by another process`));
      assert.doesNotMatch(r.stdout, /base model loaded/, 'it did not load the model first');
    } finally {
      holder.close();
    }
  });
}
