/** Engine domain types (see ../engine-api.ts): Adapters: references and the published versions with their residency and use. */
/** An adapter reference: a name and an optional version (latest when absent). */
export interface AdapterRef {
  /** STORE_NAME_RULE (src/common/store-name.ts): 1..64 characters of [A-Za-z0-9._-], starting with a letter or digit. */
  name: string;
  /** Version number >= 1; undefined = latest (or the alias's target). */
  version?: number;
  /** An alias ("prod" in "name@prod", see adapter-aliases.ts), resolved to its version when the request binds; exclusive with `version`. */
  alias?: string;
}

/** An alias of an adapter: `name@alias` resolves to `name@version`. */
export interface AdapterAliasInfo {
  alias: string;
  version: number;
  /** Epoch milliseconds of its last move. */
  updatedAtMs: number;
}

export type AdapterResidency = 'stored' | 'loaded' | 'pinned';

/** One published version of an adapter. */
export interface AdapterVersionInfo {
  version: number;
  baseModel: string;
  method: 'lora' | 'last_layers';
  /** LoRA rank; 0 for last_layers. */
  r: number;
  /** LoRA alpha; 0 for last_layers. */
  loraAlpha: number;
  targetModules: string[];
  sizeBytes: number;
  residency: AdapterResidency;
  createdAtMs: number;
  lastUsedAtMs?: number;
  /** Producing job; undefined if imported. */
  jobId?: string;
  /**
   * Requests served by this version since the server started: Generate
   * requests that took it (counted when the request takes it, before its first token)
   * plus Evaluate calls that scored it (one per call). LoadAdapter does not count.
   */
  requestsServed: number;
  /** Why the version cannot be loaded (no server path in it); undefined when it loads. */
  broken?: string;
}

/** A named adapter with all its versions. */
export interface AdapterInfo {
  name: string;
  /** The newest version that is not broken; 0 when every one is. */
  latestVersion: number;
  /** Oldest first. */
  versions: AdapterVersionInfo[];
  /** Its aliases, sorted by alias. */
  aliases: AdapterAliasInfo[];
}
