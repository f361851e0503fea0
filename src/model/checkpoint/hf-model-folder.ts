import type { GptConfig } from '../gpt-config.js';
import { readGpt2Tensors } from './hf-gpt2-folder.js';
import { readLlamaTensors } from './hf-llama-folder.js';
import { readModelConfig } from './model-files.js';
import type { HostTensor } from './safetensors.js';

/** A checkpoint in host memory, tensors under the names hfTensorShapes gives for its family. */
export interface ModelCheckpoint {
  config: GptConfig;
  tensors: Map<string, HostTensor>;
}

/**
 * Reads a Hugging Face model folder of either family, as its config.json's
 * `model_type` says: GPT-2 (hf-gpt2-folder.ts) or Llama (hf-llama-folder.ts),
 * weights in `model.safetensors` or sharded; F16/BF16 widened to float32.
 * @throws NotFound if a file is missing; InvalidArgument naming the file and
 *   the key or tensor.
 */
export async function readModelFolder(dir: string): Promise<ModelCheckpoint> {
  const config = await readModelConfig(dir);
  const tensors = config.family === 'llama' ? await readLlamaTensors(dir, config) : await readGpt2Tensors(dir, config);
  return { config, tensors };
}
