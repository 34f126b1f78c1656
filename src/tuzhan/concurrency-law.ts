/**
 * How many requests to keep in flight, learned from the platform's health (docs/operations.md,
 * "The platform's quota"), as Vector's adaptive concurrency does: start at `tuzhan.concurrency`
 * (a healthy platform must not be slowed down), halve after a window with a 5xx, a timeout or a
 * network error, take a quarter off after one whose latency jumped well above its usual, and add
 * one per window that went well and used every slot, back up to `tuzhan.concurrency`. A quota
 * refusal (429) is the rate law's business (./rate-law.ts), not a sign of overload.
 * Pure logic over an explicit clock (`now`, in ms).
 */

export interface ConcurrencyChange {
  from: number;
  to: number;
  why: 'failures' | 'latency' | 'recovered';
}

/** A window lasts at least this long, and until an answer arrives. */
export const WINDOW_MS = 1000;
/** Latency counts as jumped above `LATENCY_FACTOR` times its usual and `LATENCY_MARGIN_MS` more. */
const LATENCY_FACTOR = 2;
const LATENCY_MARGIN_MS = 250;
/** How fast the usual latency follows the windows that went well (a share per window). */
const USUAL_WEIGHT = 0.1;

export class ConcurrencyLaw {
  /** Requests allowed in flight now. */
  limit: number;
  /** The usual latency (ms) of answers in windows that went well; undefined before the first. */
  usualMs: number | undefined;

  private windowSince = 0;
  private failures = 0;
  private answers = 0;
  private latencySum = 0;
  /** Whether every slot was taken at some time in this window (else more slots would not help). */
  private full = false;

  constructor(readonly max: number) {
    this.limit = max;
  }

  /** Requests in flight now, as one more leaves. */
  started(inFlight: number): void {
    if (inFlight >= this.limit) this.full = true;
  }

  /**
   * An answer (`failed`: a 5xx, a timeout, a network error), after `latencyMs`. Returns a change of
   * the limit when this answer closed a window that moved it.
   */
  answered(failed: boolean, latencyMs: number, now: number): ConcurrencyChange | undefined {
    if (failed) this.failures += 1;
    else {
      this.answers += 1;
      this.latencySum += latencyMs;
    }
    if (now - this.windowSince < WINDOW_MS) return undefined;
    return this.closeWindow(now);
  }

  private closeWindow(now: number): ConcurrencyChange | undefined {
    const from = this.limit;
    const mean = this.answers > 0 ? this.latencySum / this.answers : undefined;
    const usual = this.usualMs;
    let why: ConcurrencyChange['why'] | undefined;
    if (this.failures > 0) {
      this.limit = Math.max(1, Math.floor(this.limit / 2));
      why = 'failures';
    } else if (
      mean !== undefined &&
      usual !== undefined &&
      mean > usual * LATENCY_FACTOR + LATENCY_MARGIN_MS
    ) {
      this.limit = Math.max(1, Math.floor(this.limit * 0.75));
      why = 'latency';
    } else if (this.full && this.limit < this.max) {
      this.limit += 1;
      why = 'recovered';
    }
    // The usual latency follows good windows only, slowly: a platform that got slower for good
    // becomes the new usual within ten or twenty windows, and the limit can grow again.
    if (mean !== undefined && this.failures === 0)
      this.usualMs = usual === undefined ? mean : usual + USUAL_WEIGHT * (mean - usual);
    this.windowSince = now;
    this.failures = 0;
    this.answers = 0;
    this.latencySum = 0;
    this.full = false;
    return why && this.limit !== from ? { from, to: this.limit, why } : undefined;
  }
}
