// Bearer-token access control (src/server/auth.ts, auth-roles.ts,
// token-file.ts) on the real server and engine, through the real client and
// raw grpc-js calls of every ModelService method.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { GentuneClient } from '../../src/client/gentune-client.js';
import { ModelServiceService } from '../../src/gen/gentune/v1/service.js';
import { METHOD_ROLES } from '../../src/server/auth-roles.js';
import { PROTO_DIR, SERVICE_PROTO } from '../../src/server/reflection.js';
import { rejectsWith } from './helpers/harness.js';
import { startEngineFixture, type EngineFixture, type LoggedServer } from './helpers/secure-server.js';

const Code = grpc.status;
const token = () => randomBytes(24).toString('base64url');
const ADMIN = token();
const USER = token();
const ENV_USER = token();
const METHODS = Object.values(ModelServiceService);
const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/**
 * Calls `path` with an empty request (all fields default) and `authorization`
 * metadata, and resolves to the final status. Streams are cancelled at their
 * first message: only whether the call got past auth matters here.
 */
function statusOf(address: string, def: (typeof METHODS)[number], authorization?: string): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (authorization !== undefined) md.set('authorization', authorization);
  const empty = () => Buffer.alloc(0);
  const raw = (b: Buffer) => b;
  const options = { deadline: Date.now() + 60_000 };
  return new Promise((resolve) => {
    const done = (s: { code: number; details: string }) => {
      client.close();
      resolve({ code: s.code, details: s.details });
    };
    if (def.requestStream) {
      const call = client.makeClientStreamRequest(def.path, empty, raw, md, options, () => {});
      call.on('status', done);
      call.end();
    } else if (def.responseStream) {
      const call = client.makeServerStreamRequest(def.path, empty, raw, Buffer.alloc(0), md, options);
      call.on('data', () => call.cancel());
      call.on('error', () => {});
      call.on('status', done);
    } else {
      const call = client.makeUnaryRequest(def.path, empty, raw, Buffer.alloc(0), md, options, () => {});
      call.on('status', done);
    }
  });
}

/** Lists services through grpc.reflection.v1, with no credentials. */
async function reflectServices(address: string): Promise<string[]> {
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto');
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [root], keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
  try {
    const call = client.ServerReflectionInfo();
    const response = await new Promise<any>((resolve, reject) => {
      call.on('data', resolve);
      call.on('error', reject);
      call.write({ list_services: '*' });
    });
    call.end();
    return response.list_services_response.service.map((s: { name: string }) => s.name);
  } finally {
    client.close();
  }
}

test('METHOD_ROLES classifies every ModelService RPC of the .proto and of the generated code, and nothing else', () => {
  const def = protoLoader.loadSync(SERVICE_PROTO, { includeDirs: [PROTO_DIR], keepCase: true });
  const service = def['gentune.v1.ModelService'] as protoLoader.ServiceDefinition;
  assert.ok(service, 'gentune.v1.ModelService is in the .proto');
  const fromProto = Object.keys(service).sort();
  const fromGen = METHODS.map((m) => nameOf(m.path)).sort();
  const table = Object.keys(METHOD_ROLES).sort();
  assert.deepEqual(table, fromProto);
  assert.deepEqual(table, fromGen);
  for (const role of Object.values(METHOD_ROLES)) assert.ok(role === 'user' || role === 'admin');
});

