/**
 * The demo's 429 moment: a third of the way through, the simulator starts answering past a quota of
 * QUOTA requests a second (HTTP 429 with Retry-After), the bridge learns it from the refusals and
 * keeps just under it, and the demo says so once the refusals settled; two thirds of the way
 * through (never before it said so) the quota is lifted again, and the bridge finds out by probing.
 */
import type { BridgeEvents, BridgeEventMap } from '../domain/events.js';
import type { Simulator } from '../simulator/server.js';

/** Requests a second the simulator takes during the moment: below what the demo's bursts ask. */
export const QUOTA = 4;
/** What the bridge learned is told this long after its first refusal: the estimate settles. */
const SETTLE_MS = 3000;

type RateEvent = BridgeEventMap['requestRate'][0];

const perSecond = (r: number | null): string => (r === null ? 'no limit' : `${r.toFixed(2)}/s`);

export class QuotaMoment {
  private readonly timers: NodeJS.Timeout[] = [];
  private last: RateEvent | undefined;
  private refusedFirst = false;
  private told = false;
  private imposed = false;
  private lifted = false;
  private timeIsUp = false;
  private readonly onRate = (e: RateEvent): void => {
    this.last = e;
    if (this.refusedFirst || !this.imposed || e.rate === null || e.change?.what !== 'rate') return;
    this.refusedFirst = true;
    this.timers.push(setTimeout(() => this.tell(), SETTLE_MS));
  };

  constructor(
    private readonly sim: Simulator,
    private readonly events: BridgeEvents,
    private readonly say: (line: string) => void,
    private readonly durationMs: number,
  ) {}

  start(): void {
    this.events.on('requestRate', this.onRate);
    const impose = (): void => {
      this.imposed = true;
      this.sim.setFaults({ rateLimit: QUOTA });
      this.say(
        `  simulator: from now on a quota of ${QUOTA} batchAdd requests a second (HTTP 429 with Retry-After past it)`,
      );
    };
    const timeUp = (): void => {
      this.timeIsUp = true;
      if (this.told) this.lift();
    };
    this.timers.push(
      setTimeout(impose, Math.max(1000, this.durationMs / 3)),
      setTimeout(timeUp, Math.max(2000, (2 * this.durationMs) / 3)),
    );
  }

  /** What the bridge learned from the refusals so far. */
  private tell(): void {
    const e = this.last as RateEvent;
    this.told = true;
    this.say(
      `  bridge: ${e.refused} request${e.refused === 1 ? '' : 's'} refused so far; it learned a quota of about ${perSecond(e.quota)} and sends at most ${perSecond(e.rate)}, evenly`,
    );
    if (this.timeIsUp) this.lift();
  }

  /** Lifts the quota (also when the changes end: the backlog must drain at full speed). */
  private lift(): void {
    if (this.lifted || !this.imposed) return;
    this.lifted = true;
    this.sim.setFaults({ rateLimit: 0 });
    this.say(
      `  simulator: quota lifted (${this.last?.refused ?? 0} requests refused in all); the bridge finds out by probing`,
    );
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.events.off('requestRate', this.onRate);
    // A short demo ends before the estimate settled: what was learned so far is still the moment's point.
    if (this.refusedFirst && !this.told) this.tell();
    this.lift();
  }
}
