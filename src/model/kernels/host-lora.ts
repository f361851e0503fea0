/**
 * The LoRA delta of a decode batch whose rows use several adapters, in one
 * kernel per projection on the host backends (wasm, cpu). tfjs needs either a
 * slice and a matMul pair per adapter (many dispatches) or one pair over every
 * adapter's columns with a row mask (lora-stack.ts: 8x the arithmetic at 8
 * adapters, about 40% of the base step's at r = 8); this kernel does each
 * run of rows with its own adapter's A and B only (lora.wat, WebAssembly
 * SIMD). Activations are copied into the kernel's own memory per call, the
 * adapter weights once per tensor; the result goes straight into the output
 * tensor. No gradient: inference only.
 */
import * as tf from '@tensorflow/tfjs';
import { HOST_BACKENDS, HostMemory } from './host-memory.js';
import { LORA_WASM } from './lora-wasm.js';
import { growMemory, instantiateKernel } from './wasm-kernel.js';

const KERNEL = 'GentuneLoraDelta';

interface LoraExports {
  memory: WebAssembly.Memory;
  lora(x: number, rows: number, inDim: number, a: number, r: number, b: number, out: number, scale: number, t: number, dst: number): void;
}

let kernel: LoraExports | undefined;
let view: Float32Array | undefined;

/** The module's memory as floats, grown to hold `floats` (the view is renewed only when the memory grows). */
function memoryFor(floats: number): Float32Array {
  kernel ??= instantiateKernel<LoraExports>(LORA_WASM);
  growMemory(kernel.memory, floats * 4, 'LoRA kernel');
  if (view?.buffer !== kernel.memory.buffer) view = new Float32Array(kernel.memory.buffer);
  return view;
}

/**
 * Adapter weights copied into the module's memory, by the tensor's data id
 * (an adapter's A and B do not change while they live): a decode step then
 * copies only its activations. The copies fill the memory from the bottom;
 * past WEIGHT_BUDGET_FLOATS (evicted adapters' copies pile up) they are all
 * dropped and copied again on use.
 */
const WEIGHT_BUDGET_FLOATS = 32 * 1024 * 1024;
let weightAt = new WeakMap<object, number>();
let weightsTop = 0;

/** Where `t`'s values are in the module's memory (floats), copying them there first if needed. */
function weightOffset(host: HostMemory, t: tf.TensorInfo): number {
  const known = weightAt.get(t.dataId);
  if (known !== undefined) return known;
  const size = t.shape.reduce((a, b) => a * b, 1);
  if (weightsTop + size > WEIGHT_BUDGET_FLOATS) {
    weightAt = new WeakMap();
    weightsTop = 0;
  }
  const at = weightsTop;
  memoryFor(at + size).set(host.view(t) as Float32Array, at);
  weightsTop += size;
  weightAt.set(t.dataId, at);
  return at;
}

/** One run of rows on one adapter: rows [start, start + count) of x, in x's rows. */
export interface HostLoraRun {
  start: number;
  count: number;
  scale: number;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function loraKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const host = new HostMemory(backend);
  const x = inputs.x!;
  const [n, inDim] = x.shape;
  const { runs, outDim } = attrs as unknown as { runs: HostLoraRun[]; outDim: number };
  const info = host.output([n, outDim]);
  const out = host.view(info) as Float32Array;
  out.fill(0);
  const xs = host.view(x) as Float32Array;
  runs.forEach((run, i) => {
    const [a, b] = [inputs[`a${i}`]!, inputs[`b${i}`]!];
    const r = a.shape[1];
    const aAt = weightOffset(host, a);
    const bAt = weightOffset(host, b);
    // Above the weights: x rows | t | dst, in floats.
    const xAt = weightsTop;
    const tAt = xAt + run.count * inDim;
    const dAt = tAt + r;
    const f32 = memoryFor(dAt + run.count * outDim);
    f32.set(xs.subarray(run.start * inDim, (run.start + run.count) * inDim), xAt);
    kernel!.lora(xAt * 4, run.count, inDim, aAt * 4, r, bAt * 4, outDim, run.scale, tAt * 4, dAt * 4);
    out.set(f32.subarray(dAt, dAt + run.count * outDim), run.start * outDim);
  });
  return info;
}

for (const backendName of HOST_BACKENDS) tf.registerKernel({ kernelName: KERNEL, backendName, kernelFunc: loraKernel as unknown as tf.KernelFunc });

/** Whether the kernel takes these shapes: rank and output width multiples of 4 floats. */
export function hostLoraSupports(rank: number, outDim: number): boolean {
  return rank % 4 === 0 && outDim % 4 === 0;
}

/**
 * delta [rows, outDim]: for each run, scale * (x[run] @ a) @ b with that
 * run's a [in, r] and b [r, outDim]; zeros outside every run (host backends,
 * inference only).
 */
export function hostLoraDelta(x: tf.Tensor2D, runs: { run: HostLoraRun; a: tf.Tensor2D; b: tf.Tensor2D }[], outDim: number): tf.Tensor2D {
  const inputs: Record<string, tf.Tensor> = { x };
  runs.forEach(({ a, b }, i) => {
    inputs[`a${i}`] = a;
    inputs[`b${i}`] = b;
  });
  return tf.engine().runKernel(KERNEL, inputs, { runs: runs.map((r) => r.run), outDim } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
