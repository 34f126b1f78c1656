/**
 * How many requests a second the platform takes (docs/operations.md, "The platform's quota"),
 * learned from its answers rather than configured. Pure logic over an explicit clock (`now`, in
 * ms), so tests drive it with a fake one; src/tuzhan/limiter.ts makes requests wait for it.
 *
 * Plain AIMD (add a little per good answer, halve on a refusal) keeps knocking: it climbs past the
 * quota again every few seconds, and at a quota of 2 a second that is a refusal every few requests.
 * This law remembers where refusals happened instead:
 * - Nothing is limited before the platform refuses a request (HTTP 429), but `tuzhan.ratePerSecond`
 *   and the concurrency: most platforms never refuse, and learning must not slow them.
 * - A refusal gives an estimate of the quota, and requests are paced evenly a few percent under it.
 *   The first comes from what the platform took in the second before that refusal (a quota lets
 *   about a second's worth through from a standstill). Refusals of requests that left before the
 *   last reaction are old news: one reaction per burst of refusals.
 * - A refusal while pacing under the estimate means the quota fell: the estimate falls to what the
 *   platform took in the last two seconds (a few percent at least, half at most), so refusals stop
 *   within a few seconds.
 * - Steady, it probes rarely: after HOLD_REQUESTS requests and HOLD_MS at the estimate, most of
 *   that pace used (an idle bridge learns nothing), it steps above it. Each step that goes
 *   through doubles the next (the quota may have risen: found in seconds, not minutes); the first
 *   refusal ends the probe, at what the platform surely took during it: what it accepted, less a
 *   second's burst, and never less than before. A probe that found nothing costs one refusal (one
 *   per HOLD_REQUESTS: about 2 %); one that found more is followed by the next soon.
 * - `Retry-After` pauses every sender, whoever asked: requests knocking while the platform said
 *   "wait" are refused for nothing.
 */

export interface RateLawOptions {
  /** `tuzhan.ratePerSecond`: the most it ever sends a second; Infinity for none. */
  ceiling: number;
}

/** What an answer says about the request rate. */
export interface RateSignal {
  /** HTTP 429. */
  refused: boolean;
  /** The answer's Retry-After, in ms (a 429's or a 503's). */
  retryAfterMs?: number;
}

/** A request as the law saw it leave; give it back with its answer. */
export interface RateTicket {
  readonly sentAt: number;
  accepted: boolean | undefined;
}

/** A move of the learned rate (the log says why). */
export interface RateChange {
  /** Requests per second allowed before and after (Infinity: none). */
  from: number;
  to: number;
  why: 'first refusal' | 'quota fell' | 'probe refused' | 'probe';
}

/** Keep this share under the estimate. */
export const MARGIN = 0.02;
/** The pause a 429 without Retry-After asks for. */
export const DEFAULT_PAUSE_MS = 1000;
/** Time and requests at the estimate before a probe (a quarter of it after a rough estimate). */
export const HOLD_MS = 10_000;
export const HOLD_REQUESTS = 40;
/** The first step of a probe above the estimate, the least, and the most. */
export const FIRST_STEP = 0.1;
const MIN_STEP = 0.05;
const MAX_STEP = 1;
/** Time and requests one probe step lasts before it counts as gone through. */
export const STEP_MS = 1000;
const STEP_REQUESTS = 3;
/** A refusal under the estimate lowers it by this share at least, and by this at most. */
const FALL_LEAST = 2 * MARGIN;
const FALL_MOST = 0.5;
/** A second's burst: what a quota lets through from a standstill, in seconds of its rate. */
const BURST_S = 1;
/** A phase counts when at least this share of the pace was used. */
const KEPT = 0.7;
/** Below this a rate is not worth keeping: one request per 10 s is always allowed. */
const MIN_RATE = 0.1;
/** Above this the quota, if any, is far beyond what is sent: nothing is limited. */
const FREE_ABOVE = 10_000;
/** How long sent requests are remembered (the estimates look a few seconds back; a probe lasts a few). */
const MEMORY_MS = 10_000;

export class RateLaw {
  /** The learned quota (requests/s): where refusals happen; undefined before the first. */
  estimate: number | undefined;
  /** Requests refused (HTTP 429) so far. */
  refusals = 0;
  /** No request leaves before this (a Retry-After). */
  pausedUntil = 0;

  private lastStart = -Infinity;
  /** Refusals of requests sent before this were answers to an older rate: already reacted to. */
  private reactedAt = -Infinity;
  /** The current phase (a hold, or one step of a probe): since when, and requests sent since. */
  private phaseSince = 0;
  private sentInPhase = 0;
  /** The probe under way: the estimate before it, when it began, its current step. */
  private probe: { good: number; since: number; step: number } | undefined;
  /** The next probe's first step. */
  private nextStep = FIRST_STEP;
  /** Probes in a row that found nothing (the hold doubles after two); -1 after one that found more. */
  private fruitless = 0;
  /** The first refusal's window, while answers of requests sent in it still arrive. */
  private first: { from: number; to: number } | undefined;
  /** Requests sent in the last MEMORY_MS, oldest first. */
  private readonly recent: RateTicket[] = [];

  constructor(private readonly o: RateLawOptions) {}

  /** Requests per second allowed now (Infinity: none). */
  get rate(): number {
    return Math.min(this.o.ceiling, this.estimate === undefined ? Infinity : this.estimate * (1 - MARGIN));
  }

