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
