/**
 * The simulator's injectable faults (docs/design.md, "The platform"): what each does, their defaults, and the check
 * of a `POST /__sim/faults` body.
 */
import { IDENTITY_FIELDS } from '../config/types.js';
import type { ApiRow } from '../tuzhan/types.js';

export interface Faults {
  /** Delay before every batchAdd and token answer. */
  latencyMs: number;
  /** 0..1: share of batchAdd requests answered HTTP 500 (not applied). */
  errorRate: number;
  /** The next N batchAdd requests get HTTP 429 with `Retry-After: retryAfterSeconds` (not applied). */
  status429: number;
  retryAfterSeconds: number;
  /**
   * A sustained quota: batchAdd requests a second past which it answers 429 with a Retry-After
   * (./quota.ts); 0: none. Changeable at any time.
   */
  rateLimit: number;
  /** 0..1: share of batchAdd requests never answered (the socket is held until the client gives up). */
  timeoutRate: number;
  /** A timed-out request is applied before the answer is lost (exercises at-least-once). */
  timeoutApplies: boolean;
  /**
   * 0..1: share of valid batchAdd requests that are applied and then answered HTTP 503, as when
   * the platform's answer is lost after it imported the rows (replays must not leave it wrong).
   */
  applyThenFailRate: number;
  /** Setting it expires every issued token now (a one-shot action, not a state). */
  expireTokens: boolean;
  /** Answer `data.status` 0 and apply the batch `asyncDelayMs` later. */
  asyncStatus: boolean;
  asyncDelayMs: number;
  /** Answer token errors with HTTP 401 instead of HTTP 200. */
  tokenErrorAs401: boolean;
  /**
   * A request carrying a row with this identity value (in any identity field) is rejected whole
   * with HTTP 400, as the platform does with a row it cannot parse: the client must split the
   * batch to isolate it. Empty: off.
   */
  rejectRequestsWith: string;
  /**
   * While set, batchAdd requests are held after their body is read (after `latencyMs`), neither
   * applied nor answered; clearing it lets them go on. A test's "request in flight" then lasts
   * until the test is done looking, not for a latency it hopes is long enough.
   */
  holdAnswers: boolean;
}

export const DEFAULT_FAULTS: Faults = {
  latencyMs: 0,
  errorRate: 0,
  status429: 0,
  retryAfterSeconds: 1,
  rateLimit: 0,
  timeoutRate: 0,
  timeoutApplies: false,
  applyThenFailRate: 0,
  expireTokens: false,
  asyncStatus: false,
  asyncDelayMs: 100,
  tokenErrorAs401: false,
  rejectRequestsWith: '',
  holdAnswers: false,
};

/** Why a POST /__sim/faults body is unusable, or undefined. */
export function checkFaults(body: unknown): string | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'expected a JSON object';
  for (const [k, v] of Object.entries(body)) {
    if (!(k in DEFAULT_FAULTS)) return `unknown fault ${k}`;
    const expected = typeof DEFAULT_FAULTS[k as keyof Faults];
    if (typeof v !== expected) return `${k} must be a ${expected}`;
    const rate = k === 'errorRate' || k === 'timeoutRate' || k === 'applyThenFailRate';
    if (typeof v === 'number' && (v < 0 || (rate && v > 1))) {
      return `${k} is out of range`;
    }
  }
  return undefined;
}

/** Whether a request must be rejected whole for carrying the identity `rejectRequestsWith` names. */
export function carriesRejected(faults: Faults, rows: readonly ApiRow[]): boolean {
  const v = faults.rejectRequestsWith;
  return v !== '' && rows.some((r) => IDENTITY_FIELDS.some((f) => r[f] === v));
}