  /** The earliest time the next request may leave. */
  nextStartAt(now: number): number {
    const rate = this.rate;
    const spaced = rate === Infinity ? -Infinity : this.lastStart + 1000 / rate;
    return Math.max(now, this.pausedUntil, spaced);
  }

  /** A request leaves now. Returns a move of the rate, if this start began or advanced a probe. */
  started(now: number): { ticket: RateTicket; change?: RateChange } {
    const from = this.rate;
    const why = this.step(now);
    this.lastStart = now;
    this.sentInPhase += 1;
    const ticket: RateTicket = { sentAt: now, accepted: undefined };
    this.recent.push(ticket);
    while ((this.recent[0] as RateTicket).sentAt < now - MEMORY_MS) this.recent.shift();
    return { ticket, change: why ? { from, to: this.rate, why } : undefined };
  }

  /** The platform answered the request of `t`. Returns a move of the rate, if any. */
  answered(t: RateTicket, signal: RateSignal, now: number): RateChange | undefined {
    t.accepted = !signal.refused;
    const first = this.first;
    if (first && t.accepted && t.sentAt >= first.from && t.sentAt <= first.to)
      this.estimate = Math.max(this.estimate ?? 0, this.acceptedBetween(first.from, first.to));
    const pause = signal.retryAfterMs ?? (signal.refused ? DEFAULT_PAUSE_MS : 0);
    if (pause > 0) this.pausedUntil = Math.max(this.pausedUntil, now + pause);
    if (!signal.refused) return undefined;
    this.refusals += 1;
    if (t.sentAt < this.reactedAt) return undefined;
    return this.react(t, now);
  }

  private react(t: RateTicket, now: number): RateChange {
    const from = this.rate;
    let why: RateChange['why'];
    this.first = undefined;
    if (this.estimate === undefined) {
      // Requests sent with this one may still be answered: their acceptances count too.
      this.first = { from: t.sentAt - 1000, to: t.sentAt };
      this.estimate = Math.max(1, this.acceptedBetween(t.sentAt - 1000, t.sentAt));
      // A rough estimate: probe soon.
      this.fruitless = -1;
      why = 'first refusal';
    } else if (this.probe) {
      // Back to what the platform surely took during the probe, and never less than before.
      const p = this.probe;
      this.estimate = Math.max(p.good, Math.min(this.estimate, this.surelyTaken(p.since, t.sentAt)));
      const foundMore = this.estimate > p.good * (1 + MIN_STEP);
      // One that found more goes on soon, with the same step; one that found nothing waits longer.
      this.fruitless = foundMore ? -1 : this.fruitless + 1;
      this.nextStep = foundMore ? p.step : Math.max(MIN_STEP, p.step / 2);
      why = 'probe refused';
    } else {
      const took = this.acceptedBetween(t.sentAt - 2000, t.sentAt) / 2;
      const e = this.estimate;
      this.estimate = Math.max(MIN_RATE, e * (1 - FALL_MOST), Math.min(e * (1 - FALL_LEAST), took));
      this.fruitless = 0;
      this.nextStep = FIRST_STEP;
      why = 'quota fell';
    }
    this.probe = undefined;
    this.reactedAt = now;
    this.phase(Math.max(now, this.pausedUntil));
    return { from, to: this.rate, why };
  }

  /** Moves between holding and probing, as a request leaves; says why the rate moved, if it did. */
  private step(now: number): RateChange['why'] | undefined {
    if (this.estimate === undefined || this.rate >= this.o.ceiling) return undefined;
    const elapsed = now - this.phaseSince;
    // Only a pace mostly kept says anything about the quota (an idle bridge learns nothing): a
    // phase in which the requests sent fell well short of it starts over.
    const kept = (): boolean => {
      if (this.sentInPhase >= KEPT * ((this.rate * elapsed) / 1000)) return true;
      this.phase(now);
      return false;
    };
    if (this.probe) {
      if (elapsed < STEP_MS || this.sentInPhase < STEP_REQUESTS || !kept()) return undefined;
      this.probe.step = Math.min(MAX_STEP, this.probe.step * 2);
      this.estimate *= 1 + this.probe.step;
      if (this.estimate > FREE_ABOVE) {
        this.estimate = undefined;
        this.probe = undefined;
      }
      this.phase(now);
      return 'probe';
    }
    const k = this.fruitless < 0 ? 0.25 : 1;
    if (elapsed < HOLD_MS * k || this.sentInPhase < HOLD_REQUESTS * k || !kept()) return undefined;
    this.probe = { good: this.estimate, since: now, step: this.nextStep };
    this.estimate *= 1 + this.nextStep;
    this.phase(now);
    return 'probe';
  }

  private phase(since: number): void {
    this.phaseSince = since;
    this.sentInPhase = 0;
  }

  /**
   * A rate the platform surely sustains, from what it accepted of the requests sent in the last
   * seconds before `to` (and after `since`): over any span, a quota takes its rate times the span
   * plus at most a second's burst. The best such bound over a few spans.
   */
  private surelyTaken(since: number, to: number): number {
    let best = 0;
    for (const span of [2000, 3000, 5000, to - since]) {
      const from = Math.max(since, to - span);
      if (to - from < 1000) continue;
      best = Math.max(best, this.acceptedBetween(from, to) / ((to - from) / 1000 + BURST_S));
    }
    return best;
  }

  /** Requests sent in [from, to] that the platform accepted. */
  private acceptedBetween(from: number, to: number): number {
    let n = 0;
    for (const s of this.recent) if (s.sentAt >= from && s.sentAt <= to && s.accepted === true) n += 1;
    return n;
  }
}
