/**
 * Book-keeping of in-flight calls: how many streams are open (for
 * --max-concurrent-streams), whether the server is draining, and a way to abort
 * every call when the shutdown grace period runs out.
 */
export class CallTracker {
  private readonly calls = new Map<AbortController, { streaming: boolean }>();
  private idleWaiters: (() => void)[] = [];
  /** Set when shutdown starts: new calls are refused with UNAVAILABLE. */
  draining = false;

  /** Open streaming calls. */
  get streams(): number {
    let n = 0;
    for (const c of this.calls.values()) if (c.streaming) n++;
    return n;
  }

  /** All open calls. */
  get size(): number {
    return this.calls.size;
  }

  /** Registers a call; the returned function unregisters it (idempotent). */
  add(controller: AbortController, streaming: boolean): () => void {
    this.calls.set(controller, { streaming });
    return () => {
      if (!this.calls.delete(controller) || this.calls.size > 0) return;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    };
  }

  /** Aborts every open call with `reason` (e.g. Unavailable "server is shutting down"). */
  abortAll(reason: Error): void {
    for (const controller of this.calls.keys()) controller.abort(reason);
  }

  /** Resolves once no call is open. */
  idle(): Promise<void> {
    if (this.calls.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
