/**
 * The WebGPU check of `--backend auto`, run in a child process. dawn.node
 * writes its diagnostics straight to file descriptor 2 ("Couldn't load
 * Vulkan: libvulkan.so.1: cannot open shared object file", "vkCreateInstance:
 * Found no drivers!", lavapipe's "artificially reduced" limit warnings), which
 * no JavaScript in the same process can catch. In a child they are captured
 * and handed back as data for one structured log line, the server's stderr
 * stays JSON-only, and a host without a GPU never loads Dawn itself.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { softwareOnlyReason, type WebGpuAdapterInfo } from './dawn-adapter.js';

/** What the probe found. */
export interface WebGpuProbe {
  /** A hardware adapter: `auto` may set up the webgpu backend in-process. */
  available: boolean;
  /** The adapter Dawn picked, software or not, when it picked one. */
  adapter?: WebGpuAdapterInfo;
  /** Why the backend is not available, when it is not. */
  reason?: string;
  /** What Dawn printed while probing, one entry per line (at most `MAX_OUTPUT_LINES`). */
  dawnOutput: string[];
  /** Wall-clock time of the probe, milliseconds. */
  durationMs: number;
}

export interface WebGpuProbeOptions {
  /** Dawn `create()` options (config `dawnOptions`), handed to the child as its argument. Default none. */
  dawnOptions?: string[];
  /** The child is killed after this long, milliseconds. Default 20000 (a cold driver can take seconds). */
  timeoutMs?: number;
}

/** Prefix of the child's one result line on stdout (Dawn may write there too). */
export const PROBE_RESULT_PREFIX = 'gentune-webgpu-probe ';

const MAX_OUTPUT_LINES = 20;
const MAIN = fileURLToPath(new URL('./webgpu-probe-main.ts', import.meta.url));

/**
 * Asks Dawn, in a child process, for the adapter the webgpu backend would
 * run on. Never throws: a missing package, no Vulkan loader or driver, only a
 * software adapter, a crash or a timeout all come back as `available: false`
 * with the reason.
 */
export async function probeWebGpuInChild(options: WebGpuProbeOptions = {}): Promise<WebGpuProbe> {
  const started = performance.now();
  const done = (p: Omit<WebGpuProbe, 'durationMs'>): WebGpuProbe => ({ ...p, durationMs: Math.round(performance.now() - started) });
  let tsx: string;
  try {
    import.meta.resolve('webgpu');
    tsx = import.meta.resolve('tsx');
  } catch {
    return done({ available: false, reason: 'the webgpu package (Dawn) could not be loaded: it is not installed (an optional dependency)', dawnOutput: [] });
  }
  const timeoutMs = options.timeoutMs ?? 20_000;
  const child = spawn(process.execPath, ['--import', tsx, MAIN, JSON.stringify(options.dawnOptions ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean; error?: Error }>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, signal: 'SIGKILL', timedOut: true });
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, timedOut: false, error });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut: false });
    });
  });
  const lines = `${stdout}\n${stderr}`.split('\n').map((l) => l.trimEnd());
  const resultLine = lines.find((l) => l.startsWith(PROBE_RESULT_PREFIX));
  const dawnOutput = lines.filter((l) => l.trim() && !l.startsWith(PROBE_RESULT_PREFIX)).slice(0, MAX_OUTPUT_LINES);
  if (outcome.timedOut) return done({ available: false, reason: `the probe took longer than ${timeoutMs} ms and was killed`, dawnOutput });
  if (outcome.error) return done({ available: false, reason: `the probe could not start: ${outcome.error.message}`, dawnOutput });
  if (!resultLine) {
    const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with ${outcome.code}`;
    return done({ available: false, reason: `the probe ${how} without a result`, dawnOutput });
  }
  const found = JSON.parse(resultLine.slice(PROBE_RESULT_PREFIX.length)) as { adapter?: WebGpuAdapterInfo; reason?: string };
  if (!found.adapter) return done({ available: false, reason: found.reason ?? 'no adapter', dawnOutput });
  if (found.adapter.software) return done({ available: false, adapter: found.adapter, reason: softwareOnlyReason(found.adapter), dawnOutput });
  return done({ available: true, adapter: found.adapter, dawnOutput });
}
