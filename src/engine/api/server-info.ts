/** Engine domain types (see ../engine-api.ts): What GetServerInfo reports: model, device, memory and limits. */
/** The resident base model. */
export interface ModelInfo {
  name: string;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Context length, tokens. */
  nPositions: number;
  vocabSize: number;
  numParameters: number;
  /** The first of eosTokenIds. */
  eosTokenId: number;
  /** config.json `model_type`: gpt2, llama, mistral, qwen2 or qwen3. */
  architecture: string;
  /** Key/value heads per block (nHead without grouped-query attention). */
  nKvHead: number;
  /** Every id that ends a generation: EOS ids and the chat template's end-of-turn token. */
  eosTokenIds: number[];
  /** The model folder has a chat template (else gentune's own renders `messages`). */
  hasChatTemplate: boolean;
  /** Bytes of text the longest token stands for (special tokens by their spelling), at least 4: prompt-bytes.ts. */
  maxTokenBytes: number;
}

/** Server limits (from config). */
export interface Limits {
  maxConcurrentStreams: number;
  /** Tokens. */
  maxPromptTokens: number;
  /** Tokens. */
  maxNewTokens: number;
  /** Bytes. */
  maxUploadBytes: number;
  maxBatchSize: number;
  maxQueue: number;
  /** Fine-tune jobs trained at once; later ones wait queued. */
  maxConcurrentJobs: number;
  /** Examples in one uploaded dataset or one request's inline examples. */
  maxDatasetExamples: number;
  /** Fine-tune jobs waiting queued. */
  maxQueuedJobs: number;
  /** One gRPC message, bytes. */
  maxMessageBytes: number;
  /**
   * Prompt size checked before tokenizing, UTF-8 bytes: --max-prompt-bytes
   * when set, else derived from maxPromptTokens and the longest token
   * (prompt-bytes.ts); 0 = no bound.
   */
  maxPromptBytes: number;
  /** Longest JSONL line of an uploaded dataset, bytes (fixed). */
  maxLineBytes: number;
}

/** The adapter the webgpu backend runs on (GPUAdapterInfo). */
export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software rasteriser (lavapipe, SwiftShader), not a GPU. */
  software: boolean;
}

/** Memory TensorFlow.js holds on the serving thread's backend (tf.memory()). */
export interface DeviceMemoryInfo {
  numTensors: number;
  numDataBuffers: number;
  /** Bytes of all live tensors (every backend). */
  numBytes: number;
  /** webgpu only: bytes of GPU buffers holding live tensors. */
  numBytesInGPU?: number;
  /** webgpu only: bytes of GPU buffers allocated, live or pooled for reuse. */
  numBytesAllocatedInGPU?: number;
  /** TensorFlow.js cannot count bytes exactly. */
  unreliable?: boolean;
  /** Host backends: wasm memory held for paged KV caches (in use or free pages), in bytes. */
  kvCacheBytes?: number;
  /** Host backends: bytes of KV cache pages in use by running sequences. */
  kvCacheBytesInUse?: number;
}

/** What GetServerInfo reports. */
export interface ServerInfo {
  /** gentune semver. */
  version: string;
  /** Zeros until the model is loaded. */
  model: ModelInfo;
  /** 'tensorflow' | 'webgpu' | 'wasm' | 'cpu' (or '' before it is chosen). */
  backend: string;
  /** One line describing the backend's device ("wasm simd, 1 thread(s)", "nvidia hopper: NVIDIA H200, WebGPU via Dawn"). */
  device: string;
  /** webgpu only. */
  gpuAdapter?: GpuAdapterInfo;
  /** Memory in use on the device, read on the thread holding the model (at most about a second old). */
  deviceMemory: DeviceMemoryInfo;
  limits: Limits;
  ready: boolean;
  startedAtMs: number;
}
