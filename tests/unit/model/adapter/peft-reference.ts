import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { ForwardInput } from '../../../../src/model/gpt.js';
import { PYTHON } from '../../../reference/numpy-reference.js';

/** Absolute path of the numpy PEFT adapter reference script. */
export const PEFT_SCRIPT = fileURLToPath(new URL('../../../reference/peft_adapter.py', import.meta.url));

/** What tests/reference/peft_adapter.py `make` takes. */
export interface PeftSpec {
  r: number;
  lora_alpha: number;
  target_modules: string[];
  seed: number;
  use_rslora?: boolean;
  layers_to_transform?: number[];
  dtype?: 'F32' | 'F16' | 'BF16';
  prefix?: string;
  base_model_name_or_path?: string;
}

function run(args: string[], stdin = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [PEFT_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`peft_adapter.py ${args[0]} exited with ${code}: ${Buffer.concat(err).toString('utf8').trim()}`));
    });
    child.stdin.end(stdin);
  });
}

/** Writes a PEFT LoRA adapter folder with random non-zero A and B for the model in `modelDir`. */
export async function makePeftAdapter(modelDir: string, outDir: string, spec: PeftSpec): Promise<void> {
  await run(['make', modelDir, outDir, JSON.stringify(spec)]);
}

/** Logits [T][vocab] of the numpy GPT-2 with the adapter in `adapterDir` applied (PEFT semantics). */
export async function peftLogits(modelDir: string, adapterDir: string, ids: number[]): Promise<number[][]> {
  return JSON.parse(await run(['logits', modelDir, adapterDir], JSON.stringify(ids))) as number[][];
}

/** adapter_config.json and the tensor names, dtypes and shapes, as Python parses them. */
export async function inspectAdapter(dir: string): Promise<{ config: Record<string, unknown>; tensors: Record<string, { dtype: string; shape: number[] }> }> {
  return JSON.parse(await run(['inspect', dir]));
}

/** One unpadded row. */
export function rowInput(ids: number[]): ForwardInput {
  return {
    batch: 1,
    length: ids.length,
    ids: Int32Array.from(ids),
    positions: Int32Array.from(ids, (_, i) => i),
    valid: new Uint8Array(ids.length).fill(1),
  };
}

/** Reads a tensor back and frees it. */
export async function take(t: tf.Tensor): Promise<Float32Array> {
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

/** Largest |a - b| (lengths must match). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