describe('bearer-token auth', () => {
  let fx: EngineFixture;
  let s: LoggedServer;
  let dir: string;
  before(async () => {
    fx = await startEngineFixture();
    dir = mkdtempSync(join(tmpdir(), 'gentune-auth-'));
    const file = join(dir, 'tokens.yaml');
    writeFileSync(file, `tokens:\n  - name: ops\n    role: admin\n    token: ${ADMIN}\n  - name: frontend\n    role: user\n    token: "${USER}"\n`);
    s = await fx.serve({ tokenFile: file, userTokens: [ENV_USER] });
  });
  after(async () => {
    await fx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('no token, a wrong token or a malformed header: UNAUTHENTICATED on every method', async () => {
    for (const def of METHODS) {
      for (const authorization of [undefined, `Bearer ${token()}`, `Bearer ${ADMIN}x`, ADMIN, `Basic ${ADMIN}`, 'Bearer ']) {
        const st = await statusOf(s.address, def, authorization);
        assert.equal(st.code, Code.UNAUTHENTICATED, `${def.path} with ${authorization === undefined ? 'no header' : 'a bad header'}: ${st.details}`);
      }
    }
  });

  test('a user token may call user methods, and gets PERMISSION_DENIED on admin ones', async () => {
    const denied: string[] = [];
    for (const def of METHODS) {
      for (const t of [USER, ENV_USER]) {
        const st = await statusOf(s.address, def, `Bearer ${t}`);
        const method = nameOf(def.path);
        if (METHOD_ROLES[method as keyof typeof METHOD_ROLES] === 'admin') {
          assert.equal(st.code, Code.PERMISSION_DENIED, `${method}: ${st.details}`);
          assert.match(st.details, new RegExp(`\`${method}\` needs the admin role`));
          denied.push(method);
        } else {
          assert.ok(st.code !== Code.UNAUTHENTICATED && st.code !== Code.PERMISSION_DENIED, `${method}: ${Code[st.code]} ${st.details}`);
        }
      }
    }
    for (const m of ['FineTune', 'UploadDataset', 'LoadAdapter', 'DeleteAdapter', 'CancelFineTune', 'UnloadAdapter', 'DeleteDataset']) {
      assert.ok(denied.includes(m), `${m} is admin-only`);
    }
  });

  test('an admin token passes auth on every method ("Bearer" in any case)', async () => {
    for (const def of METHODS) {
      const st = await statusOf(s.address, def, `bearer ${ADMIN}`);
      assert.ok(st.code !== Code.UNAUTHENTICATED && st.code !== Code.PERMISSION_DENIED, `${def.path}: ${Code[st.code]} ${st.details}`);
    }
  });

  test('the client library sends its token: user generates, admin uploads and deletes', async () => {
    const user = new GentuneClient(s.address, { token: USER, defaultTimeoutMs: 60_000 });
    const admin = new GentuneClient(s.address, { token: ADMIN, defaultTimeoutMs: 60_000 });
    const anonymous = new GentuneClient(s.address, { defaultTimeoutMs: 60_000, retry: { maxAttempts: 1 } });
    try {
      const out = await user.generateText({ prompt: 'Hello', sampling: { maxNewTokens: 4, temperature: 0 } });
      assert.ok(out.tokenIds.length > 0 && out.tokenIds.length <= 4);
      assert.ok((await user.getServerInfo()).version);
      const data = new TextEncoder().encode('{"prompt":"Q","completion":" A"}\n');
      await rejectsWith(user.uploadDataset({ name: 'qa' }, data), Code.PERMISSION_DENIED, /`UploadDataset` needs the admin role; the token `frontend` has user/);
      const ds = await admin.uploadDataset({ name: 'qa' }, data);
      assert.deepEqual((await user.listDatasets()).map((d) => d.id), [ds.id]);
      await rejectsWith(user.deleteDataset(ds.id), Code.PERMISSION_DENIED);
      await admin.deleteDataset(ds.id);
      assert.deepEqual(await admin.listDatasets(), []);
      await rejectsWith(anonymous.listAdapters(), Code.UNAUTHENTICATED, /missing bearer token/);
    } finally {
      user.close();
      admin.close();
      anonymous.close();
    }
  });

  test('health and reflection stay open without a token', async () => {
    const anonymous = new GentuneClient(s.address, { defaultTimeoutMs: 30_000 });
    try {
      assert.equal(await anonymous.checkHealth(), 'SERVING');
      assert.equal(await anonymous.checkHealth('gentune.v1.ModelService'), 'SERVING');
    } finally {
      anonymous.close();
    }
    const services = await reflectServices(s.address);
    assert.ok(services.includes('gentune.v1.ModelService') && services.includes('grpc.health.v1.Health'), services.join(','));
  });

  test('the log names callers and refusals, never a token, and warns of nothing on loopback', async () => {
    const text = s.logText();
    for (const t of [ADMIN, USER, ENV_USER]) assert.ok(!text.includes(t), 'a token appears in the log');
    const logs = s.logs;
    const listening = logs.find((l) => l.msg === 'gRPC server listening');
    assert.deepEqual(listening?.tokens, { user: 2, admin: 1 });
    assert.equal(listening?.transport, 'plaintext');
    assert.ok(logs.some((l) => l.msg === 'call finished' && l.caller === 'frontend' && l.method === 'Generate'));
    const refusal = logs.find((l) => l.msg === 'call refused' && l.code === 'PERMISSION_DENIED');
    assert.match(String(refusal?.peer), /127\.0\.0\.1/);
    assert.ok(logs.some((l) => l.msg === 'call refused' && l.code === 'UNAUTHENTICATED'));
    const warnings = logs.filter((l) => l.level === 40 && l.msg !== 'call refused').map((l) => l.msg);
    assert.deepEqual(warnings, [], 'no start-up warnings on 127.0.0.1');
  });
});

describe('start-up checks', () => {
  let fx: EngineFixture;
  let dir: string;
  before(async () => {
    fx = await startEngineFixture();
    dir = mkdtempSync(join(tmpdir(), 'gentune-auth-'));
  });
  after(async () => {
    await fx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Captures what the server writes to stderr while `fn` runs. */
  async function stderrOf(fn: () => Promise<unknown>): Promise<string> {
    let text = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      text += chunk.toString();
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    try {
      await fn();
    } finally {
      process.stderr.write = write;
    }
    return text;
  }

  test('0.0.0.0 without tokens: a loud warning in the log and on stderr; the server still serves', async () => {
    let s!: LoggedServer;
    const stderr = await stderrOf(async () => (s = await fx.serve({}, '0.0.0.0')));
    const warn = s.logs.find((l) => l.level === 40);
    assert.match(String(warn?.msg), /listens on 0\.0\.0\.0, reachable from other machines, with NO access control/);
    assert.match(stderr, /\*\*\* WARNING: the gRPC server listens on 0\.0\.0\.0.*NO access control/);
    const client = new GentuneClient(s.address);
    try {
      assert.ok((await client.getServerInfo()).version);
    } finally {
      client.close();
    }
  });

  test('0.0.0.0 with tokens but plaintext: warns that tokens travel in plaintext; 127.0.0.1 without tokens: silent', async () => {
    const withTokens = await fx.serve({ adminTokens: [token()] }, '0.0.0.0');
    const warnings = withTokens.logs.filter((l) => l.level === 40).map((l) => String(l.msg));
    assert.equal(warnings.length, 1, warnings.join(' | '));
    assert.match(warnings[0]!, /bearer tokens travel in plaintext/);
    const local = await fx.serve({}, '127.0.0.1');
    assert.ok(!local.logs.some((l) => l.level === 40));
  });

  test('a bad token file fails the start, naming the file and entry but not the token', async () => {
    const secret = token();
    const cases: [string, RegExp][] = [
      [`tokens:\n  - name: a\n    role: root\n    token: ${secret}\n`, /`tokens\[0\]\.role` must be "user" or "admin"/],
      [`tokens:\n  - name: a\n    role: user\n    token: short\n`, /`tokens\[0\]\.token` must be 16\.\.4096 printable ASCII/],
      [`tokens:\n  - {name: a, role: user, token: ${secret}}\n  - {name: b, role: admin, token: ${secret}}\n`, /tokens `a` and `b` are the same token/],
      [`tokens: [ {name: a, token: ${secret}\n`, /not valid YAML\/JSON \(line \d+\)/],
      [`admin: ${secret}\n`, /expected a `tokens` list/],
    ];
    for (const [i, [text, message]] of cases.entries()) {
      const file = join(dir, `bad-${i}.yaml`);
      writeFileSync(file, text);
      await assert.rejects(fx.serve({ tokenFile: file }), (err: Error) => {
        assert.equal(err.name, 'GentuneError');
        assert.match(err.message, message);
        assert.ok(err.message.includes(file) || /same token/.test(err.message), err.message);
        assert.ok(!err.message.includes(secret), `the token leaks: ${err.message}`);
        return true;
      });
    }
    await assert.rejects(fx.serve({ tokenFile: join(dir, 'missing.yaml') }), /`--token-file` .*missing\.yaml: cannot read it \(ENOENT\)/);
  });
});
