/**
 * Continuous batching. One loop runs while there is work: at each step
 * boundary, requests that left (cancelled, deadline, client gone) drop out of
 * the batch, waiting requests start their prefill while batch slots are free,
 * and every running row is decoded by one forward pass per lane. Rows of the
 * base model and of every LoRA adapter share one lane; a `last_layers` adapter
 * replaces whole blocks, so its rows get a lane (a BatchDecoder) of their own.
 *
 * Prefill is chunked: requests that join at one boundary form a prefill group
 * with a KV cache of its own, and each step runs at most `prefillChunk` prompt
 * columns of every group before the lane's decode step; a group merges into
 * the batch once its prompt is done and its first tokens are sampled. So a
 * long prompt costs the running streams a chunk per token instead of one long
 * stall, and prompts up to `prefillChunk` tokens still join in a single step.
 * Between steps the loop yields to the event loop so new requests, aborts and
 * other I/O get in.
 *
 * Background requests (Evaluate's generations) are rows like any other, but
 * wait in a queue of their own that is admitted only when no Generate waits,
 * so a Generate never queues behind an evaluation for more than the first
 * background row to finish; they are not counted in `load` (the queue limit)
 * nor in the request metrics.
 */
import type { Logger } from 'pino';
import { BatchDecoder, type DecoderModel, type PrefillGroup } from '../model/generation/batch-decoder.js';
import type { GenerationSequence, TokenOutput } from '../model/generation/generation-sequence.js';
import { type EngineMetrics, noMetrics } from './engine-metrics.js';
import type { ServedRequest } from './served-sequence.js';
import { Unavailable } from '../common/errors.js';

/** Default prompt columns prefilled per step and group, in tokens (`--prefill-chunk`). */
export const DEFAULT_PREFILL_CHUNK = 64;

/** A prefill in progress and the requests of its rows. */
interface Joining {
  group: PrefillGroup;
  requests: Map<GenerationSequence, ServedRequest>;
}

interface Lane {
  key: string;
  decoder: BatchDecoder;
  /** Rows of the running batch. */
  rows: Map<GenerationSequence, ServedRequest>;
  /** Prefills in progress, oldest first. */
  joining: Joining[];
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The scheduler: FIFOs of waiting requests (Generate first, then background) and the running lanes. */
export class DecodeLoop {
  private readonly waiting: ServedRequest[] = [];
  private readonly background: ServedRequest[] = [];
  private readonly lanes = new Map<string, Lane>();
  private running: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];
  /** Set by cancelAll: every request leaves at the next step boundary. */
  private cancelling = false;
  /** Requests submitted and not yet ended (waiting, joining or running), background ones not counted. */
  private active = 0;
  /** Background requests submitted and not yet ended. */
  private activeBackground = 0;
  /** Set when the model backend trapped (see {@link backendFault}): nothing can run any more. */
  private fault: Error | undefined;

  constructor(
    private readonly model: DecoderModel,
    /** Rows decoded together, all lanes counted (prefilling rows included). */
    private readonly maxBatchSize: number,
    private readonly log: Logger,
    private readonly metrics: EngineMetrics = noMetrics,
    /** Prompt columns a prefill group runs per step, in tokens. */
    private readonly prefillChunk = DEFAULT_PREFILL_CHUNK,
    /**
     * Called at every step boundary, after the event loop had its turn and
     * before the next step: the serving worker posts what the last step and
     * that turn produced (tokens, replies), so nothing waits behind a step.
     */
    private readonly onStepBoundary: () => void = () => {},
  ) {
    if (!(prefillChunk >= 1)) throw new Error(`prefillChunk must be >= 1, got ${prefillChunk}`);
  }

  /**
   * The model backend's fatal failure, if it had one: a WebAssembly trap
   * (memory access out of bounds, abort) leaves the backend's memory in an
   * unknown state, so the loop stops serving; readiness reports it and the
   * server must be restarted.
   */
  get backendFault(): Error | undefined {
    return this.fault;
  }

  /** Requests waiting, joining or running (not background ones). */
  get load(): number {
    return this.active;
  }

