/**
 * The one gate every request to the platform passes, whoever sends it (the stream, the snapshot,
 * a retry, a backfill, an approval: they all share the process's platform client). Requests wait
 * here, first come first served, until the learned pace (./rate-law.ts) and the learned concurrency
 * (./concurrency-law.ts) let them leave, and each answer teaches both. Every attempt counts, retries
 * included: that is what the platform sees.
 */
import { ConcurrencyLaw, type ConcurrencyChange } from './concurrency-law.js';
import { RateLaw, type RateChange, type RateTicket } from './rate-law.js';

export interface LimiterOptions {
  /** `tuzhan.ratePerSecond`: 0 for none. */
  ratePerSecond: number;
  /** `tuzhan.concurrency`: the most requests in flight. */
  concurrency: number;
  /** The clock (ms); Date.now unless a test drives it. */
  now?: () => number;
}

/** What the limiter has learned, for metrics, the console and `status`. */
export interface LimiterState {
  /** Requests per second allowed now; null: no limit (nothing refused yet, no ratePerSecond). */
  rate: number | null;
  /** The learned quota (requests/s), null before the first refusal. */
  quota: number | null;
  /** `tuzhan.ratePerSecond`, null for none. */
  ceiling: number | null;
  /** Requests allowed in flight now, and at most. */
  concurrency: number;
  maxConcurrency: number;
  /** Requests the platform refused (HTTP 429) so far. */
  refused: number;
  /** ISO time until which every request waits (a Retry-After), or null. */
  pausedUntil: string | null;
}

/** Told after every change of the state, with the move that caused it, if any. */
export type LimiterListener = (state: LimiterState, change?: LimiterChange) => void;

export type LimiterChange =
  { kind: 'rate'; change: RateChange } | { kind: 'concurrency'; change: ConcurrencyChange };

/** How an attempt ended, as far as the pace and the concurrency care. */
export type Feedback =
  /** The platform answered (anything but a 429 or a 5xx: a result, a rejection, a token error). */
  | { kind: 'answered'; retryAfterMs?: number }
  /** HTTP 429. */
  | { kind: 'refused'; retryAfterMs?: number }
  /** A 5xx, a timeout or a network error. */
  | { kind: 'failed'; retryAfterMs?: number };

/** Leave to send one request: give it back with `done` once answered, or `cancel` when not sent. */
export interface Permit {
  done(feedback: Feedback): void;
  cancel(): void;
}

interface Waiter {
  resolve(permit: Permit): void;
  reject(err: unknown): void;
}

export class Limiter {
  private readonly rateLaw: RateLaw;
  private readonly concurrencyLaw: ConcurrencyLaw;
  private readonly queue: Waiter[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private readonly now: () => number;
  private readonly listeners = new Set<LimiterListener>();

  constructor(private readonly o: LimiterOptions) {
    this.now = o.now ?? Date.now;
    this.rateLaw = new RateLaw({ ceiling: o.ratePerSecond > 0 ? o.ratePerSecond : Infinity });
    this.concurrencyLaw = new ConcurrencyLaw(Math.max(1, o.concurrency));
  }

  /** Resolves when a request may leave; rejects with `abortError()` when `signal` aborts first. */
  acquire(signal: AbortSignal | undefined, abortError: () => Error): Promise<Permit> {
    if (signal?.aborted) return Promise.reject(abortError());
    return new Promise<Permit>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(abortError());
      };
      const waiter: Waiter = {
        resolve: (p) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(p);
        },
        reject,
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.pump();
    });
  }

  /** Calls `listener` after every change; returns the call that stops it. */
  subscribe(listener: LimiterListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What is learned so far. */
  state(): LimiterState {
    const rate = this.rateLaw.rate;
    const paused = this.rateLaw.pausedUntil;
    return {
      rate: rate === Infinity ? null : rate,
      quota: this.rateLaw.estimate ?? null,
      ceiling: this.o.ratePerSecond > 0 ? this.o.ratePerSecond : null,
      concurrency: this.concurrencyLaw.limit,
      maxConcurrency: this.concurrencyLaw.max,
      refused: this.rateLaw.refusals,
      pausedUntil: paused > this.now() ? new Date(paused).toISOString() : null,
    };
  }

  /** Fails every waiting request (the client is closing). */
  close(err: Error): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.queue.splice(0)) w.reject(err);
  }

  /** Lets waiting requests leave while the pace and the concurrency allow; else wakes up later. */
  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < this.concurrencyLaw.limit) {
      const now = this.now();
      const at = this.rateLaw.nextStartAt(now);
      if (at > now) return this.wakeAt(at, now);
      const waiter = this.queue.shift() as Waiter;
      this.inFlight += 1;
      this.concurrencyLaw.started(this.inFlight);
      const { ticket, change } = this.rateLaw.started(now);
      if (change) this.changed({ kind: 'rate', change });
      waiter.resolve(this.permit(ticket, now));
    }
  }

  private wakeAt(at: number, now: number): void {
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.pump();
      },
      Math.ceil(at - now),
    );
  }

  private permit(ticket: RateTicket, sentAt: number): Permit {
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.inFlight -= 1;
      return true;
    };
    return {
      done: (f) => {
        if (!settle()) return;
        const now = this.now();
        const rate = this.rateLaw.answered(
          ticket,
          { refused: f.kind === 'refused', retryAfterMs: f.retryAfterMs },
          now,
        );
        // A refusal is about the quota, not the platform's health: it says nothing of latency.
        const concurrency =
          f.kind === 'refused'
            ? undefined
            : this.concurrencyLaw.answered(f.kind === 'failed', now - sentAt, now);
        if (rate) this.changed({ kind: 'rate', change: rate });
        if (concurrency) this.changed({ kind: 'concurrency', change: concurrency });
        if (f.kind === 'refused' && !rate) this.changed();
        this.pump();
      },
      cancel: () => {
        if (settle()) this.pump();
      },
    };
  }

  private changed(change?: LimiterChange): void {
    if (this.listeners.size === 0) return;
    const state = this.state();
    for (const l of this.listeners) {
      try {
        l(state, change);
      } catch {
        // A failing listener (a metric, a log line) must never stop a request.
      }
    }
  }
}
