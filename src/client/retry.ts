/**
 * Retries with exponential backoff and full jitter, for idempotent unary calls
 * that fail with UNAVAILABLE (server starting, restarting or draining).
 */
import { status as Code } from '@grpc/grpc-js';

/** Retry policy; times in milliseconds. */
export interface RetryPolicy {
  /** Attempts in all, including the first. Default 5. */
  maxAttempts: number;
  /** Backoff ceiling before the 2nd attempt. Default 100. */
  initialBackoffMs: number;
  /** Backoff ceiling cap. Default 2000. */
  maxBackoffMs: number;
  /** Growth of the ceiling per attempt. Default 2. */
  multiplier: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 2000, multiplier: 2 };

/** True for errors worth retrying: UNAVAILABLE only (the call did not run). */
export function isRetryable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === Code.UNAVAILABLE;
}

/** Backoff before attempt `attempt` (2, 3, ...): uniform in [0, ceiling). */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (attempt - 2));
  return Math.floor(random() * ceiling);
}

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, runs out
 * of attempts, or the next backoff would end past `deadlineMs` (epoch ms).
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  deadlineMs: number,
  attempt: (n: number) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!isRetryable(err) || n >= policy.maxAttempts || signal?.aborted) throw err;
      const wait = backoffMs(policy, n + 1);
      if (Date.now() + wait >= deadlineMs) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
