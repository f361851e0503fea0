import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InvalidArgument, NotFound } from '../../common/errors.js';
import { configFromHf, type GptConfig } from '../gpt-config.js';
import { readSafetensors } from './safetensors.js';
import type { HostTensor } from './safetensors.js';

/**
 * The files of a Hugging Face model folder, whatever the family:
 * `config.json`, and the weights in `model.safetensors` or sharded as
 * `save_pretrained` writes big models (`model.safetensors.index.json`, whose
 * `weight_map` names the shard file of every tensor).
 */

/** The tensor file inside a model folder. */
export const MODEL_FILE = 'model.safetensors';
/** The shard index of a sharded checkpoint. */
export const INDEX_FILE = 'model.safetensors.index.json';
/** The config file inside a model folder. */
export const CONFIG_FILE = 'config.json';

/** Reads and parses a JSON file. @throws NotFound if absent; InvalidArgument if not JSON. */
async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`${path}: no such file`, { cause: err });
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`${path}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

/**
 * Reads and checks a model folder's `config.json` (GPT-2 or Llama family).
 * @throws NotFound if it is missing; InvalidArgument naming the key otherwise.
 */
export async function readModelConfig(dir: string): Promise<GptConfig> {
  const path = join(dir, CONFIG_FILE);
  return configFromHf(await readJson(path), path);
}

/**
 * Every tensor of a folder's checkpoint that `include` accepts, by file name:
 * `model.safetensors` if present, else the shards its index lists. F16 and
 * BF16 are widened to float32. `source` is the file to name in errors about
 * the tensors as a whole (the single file, or the index).
 * @throws NotFound if neither file (or a listed shard) exists; InvalidArgument
 *   for a malformed index or file, or a tensor missing from its shard.
 */
export async function readCheckpointTensors(
  dir: string,
  include: (name: string) => boolean = () => true,
): Promise<{ tensors: Map<string, HostTensor>; source: string }> {
  const single = join(dir, MODEL_FILE);
  try {
    return { tensors: (await readSafetensors(single, { include })).tensors, source: single };
  } catch (err) {
    if (!(err instanceof NotFound)) throw err;
  }
  const indexPath = join(dir, INDEX_FILE);
  let index: unknown;
  try {
    index = await readJson(indexPath);
  } catch (err) {
    if (err instanceof NotFound) throw new NotFound(`${single}: no such file (nor ${INDEX_FILE})`, { cause: err });
    throw err;
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new InvalidArgument(`${indexPath}: \`weight_map\` must be an object of tensor name -> shard file`);
  }
  const shards = new Map<string, string[]>();
  for (const [name, file] of Object.entries(weightMap)) {
    // A shard is a file beside the index, never a path out of the folder.
    if (typeof file !== 'string' || basename(file) !== file || file === '' || file === '.' || file === '..') {
      throw new InvalidArgument(`${indexPath}: \`weight_map.${name}\` must be a file name in the folder, got ${JSON.stringify(file)}`);
    }
    if (!include(name)) continue;
    shards.set(file, [...(shards.get(file) ?? []), name]);
  }
  const tensors = new Map<string, HostTensor>();
  for (const [file, names] of [...shards].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const path = join(dir, file);
    const wanted = new Set(names);
    let read: Map<string, HostTensor>;
    try {
      read = (await readSafetensors(path, { include: (name) => wanted.has(name) })).tensors;
    } catch (err) {
      if (err instanceof NotFound) throw new NotFound(`${path}: no such file (a shard ${INDEX_FILE} lists)`, { cause: err });
      throw err;
    }
    for (const name of names) {
      const t = read.get(name);
      if (!t) throw new InvalidArgument(`${path}: no tensor \`${name}\`, which ${INDEX_FILE} places in this shard`);
      tensors.set(name, t);
    }
  }
  return { tensors, source: indexPath };
}

/**
 * Checks that `named` holds exactly the tensors of `expected` (name -> shape)
 * with their data lengths, and returns them in `expected` order. `note`
 * explains an unexpected tensor (what config.json describes).
 * @throws InvalidArgument naming `source` and the tensor.
 */
export function matchTensorShapes(
  expected: Map<string, number[]>,
  named: Map<string, HostTensor>,
  source: string,
  note: string,
): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of expected) {
    const t = named.get(name);
    if (!t) throw new InvalidArgument(`${source}: missing tensor \`${name}\``);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new InvalidArgument(`${source}: tensor \`${name}\` has shape [${t.shape}], expected [${shape}]`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== count) {
      throw new InvalidArgument(`${source}: tensor \`${name}\` has ${t.data?.length} values, expected ${count}`);
    }
    out.set(name, t);
  }
  for (const name of named.keys()) {
    if (!expected.has(name)) throw new InvalidArgument(`${source}: unexpected tensor \`${name}\` (${note})`);
  }
  return out;
}
