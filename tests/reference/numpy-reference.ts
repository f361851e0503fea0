import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Absolute path of the numpy GPT-2 reference script. */
export const REFERENCE_SCRIPT = fileURLToPath(new URL('./gpt2_reference.py', import.meta.url));
/** The interpreter the reference runs under (it needs numpy). */
export const PYTHON = '/usr/bin/python3';

/**
 * Logits [T][vocab] of the numpy GPT-2 reference (float64) for `ids` on the
 * Hugging Face model folder `modelDir`. Rejects with the script's stderr if
 * it fails.
 */
export function referenceLogits(modelDir: string, ids: number[]): Promise<number[][]> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [REFERENCE_SCRIPT, modelDir], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`gpt2_reference.py exited with ${code}: ${Buffer.concat(err).toString('utf8').trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(out).toString('utf8')) as number[][]);
      } catch (e) {
        reject(new Error(`gpt2_reference.py printed invalid JSON: ${(e as Error).message}`));
      }
    });
    child.stdin.end(JSON.stringify(ids));
  });
}
