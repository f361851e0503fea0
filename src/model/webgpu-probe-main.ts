/**
 * Child-process entry of webgpu-probe.ts: loads Dawn, asks for an adapter,
 * writes one `PROBE_RESULT_PREFIX` + JSON line to stdout and exits (Dawn's
 * instance would otherwise keep the process alive).
 */
import { probeWebGpuAdapter } from './dawn-adapter.js';
import { PROBE_RESULT_PREFIX } from './webgpu-probe.js';

const result = await probeWebGpuAdapter();
process.stdout.write(`${PROBE_RESULT_PREFIX}${JSON.stringify(result)}\n`, () => process.exit(0));
