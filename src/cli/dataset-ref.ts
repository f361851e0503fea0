/**
 * `--dataset` takes a dataset's id or its name: `datasets upload --name
 * number-words` and then `--dataset number-words`, with no id to copy. An id
 * wins over a name; of several datasets with one name, the newest.
 */
import type { GentuneClient } from '../client/gentune-client.js';

/** The id of the dataset `ref` names (an id or a name); throws naming --dataset when none matches. */
export async function resolveDatasetId(client: GentuneClient, ref: string, timeoutMs?: number): Promise<string> {
  const datasets = await client.listDatasets({ timeoutMs });
  if (datasets.some((d) => d.id === ref)) return ref;
  // ListDatasets is newest first.
  const named = datasets.find((d) => d.name === ref);
  if (!named) throw new Error(`\`--dataset\` must be the id or name of a stored dataset (see gentune datasets list), got ${JSON.stringify(ref)}`);
  return named.id;
}