  /** Background requests waiting, joining or running. */
  get backgroundLoad(): number {
    return this.activeBackground;
  }

  /** Requests waiting for a batch slot (not background ones). */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Sequences in the batch or being prefilled into it, all lanes counted. */
  get runningCount(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.rows.size + joiningRows(lane);
    return n;
  }

  /** Queues a request; it starts its prefill at the next step boundary with a free slot. */
  submit(req: ServedRequest): void {
    if (this.fault) throw this.fault;
    if (req.background) {
      this.background.push(req);
      this.activeBackground++;
    } else {
      this.waiting.push(req);
      this.active++;
      this.metrics.onQueued(req.lease?.label ?? '');
    }
    this.kick();
  }

  /** Ends every request at the next step boundary (finish reason 'cancelled'). */
  cancelAll(): void {
    this.cancelling = true;
  }

  /** Resolves when no request is waiting or running. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.run()
      .catch((err: unknown) => {
        // A failure outside a lane's step (a hook that threw): end every request with it rather than leave them waiting.
        this.log.error({ err }, 'decode loop failed');
        for (const req of [...this.waiting.splice(0), ...this.background.splice(0)]) this.end(req, err);
        for (const [k, l] of this.lanes) this.failLane(k, l, err);
      })
      .finally(() => {
        this.running = null;
        // A request may have arrived while the loop was winding down.
        if (this.waiting.length > 0 || this.background.length > 0) this.kick();
        else for (const wake of this.idleWaiters.splice(0)) wake();
      });
  }

  private async run(): Promise<void> {
    while (this.waiting.length > 0 || this.background.length > 0 || this.lanes.size > 0) {
      const joining = this.admit();
      for (const key of new Set([...this.lanes.keys(), ...joining.keys()])) {
        await this.stepLane(key, joining.get(key) ?? []);
      }
      await nextTurn();
      this.onStepBoundary();
    }
  }

  /**
   * Takes waiting requests, oldest first, while batch slots are free; grouped
   * by lane. Background requests only once no Generate waits.
   */
  private admit(): Map<string, ServedRequest[]> {
    const joining = new Map<string, ServedRequest[]>();
    let used = this.runningCount;
    for (const queue of [this.waiting, this.background]) {
      while (queue.length > 0) {
        const req = queue[0];
        if (req.wantsOut || this.cancelling) {
          queue.shift();
          this.end(req);
          continue;
        }
        if (used >= this.maxBatchSize) break;
        queue.shift();
        used++;
        const list = joining.get(req.lane) ?? [];
        list.push(req);
        joining.set(req.lane, list);
      }
      // A Generate still waiting for a slot: no background request may take one first.
      if (queue === this.waiting && queue.length > 0) break;
    }
    return joining;
  }

