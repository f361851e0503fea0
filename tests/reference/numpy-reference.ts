import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the numpy GPT-2 reference script. */
export const REFERENCE_SCRIPT = fileURLToPath(new URL('./gpt2_reference.py', import.meta.url));
/** Absolute path of the numpy Llama-family reference script. */
export const LLAMA_REFERENCE_SCRIPT = fileURLToPath(new URL('./llama_reference.py', import.meta.url));
/** The interpreter the reference runs under (it needs numpy). */
export const PYTHON = '/usr/bin/python3';

/** Runs a reference script on `modelDir` with `input` (JSON) on stdin; resolves with its JSON output. */
function runReference<T>(script: string, modelDir: string, input: unknown): Promise<T> {
  const name = basename(script);
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [script, modelDir], { stdio: ['pipe', 'pipe', 'pipe'] });
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
        resolve(JSON.parse(Buffer.concat(out).toString('utf8')) as T);
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
  return runReference(REFERENCE_SCRIPT, modelDir, ids);
}

/**
 * Logits [T][vocab] per sequence of the numpy Llama-family reference
 * (float64) on the model folder `modelDir`, each sequence run alone from
 * position 0. Rejects with the script's stderr if it fails.
 */
export function llamaReferenceLogits(modelDir: string, sequences: number[][]): Promise<number[][][]> {
  return runReference(LLAMA_REFERENCE_SCRIPT, modelDir, sequences);
}
