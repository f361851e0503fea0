import * as tf from '@tensorflow/tfjs';
import { InvalidArgument } from '../common/errors.js';
import { readTensors } from './host-readback.js';

/** A parameter the optimizer updates. */
export interface OptimizedParameter {
  /** Stable name (checkpoint key), e.g. `h.3.attn.c_attn.lora_A`. */
  name: string;
  variable: tf.Variable;
  /** Apply weight decay (false for biases and LayerNorm weights, as Hugging Face's Trainer does). */
  decay: boolean;
}

/** AdamW hyperparameters; defaults are torch.optim.AdamW's. */
export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay, per unit of learning rate (default 0). */
  weightDecay?: number;
}

/** The optimizer's state on the host: exact float32 copies, restorable bit for bit. */
export interface AdamWState {
  /** Optimizer steps taken. */
  step: number;
  /** First moments, one per parameter, in parameter order. */
  m: Float32Array[];
  /** Second moments, one per parameter, in parameter order. */
  v: Float32Array[];
}

/**
 * AdamW (Loshchilov & Hutter) with the update of `torch.optim.AdamW`:
 *
 *     p -= lr * wd * p                        (decoupled decay, `decay` params only)
 *     m = b1 * m + (1 - b1) * g
 *     v = b2 * v + (1 - b2) * g^2
 *     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * The moments live on the backend as variables created up front, so the tensor
 * count does not change from step to step.
 */
export class AdamW {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly weightDecay: number;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;

  constructor(
    private readonly params: readonly OptimizedParameter[],
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw new InvalidArgument(`\`adam_beta1\` must be in [0, 1), got ${this.beta1}`);
    if (!(this.beta2 >= 0 && this.beta2 < 1)) throw new InvalidArgument(`\`adam_beta2\` must be in [0, 1), got ${this.beta2}`);
    if (!(this.epsilon > 0)) throw new InvalidArgument(`\`adam_epsilon\` must be > 0, got ${this.epsilon}`);
    if (!(this.weightDecay >= 0) || !Number.isFinite(this.weightDecay)) {
      throw new InvalidArgument(`\`weight_decay\` must be >= 0, got ${this.weightDecay}`);
    }
    // tidy frees the zerosLike handles; the variables keep the data.
    this.m = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p.variable), false)));
    this.v = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p.variable), false)));
  }

  /** Optimizer steps taken. */
  get stepCount(): number {
    return this.t;
  }

  /** The moment variables (read them, do not dispose them), in parameter order. */
  get moments(): { m: readonly tf.Tensor[]; v: readonly tf.Tensor[] } {
    return { m: this.m, v: this.v };
  }

  /** One update with gradients in parameter order at learning rate `lr`. Frees nothing it was given. */
  step(grads: readonly tf.Tensor[], lr: number): void {
    if (grads.length !== this.params.length) {
      throw new Error(`AdamW.step: ${grads.length} gradients for ${this.params.length} parameters`);
    }
    this.t += 1;
    const { beta1: b1, beta2: b2, epsilon: eps } = this;
    const stepSize = lr / (1 - b1 ** this.t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** this.t);
    const decayFactor = 1 - lr * this.weightDecay;
    tf.tidy(() => {
      this.params.forEach((param, i) => {
        const g = grads[i];
        const p = param.decay && this.weightDecay > 0 ? tf.mul(param.variable, decayFactor) : param.variable;
        const m = tf.add(tf.mul(this.m[i], b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v[i], b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps);
        const updated = tf.sub(p, tf.mul(tf.div(m, denom), stepSize));
        this.m[i].assign(m);
        this.v[i].assign(v);
        param.variable.assign(updated);
      });
    });
  }

  /** The state on the host (one readback). */
  async exportState(): Promise<AdamWState> {
    const data = await readTensors([...this.m, ...this.v]);
    return { step: this.t, m: data.slice(0, this.m.length), v: data.slice(this.m.length) };
  }

  /** Restores a state from {@link exportState} of an optimizer over parameters of the same shapes. */
  loadState(state: AdamWState): void {
    const n = this.params.length;
    if (state.m.length !== n || state.v.length !== n) {
      throw new InvalidArgument(`optimizer state holds ${state.m.length} moments, expected ${n}`);
    }
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new InvalidArgument(`optimizer state step must be a non-negative integer, got ${state.step}`);
    }
    this.params.forEach((p, i) => {
      for (const [kind, host] of [['m', state.m[i]], ['v', state.v[i]]] as const) {
        if (host.length !== p.variable.size) {
          throw new InvalidArgument(
            `optimizer state \`${kind}\` of \`${p.name}\` has ${host.length} values, expected ${p.variable.size}`,
          );
        }
      }
    });
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        this.m[i].assign(tf.tensor(state.m[i], p.variable.shape, 'float32'));
        this.v[i].assign(tf.tensor(state.v[i], p.variable.shape, 'float32'));
      });
    });
    this.t = state.step;
  }

  /** Frees the moments (not the parameters). */
  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
