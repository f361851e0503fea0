/**
 * Fused inference kernels for the host backends (wasm, cpu). On wasm a small
 * kernel costs microseconds of dispatch whatever its size, and some are slow
 * outright (GatherV2 ~150 us for 16 rows), so a decode step of a small model
 * spent more on dispatching tiny kernels than on arithmetic. These replace
 * GPT-2's layer norm (11 kernels), the Llama family's RMSNorm (6) and
 * rotary embedding (7), and the token + position embedding (2 gathers and an
 * add) with one kernel each,
 * working on the tensors in place (host-memory.ts). No gradients: layers.ts,
 * rotary.ts and gpt2-parts.ts use them only when none is being recorded.
 * `bench/step-profile.ts` shows the kernel counts.
 */
import * as tf from '@tensorflow/tfjs';
import { HOST_BACKENDS, HostMemory } from './host-memory.js';

const LAYER_NORM = 'GentuneLayerNorm';
const RMS_NORM = 'GentuneRmsNorm';
const ROTARY = 'GentuneRotary';
const EMBED = 'GentuneEmbed';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/** LayerNorm over the last axis of x [rows, d] with gain and bias [d]. */
function layerNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const mem = new HostMemory(backend);
  const x = inputs.x!;
  const [rows, d] = x.shape;
  const eps = (attrs as { eps: number }).eps;
  const info = mem.output([rows, d]);
  const [out, xs, g, b] = [mem.view(info), mem.view(x), mem.view(inputs.gamma!), mem.view(inputs.beta!)];
  for (let r = 0; r < rows; r++) {
    const at = r * d;
    let mean = 0;
    for (let i = 0; i < d; i++) mean += xs[at + i];
    mean /= d;
    let variance = 0;
    for (let i = 0; i < d; i++) {
      const c = xs[at + i] - mean;
      variance += c * c;
    }
    const inv = 1 / Math.sqrt(variance / d + eps);
    for (let i = 0; i < d; i++) out[at + i] = (xs[at + i] - mean) * inv * g[i] + b[i];
  }
  return info;
}

/**
 * RMSNorm over the last axis of x [..., d] with gain [d]: x / sqrt(mean(x^2)
 * + eps) * gain, in float32 as transformers computes it (whatever the
 * weights' dtype), each step rounded as the generic ops round it (square,
 * a sequential float32 sum, mean, + eps, 1 / sqrt, the two products), so the
 * two paths agree to an ulp or so.
 */
function rmsNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const mem = new HostMemory(backend);
  const x = inputs.x!;
  const d = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, b) => a * b, 1) / d;
  const f = Math.fround;
  const eps = f((attrs as { eps: number }).eps);
  const info = mem.output(x.shape);
  const [out, xs, g] = [mem.view(info), mem.view(x), mem.view(inputs.gamma!)];
  for (let r = 0; r < rows; r++) {
    const at = r * d;
    let squares = 0;
    for (let i = 0; i < d; i++) squares = f(squares + f(xs[at + i] * xs[at + i]));
    const inv = f(1 / f(Math.sqrt(f(f(squares / d) + eps))));
    for (let i = 0; i < d; i++) out[at + i] = f(xs[at + i] * inv) * g[i];
  }
  return info;
}

/**
 * Rotary embedding in the rotate-half convention of x [rows, heads, hd] with
 * cos and sin [rows, 1, hd] (rotary.ts's tables): out = x * cos +
 * rotateHalf(x) * sin, rotateHalf(x) = [-x2, x1] for the halves x1, x2.
 */
function rotaryKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const mem = new HostMemory(backend);
  const x = inputs.x!;
  const [rows, heads, hd] = x.shape;
  const half = hd / 2;
  const f = Math.fround;
  const info = mem.output(x.shape);
  const [out, xs, cos, sin] = [mem.view(info), mem.view(x), mem.view(inputs.cos!), mem.view(inputs.sin!)];
  for (let r = 0; r < rows; r++) {
    const t = r * hd;
    for (let h = 0; h < heads; h++) {
      const at = (r * heads + h) * hd;
      for (let j = 0; j < half; j++) {
        const x1 = xs[at + j];
        const x2 = xs[at + half + j];
        // Each product rounded to float32 as the generic ops' Mul, then their Add.
        out[at + j] = f(x1 * cos[t + j]) - f(x2 * sin[t + j]);
        out[at + half + j] = f(x2 * cos[t + half + j]) + f(x1 * sin[t + half + j]);
      }
    }
  }
  return info;
}

/** out[r] = wte[ids[r]] + wpe[positions[r]]: [rows, d]. */
function embedKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const mem = new HostMemory(backend);
  const { wte, wpe, ids, positions } = inputs as Record<string, tf.TensorInfo>;
  const rows = ids.shape[0];
  const [vocab, d] = wte.shape;
  const info = mem.output([rows, d]);
  const [out, tok, pos, idv, posv] = [mem.view(info), mem.view(wte), mem.view(wpe), mem.view(ids), mem.view(positions)];
  for (let r = 0; r < rows; r++) {
    const id = idv[r];
    const p = posv[r];
    if (!(id >= 0 && id < vocab)) throw new Error(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    if (!(p >= 0 && p < wpe.shape[0])) throw new Error(`position ${p} is outside the context (0..${wpe.shape[0] - 1})`);
    const t = id * d;
    const q = p * d;
    const o = r * d;
    for (let i = 0; i < d; i++) out[o + i] = tok[t + i] + pos[q + i];
  }
  return info;
}

for (const backendName of HOST_BACKENDS) {
  tf.registerKernel({ kernelName: LAYER_NORM, backendName, kernelFunc: layerNormKernel as unknown as tf.KernelFunc });
  tf.registerKernel({ kernelName: RMS_NORM, backendName, kernelFunc: rmsNormKernel as unknown as tf.KernelFunc });
  tf.registerKernel({ kernelName: ROTARY, backendName, kernelFunc: rotaryKernel as unknown as tf.KernelFunc });
  tf.registerKernel({ kernelName: EMBED, backendName, kernelFunc: embedKernel as unknown as tf.KernelFunc });
}

/** LayerNorm of `x` [rows, d] with gain and bias [d] in one kernel (host backends, inference only). */
export function hostLayerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.engine().runKernel(LAYER_NORM, { x, gamma, beta }, { eps }) as tf.Tensor2D;
}

/**
 * Largest input (elements) for which RMSNorm runs as {@link hostRmsNorm}: a
 * JS loop beats the 6 generic kernels' dispatch on a few rows, but not their
 * vectorised arithmetic on many (wasm, SmolLM2's width 576: 8-14 us against
 * 21-25 at 1-4 rows, even at 6-8, 51-80 against 24-26 at 16 rows, 540
 * against 105 at 128). The two agree exactly on wasm, so the choice does not
 * change the result there.
 */
export const HOST_RMS_NORM_MAX_ELEMENTS = 4096;

/** RMSNorm of `x` [..., d] with gain [d] in one kernel (host backends, inference only). */
export function hostRmsNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor1D, eps: number): T {
  return tf.engine().runKernel(RMS_NORM, { x, gamma }, { eps }) as T;
}

/** Rotary embedding of `x` [rows, heads, hd] with tables [rows, 1, hd] in one kernel (host backends, inference only). */
export function hostRotary(x: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor3D {
  return tf.engine().runKernel(ROTARY, { x, cos, sin }) as tf.Tensor3D;
}

/** Token plus position embeddings [rows, d] in one kernel (host backends, inference only). */
export function hostEmbed(wte: tf.Tensor2D, wpe: tf.Tensor2D, ids: tf.Tensor1D, positions: tf.Tensor1D): tf.Tensor2D {
  return tf.engine().runKernel(EMBED, { wte, wpe, ids, positions }) as tf.Tensor2D;
}
