/**
 * One way to try again: capped exponential backoff with equal jitter (util/backoff.ts: half the delay kept, half random), under a named
 * policy. Every retry in the product goes through `retry`, so how often and how long each kind of
 * failure is retried is read in one table.
 */
import { backoffDelay, sleep } from './backoff.js';

export interface RetryPolicy {
  readonly name: string;
  /** Delay before the first retry, in ms (then doubling, with jitter). */
  readonly baseMs: number;
  /** Upper bound of any delay, in ms. */
  readonly maxMs: number;
  /** Tries in all, the first included; Infinity: until it succeeds or the signal aborts. */
  readonly maxTries: number;
}

/** The policies, by what is retried. */
export const RETRY = {
  /** The platform answered 5xx/429/408/425 or not at all: docs/design.md, "Errors", forever. */
  platform: { name: 'platform', baseMs: 200, maxMs: 30_000, maxTries: Infinity },
  /** The platform refuses the credentials: an operator must act; keep trying, slowly. */
  platformAuth: { name: 'platform-auth', baseMs: 1000, maxMs: 60_000, maxTries: Infinity },
  /** A command an operator waits for (`retry-failed`): a few tries, then report. */
  command: { name: 'command', baseMs: 500, maxMs: 5000, maxTries: 4 },
  /**
   * A status write or read on a connection that failed: an unstored outcome must never be dropped.
   * Capped at 2 s: the outcomes of requests in flight during a restart are stored soon after it.
   */
  database: { name: 'database', baseMs: 200, maxMs: 2000, maxTries: Infinity },
  /** The replication stream broke: reconnect, within 2 s of the database being back (a probe is cheap). */
  reconnect: { name: 'reconnect', baseMs: 500, maxMs: 2000, maxTries: Infinity },
  /** Connecting for the leader lock while the database is away. */
  leaderLock: { name: 'leader-lock', baseMs: 200, maxMs: 1000, maxTries: Infinity },
  /** A walsender has not let go of the slot yet (55006): a few seconds at most. */
  slotBusy: { name: 'slot-busy', baseMs: 100, maxMs: 100, maxTries: 50 },
} as const satisfies Record<string, RetryPolicy>;

export interface RetryInfo {
  policy: RetryPolicy;
  /** The try that failed (1-based). */
  attempt: number;
  error: unknown;
  delayMs: number;
}

export interface RetryOptions {
  /** The policy for this failure, or undefined when it must not be retried (it is rethrown). */
  policy: RetryPolicy | ((error: unknown) => RetryPolicy | undefined);
  /** Ends the waiting: the last error is rethrown, or `onAbort`'s. */
  signal?: AbortSignal;
  onAbort?: () => Error;
  /** A longer delay the failure asks for (an HTTP Retry-After). */
  minDelayMs?: (error: unknown) => number | undefined;
  /** Told before each wait (logs, metrics, a status write). */
  onRetry?: (info: RetryInfo) => void | Promise<void>;
}

/** Runs `fn` until it succeeds, a failure has no policy, the policy's tries are used up, or the signal aborts. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted && o.onAbort) throw o.onAbort();
    try {
      return await fn(attempt);
    } catch (error) {
      if (o.signal?.aborted) throw o.onAbort?.() ?? error;
      const policy = typeof o.policy === 'function' ? o.policy(error) : o.policy;
      if (!policy || attempt >= policy.maxTries) throw error;
      const delayMs = Math.max(backoffDelay(attempt, policy), o.minDelayMs?.(error) ?? 0);
      await o.onRetry?.({ policy, attempt, error, delayMs });
      await sleep(delayMs, o.signal);
    }
  }
}

/** The delay before try `attempt + 1` under a policy (for loops that wait on something else). */
export function retryDelay(policy: RetryPolicy, attempt: number): number {
  return backoffDelay(attempt, policy);
}
