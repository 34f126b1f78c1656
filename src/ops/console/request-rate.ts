/**
 * The overview's "requests/min": the rate of the last few minutes, not a long window's total spread
 * over the whole window, which under-reads a bridge younger than the window (650 requests in its
 * first minute are not 43 a minute). The rate is taken over the time since the earliest request of
 * the last `maxSeconds`, and at least `minSeconds`, so a single request does not read as thousands.
 */
export const RATE_WINDOW = { minSeconds: 60, maxSeconds: 300 } as const;

export interface RecentRate {
  requestsPerMinute: number;
  rowsPerMinute: number;
  /** The span the rate is taken over, in seconds (0 with no request in the window). */
  overSeconds: number;
}

/**
 * The rate of `requests` (carrying `rows`) started since `oldest`, as of `now`; `oldest` is the
 * earliest start within the last RATE_WINDOW.maxSeconds.
 */
export function recentRate(requests: number, rows: number, oldest: Date | null, now: Date): RecentRate {
  if (requests === 0 || oldest === null) return { requestsPerMinute: 0, rowsPerMinute: 0, overSeconds: 0 };
  const seconds = Math.min(
    RATE_WINDOW.maxSeconds,
    Math.max(RATE_WINDOW.minSeconds, (now.getTime() - oldest.getTime()) / 1000),
  );
  return {
    requestsPerMinute: (requests * 60) / seconds,
    rowsPerMinute: (rows * 60) / seconds,
    overSeconds: seconds,
  };
}

/** What the bridge learned of the platform's quota, as the overview and `status` show it. */
export interface LearnedRate {
  /** Requests a second it allows itself now; null: no limit. */
  ratePerSecond: number | null;
  /** The quota learned from the platform's refusals; null: none refused yet. */
  quota: number | null;
  /** Requests allowed in flight now. */
  concurrency: number | null;
  /** Requests the platform refused for its quota (HTTP 429) since the bridge started. */
  refused: number | null;
}

interface Readable {
  get(): Promise<{ values: Array<{ value: number }> }>;
}

/** The learned rate from the daemon's metrics (all null without them: a console of its own). */
export async function learnedRate(
  m:
    | {
        requestRateLimit: Readable;
        platformQuota: Readable;
        concurrencyLimit: Readable;
        refused: Readable;
      }
    | undefined,
): Promise<LearnedRate> {
  const value = async (g: Readable | undefined): Promise<number | null> =>
    g ? ((await g.get()).values[0]?.value ?? null) : null;
  const rate = await value(m?.requestRateLimit);
  const quota = await value(m?.platformQuota);
  return {
    ratePerSecond: rate === null || rate === Infinity ? null : rate,
    quota: quota === null || quota === 0 ? null : quota,
    concurrency: await value(m?.concurrencyLimit),
    refused: await value(m?.refused),
  };
}
