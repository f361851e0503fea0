/**
 * A one-producer, one-consumer queue between the decode loop (which must
 * never wait for a slow client) and a request's async generator.
 */
export class ChunkChannel<T> {
  private readonly items: T[] = [];
  private ended = false;
  private error: unknown = undefined;
  private failed = false;
  private waiter: (() => void) | undefined;

  /** Queues an item (ignored after end). */
  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.wake();
  }

  /** No more items after the queued ones. */
  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Ends with an error, thrown to the consumer after the queued items. */
  fail(error: unknown): void {
    if (this.ended) return;
    this.failed = true;
    this.error = error;
    this.end();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The next item; `done` once ended and drained. */
  async next(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      if (this.items.length > 0) return { done: false, value: this.items.shift()! };
      if (this.ended) {
        if (this.failed) throw this.error;
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
