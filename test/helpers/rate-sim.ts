/**
 * A platform's quota and the bridge's senders in simulated time, for the rate law's unit tests: a
 * discrete-event loop (no timers, no I/O) in which `lanes` senders with an endless backlog ask the
 * law when they may send, the platform answers after a network delay, and a refused request is
 * sent again after its Retry-After. The quota is an independent model of what platforms do: a
 * token bucket (a rate and a second's burst, as API gateways configure it) or a counter per clock
 * second.
 */
import { RateLaw, type RateTicket } from '../../src/tuzhan/rate-law.js';

export type QuotaModel = 'bucket' | 'window';

/** A platform that takes `quota` requests a second; what it answers one arriving at `t` (ms). */
export class QuotaPlatform {
  accepted = 0;
  refused = 0;
  private tokens: number;
  private last = 0;
  private windowStart = -1;
  private inWindow = 0;

  constructor(
    private readonly model: QuotaModel,
    public quota: number,
  ) {
    this.tokens = quota;
  }

  setQuota(quota: number, t: number): void {
    this.refill(t);
    this.quota = quota;
    this.tokens = Math.min(this.tokens, quota);
  }

  /** Whether a request arriving at `t` is taken; a refusal asks to retry after a second. */
  arrive(t: number): boolean {
    let ok: boolean;
    if (this.model === 'bucket') {
      this.refill(t);
      ok = this.tokens >= 1;
      if (ok) this.tokens -= 1;
    } else {
      const w = Math.floor(t / 1000);
      if (w !== this.windowStart) [this.windowStart, this.inWindow] = [w, 0];
      ok = this.inWindow < this.quota;
      if (ok) this.inWindow += 1;
    }
    if (ok) this.accepted += 1;
    else this.refused += 1;
    return ok;
  }

  private refill(t: number): void {
    this.tokens = Math.min(this.quota, this.tokens + ((t - this.last) / 1000) * this.quota);
    this.last = t;
  }
}

export interface SimOptions {
  model: QuotaModel;
  quota: number;
  /** Requests to deliver (then the run ends), or run for `durationMs` with an endless backlog. */
  requests?: number;
  durationMs?: number;
  /** [time in ms, new quota]. */
  changes?: Array<[number, number]>;
  lanes?: number;
  ceiling?: number;
  seed?: number;
}

export interface SimResult {
  /** When the platform took (and refused) each request, in ms. */
  accepted: number[];
  refused: number[];
  /** When the last request was taken. */
  endMs: number;
  law: RateLaw;
}

/** Runs the senders against the platform in simulated time. */
export function simulate(o: SimOptions): SimResult {
  let seed = o.seed ?? 1;
  const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const law = new RateLaw({ ceiling: o.ceiling ?? Infinity });
  const platform = new QuotaPlatform(o.model, o.quota);
  const events: Array<{ t: number; run: () => void }> = [];
  const at = (t: number, run: () => void): void => {
    let i = events.length;
    while (i > 0 && (events[i - 1] as { t: number }).t > t) i -= 1;
    events.splice(i, 0, { t, run });
  };
  const lanes = o.lanes ?? 4;
  const end = o.durationMs ?? Infinity;
  let now = 0;
  let inFlight = 0;
  let wake: number | undefined;
  let toSend = o.requests ?? Infinity;
  const waiting: Array<() => void> = [];
  const accepted: number[] = [];
  const refused: number[] = [];

  // The limiter's loop: first come first served, within the concurrency and the law's pace.
  const pump = (): void => {
    while (waiting.length > 0 && inFlight < lanes) {
      const next = law.nextStartAt(now);
      if (next > now) {
        if (wake === undefined || wake > next) {
          wake = next;
          at(next, () => {
            wake = undefined;
            pump();
          });
        }
        return;
      }
      inFlight += 1;
      (waiting.shift() as () => void)();
    }
  };
  // One request: sent, taken or refused on arrival, answered a little later; a refusal is sent
  // again after its Retry-After (one second), a success frees the sender for the next request.
  const send = (): void => {
    waiting.push(() => {
      const { ticket } = law.started(now);
      at(now + 1 + random() * 3, () => {
        const ok = platform.arrive(now);
        (ok ? accepted : refused).push(now);
        at(now + 5 + random() * 25, () => answered(ticket, ok));
      });
    });
    pump();
  };
  const answered = (ticket: RateTicket, ok: boolean): void => {
    inFlight -= 1;
    law.answered(ticket, ok ? { refused: false } : { refused: true, retryAfterMs: 1000 }, now);
    if (ok) at(now + 5 + random() * 10, next);
    else at(now + 1000, send);
    pump();
  };
  const next = (): void => {
    if (toSend <= 0) return;
    toSend -= 1;
    send();
  };
  for (let i = 0; i < lanes; i++) next();
  for (const [t, quota] of o.changes ?? []) at(t, () => platform.setQuota(quota, now));
  while (events.length > 0) {
    const e = events.shift() as { t: number; run: () => void };
    if (e.t > end) break;
    now = e.t;
    e.run();
  }
  return { accepted, refused, endMs: accepted[accepted.length - 1] ?? 0, law };
}

/** Timestamps in [from, to). */
export function within(times: readonly number[], from: number, to: number): number {
  return times.filter((t) => t >= from && t < to).length;
}