  /**
   * One step of a lane: drops leavers, starts a prefill group for `joining`,
   * runs a chunk of every prefill (merging the ones that complete), then
   * decodes one token for every running row.
   */
  private async stepLane(key: string, joining: ServedRequest[]): Promise<void> {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { key, decoder: new BatchDecoder(this.model), rows: new Map(), joining: [] };
      this.lanes.set(key, lane);
    }
    try {
      this.dropLeavers(lane);
      if (joining.length > 0) {
        const now = Date.now();
        for (const req of joining) {
          req.joinedMs = now;
          if (!req.background) this.metrics.onPrefill(req.lease?.label ?? '', req.seq.promptIds.length, now - req.arrivalMs);
        }
        lane.joining.push({ group: lane.decoder.prefill(joining.map((r) => r.seq)), requests: new Map(joining.map((r) => [r.seq, r])) });
      }
      for (const j of [...lane.joining]) {
        const outs = await j.group.next(this.prefillChunk);
        if (!outs) continue;
        const rows = j.group.rows;
        lane.decoder.merge(j.group);
        lane.joining.splice(lane.joining.indexOf(j), 1);
        for (const [seq, req] of j.requests) lane.rows.set(seq, req);
        rows.forEach((seq, i) => this.deliver(j.requests.get(seq)!, outs[i]));
        this.removeFinished(lane);
      }
      if (lane.decoder.size > 0) {
        const rows = lane.decoder.rows;
        this.metrics.onDecodeStep(rows.length);
        const outs = await lane.decoder.step();
        outs.forEach((out: TokenOutput, b) => this.deliver(lane!.rows.get(rows[b])!, out));
        this.removeFinished(lane);
      }
    } catch (err) {
      this.log.error({ err, lane: key, rows: lane.rows.size + joiningRows(lane) }, 'decode step failed');
      if (err instanceof WebAssembly.RuntimeError && !this.fault) {
        this.fault = new Unavailable(`the model backend failed (${err.message}); restart the server`, { cause: err });
        this.log.fatal({ err }, 'model backend trapped: no more requests are served, readiness reports not ready');
        for (const req of [...this.waiting.splice(0), ...this.background.splice(0)]) this.end(req, this.fault);
        for (const [k, l] of this.lanes) this.failLane(k, l, this.fault);
        return;
      }
      this.failLane(key, lane, err);
      return;
    }
    if (lane.decoder.size === 0 && lane.joining.length === 0) {
      // Free the (empty) cache's tensors: an idle server holds nothing but weights.
      lane.decoder.dispose();
      this.lanes.delete(key);
    }
  }

  /** Ends every request of a lane with `err` and frees the lane. */
  private failLane(key: string, lane: Lane, err: unknown): void {
    for (const req of lane.rows.values()) this.end(req, err);
    for (const j of lane.joining) for (const req of j.requests.values()) this.end(req, err);
    lane.rows.clear();
    this.lanes.delete(key);
    // After a trap, freeing memory may trap again: best effort.
    try {
      for (const j of lane.joining) j.group.dispose();
      lane.decoder.dispose();
    } catch (cleanup) {
      this.log.warn({ err: cleanup, lane: key }, 'freeing a failed lane failed');
    }
    lane.joining = [];
  }

  /** Requests that want out leave: running rows at once, prefilling rows before their next chunk. */
  private dropLeavers(lane: Lane): void {
    const out = (req: ServedRequest) => req.wantsOut || this.cancelling;
    for (const req of lane.rows.values()) if (out(req)) req.seq.cancel();
    this.removeFinished(lane);
    for (const j of [...lane.joining]) {
      for (const req of j.requests.values()) if (out(req)) req.seq.cancel();
      for (const seq of j.group.removeFinished()) {
        const req = j.requests.get(seq)!;
        j.requests.delete(seq);
        this.end(req);
      }
      if (j.group.size === 0) {
        j.group.dispose();
        lane.joining.splice(lane.joining.indexOf(j), 1);
      }
    }
  }

  private removeFinished(lane: Lane): void {
    for (const seq of lane.decoder.removeFinished()) {
      const req = lane.rows.get(seq);
      lane.rows.delete(seq);
      if (req) this.end(req);
    }
  }

  /** Hands a token to its request, timing it. */
  private deliver(req: ServedRequest, out: TokenOutput): void {
    const previousMs = req.lastTokenMs;
    req.deliver(out);
    if (req.background) return;
    const adapter = req.lease?.label ?? '';
    if (previousMs === undefined) this.metrics.onFirstToken(adapter, req.lastTokenMs! - req.arrivalMs);
    else this.metrics.onNextToken(adapter, req.lastTokenMs! - previousMs);
  }

  /** A request leaves for good: its stream ends (with `err`, if given). */
  private end(req: ServedRequest, err?: unknown): void {
    if (req.background) this.activeBackground--;
    else this.active--;
    if (err === undefined) req.close();
    else req.fail(err);
    if (req.background) return;
    this.metrics.onFinish(err === undefined ? req.seq.finishReason ?? 'cancelled' : 'error', Date.now() - req.arrivalMs);
  }
}

/** Rows being prefilled in a lane. */
function joiningRows(lane: Lane): number {
  let n = 0;
  for (const j of lane.joining) n += j.group.size;
  return n;
}
