/** Engine domain types (see ../engine-api.ts): SFT examples and the stored datasets they come from. */
/** One turn of a chat example. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** One SFT example: the three JSONL shapes. */
export type Example =
  | { prompt: string; completion: string }
  | { messages: ChatMessage[] }
  | { text: string };

/** Where examples come from: an uploaded dataset or inline examples. */
export type DataSource = { datasetId: string } | { examples: Example[] };

/** Line schema of a JSONL dataset. */
export type DatasetFormat = 'prompt_completion' | 'chat' | 'text';

/** First message of an upload, validated. */
export interface DatasetUploadMeta {
  /** 1..128 characters, no '/', '\' or '..'. */
  name: string;
  /** 'auto' = detect from the first line; every later line must match it. */
  format: DatasetFormat | 'auto';
}

/** A stored dataset. */
export interface DatasetInfo {
  id: string;
  name: string;
  format: DatasetFormat;
  numExamples: number;
  sizeBytes: number;
  /** Lowercase hex. */
  sha256: string;
  createdAtMs: number;
}
