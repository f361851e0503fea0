/**
 * Child-process entry of webgpu-probe.ts: loads Dawn with the options in its
 * one argument (a JSON list of strings: the server's `dawnOptions`), asks for an adapter,
 * writes one `PROBE_RESULT_PREFIX` + JSON line to stdout and exits (Dawn's
 * instance would otherwise keep the process alive).
 */
import { probeWebGpuAdapter } from './dawn-adapter.js';
import { PROBE_RESULT_PREFIX } from './webgpu-probe.js';

const dawnOptions: unknown = JSON.parse(process.argv[2] ?? '[]');
const result = await probeWebGpuAdapter(Array.isArray(dawnOptions) ? dawnOptions.map(String) : []);
process.stdout.write(`${PROBE_RESULT_PREFIX}${JSON.stringify(result)}\n`, () => process.exit(0));
