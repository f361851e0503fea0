/**
 * Real server processes (serve-fixture.ts: `gentune serve` with the real
 * engine) sharing one data directory, as replicas of a Deployment share a
 * ReadWriteMany volume; each with its own client. Replicas can be killed
 * with SIGKILL and replaced, and the holder of a job's lease found from the
 * lease file (its holder id carries the pid).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GentuneClient } from '../../../src/client/gentune-client.js';

const FIXTURE = fileURLToPath(new URL('./serve-fixture.ts', import.meta.url));

/** One replica: its process, address and client. */
export interface Replica {
  child: ChildProcess;
  pid: number;
  address: string;
  client: GentuneClient;
  /** Resolves with the exit signal (SIGKILL when killed). */
  exited: Promise<NodeJS.Signals | null>;
}

/** Settings (GENTUNE_* variables) every replica gets. */
export type ReplicaEnv = Record<string, string>;

/** Starts one replica on `dataDir`; resolves once it serves. */
export async function startReplica(model: string, dataDir: string, env: ReplicaEnv): Promise<Replica> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, model, dataDir, '1000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, GENTUNE_LOG_LEVEL: 'info', ...env },
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  const lines = createInterface({ input: child.stdout! });
  const address = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      let entry: { msg?: string; address?: string };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg === 'gRPC server listening') resolve(entry.address!);
    });
    void exited.then((signal) => reject(new Error(`replica exited before it listened (${signal})`)));
  });
  const client = new GentuneClient(address, { defaultTimeoutMs: 120_000 });
  await client.waitUntilServing(60_000, 20);
  return { child, pid: child.pid!, address, client, exited };
}

/** The pid in the holder id of job `jobId`'s current lease (undefined when none). */
export function leaseHolderPid(dataDir: string, jobId: string): { pid: number; expiresAtMs: number } | undefined {
  const dir = join(dataDir, 'jobs', jobId);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const gens = names.map((n) => /^lease-(\d+)\.json$/.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
  if (gens.length === 0) return undefined;
  try {
    const record = JSON.parse(readFileSync(join(dir, `lease-${Math.max(...gens)}.json`), 'utf8')) as { holder: string; expiresAtMs: number };
    const m = /-(\d+)-[0-9a-f]{8}$/.exec(record.holder);
    return m ? { pid: Number(m[1]), expiresAtMs: record.expiresAtMs } : undefined;
  } catch {
    return undefined;
  }
}

/** Kills a replica with SIGKILL and waits for it to be gone. */
export async function killReplica(r: Replica): Promise<void> {
  r.client.close();
  r.child.kill('SIGKILL');
  await r.exited;
}

/** Stops replicas (SIGKILL: nothing of theirs is checked after). */
export async function stopReplicas(replicas: Iterable<Replica>): Promise<void> {
  await Promise.all([...replicas].map((r) => killReplica(r)));
}
