import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the numpy GPT-2 reference script. */
export const REFERENCE_SCRIPT = fileURLToPath(new URL('./gpt2_reference.py', import.meta.url));
/** Absolute path of the numpy Llama-family reference script. */
export const LLAMA_REFERENCE_SCRIPT = fileURLToPath(new URL('./llama_reference.py', import.meta.url));
/** The interpreter the reference runs under (it needs numpy). */
export const PYTHON = '/usr/bin/python3';

/** Runs a reference script with `args` and `input` (JSON) on stdin; resolves with its JSON output. */
function runReference<T>(script: string, args: string[], input: unknown): Promise<T> {
  const name = basename(script);
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${name} exited with ${code}: ${Buffer.concat(err).toString('utf8').trim()}`));
        return;
      }
      try {
        const text = Buffer.concat(out).toString('utf8');
        resolve((text.trim() === '' ? undefined : JSON.parse(text)) as T);
      } catch (e) {
        reject(new Error(`${name} printed invalid JSON: ${(e as Error).message}`));
      }
    });
    child.stdin.end(JSON.stringify(input));
  });
}

/**
 * Logits [T][vocab] of the numpy GPT-2 reference (float64) for `ids` on the
 * Hugging Face model folder `modelDir`. Rejects with the script's stderr if
 * it fails.
 */
export function referenceLogits(modelDir: string, ids: number[]): Promise<number[][]> {
  return runReference(REFERENCE_SCRIPT, [modelDir], ids);
}

/**
 * Logits [T][vocab] per sequence of the numpy Llama-family reference
 * (float64) on the model folder `modelDir`, each sequence run alone from
 * position 0, with the PEFT adapter folder `adapterDir` applied when given
 * (LoRA, or LAST_LAYERS). Rejects with the script's stderr if it fails.
 */
export function llamaReferenceLogits(modelDir: string, sequences: number[][], adapterDir?: string): Promise<number[][][]> {
  return runReference(LLAMA_REFERENCE_SCRIPT, adapterDir ? [modelDir, '--adapter', adapterDir] : [modelDir], sequences);
}

/** What llama_reference.py `make-adapter` takes (PEFT LoraConfig names). */
export interface LlamaPeftSpec {
  r: number;
  lora_alpha: number;
  target_modules: string[];
  seed: number;
  use_rslora?: boolean;
  layers_to_transform?: number[];
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Key prefix before `layers.{i}.` (default `base_model.model.model.`). */
  prefix?: string;
  base_model_name_or_path?: string;
}

/** Writes a PEFT LoRA adapter folder for the Llama-family model in `modelDir`, random non-zero A and B, as numpy makes it. */
export async function makeLlamaPeftAdapter(modelDir: string, outDir: string, spec: LlamaPeftSpec): Promise<void> {
  await runReference<void>(LLAMA_REFERENCE_SCRIPT, ['make-adapter', modelDir, outDir, JSON.stringify(spec)], null);
}

/** One row of a loss: ids run from position 0, the target of each and its weight (0: not counted). */
export interface LossRow {
  ids: number[];
  targets: number[];
  weights: number[];
}

/**
 * The reference's weighted cross-entropy over `rows` with the LoRA adapter in
 * `adapterDir`, and its gradient for the lora_A / lora_B tensors of `layers`
 * (PEFT layout: [r, in] and [out, r]) by central finite differences in float64,
 * keyed by PEFT tensor name.
 */
export function llamaLoraGradients(
  modelDir: string,
  adapterDir: string,
  request: { rows: LossRow[]; layers: number[]; eps?: number },
): Promise<{ loss: number; grads: Record<string, number[][]> }> {
  return runReference(LLAMA_REFERENCE_SCRIPT, ['lora-grad', modelDir, adapterDir], request);
}
