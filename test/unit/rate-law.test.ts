/**
 * The rate law (src/tuzhan/rate-law.ts) against a platform's quota in simulated time
 * (test/helpers/rate-sim.ts): the share of the quota used and of requests refused come from the
 * platform model's own counts, not from the law. Then the law's rules one by one, on a fake clock.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_PAUSE_MS, HOLD_MS, HOLD_REQUESTS, RateLaw } from '../../src/tuzhan/rate-law.js';
import { simulate, within } from '../helpers/rate-sim.js';

describe('rate law under a steady quota', () => {
  // The benchmark's shape: 400 requests (20,000 rows in 50-row requests), four senders.
  it.each([2, 5, 20])(
    'uses at least 95 per cent of a quota of %i a second, with at most 5 per cent refused',
    (quota) => {
      for (const seed of [1, 2, 3]) {
        const r = simulate({ model: 'bucket', quota, requests: 400, seed });
        expect(r.accepted).toHaveLength(400);
        const share = r.accepted.length / (r.endMs / 1000) / quota;
        const refused = r.refused.length / (r.refused.length + r.accepted.length);
        expect(share).toBeGreaterThanOrEqual(0.95);
        expect(refused).toBeLessThanOrEqual(0.05);
      }
    },
  );

  it('stays polite with a quota counted per clock second (no burst): at most 5 % refused', () => {
    for (const quota of [2, 5, 20]) {
      const r = simulate({ model: 'window', quota, requests: 400 });
      expect(r.refused.length / (r.refused.length + 400)).toBeLessThanOrEqual(0.05);
      expect(r.accepted.length / (r.endMs / 1000) / quota).toBeGreaterThanOrEqual(0.85);
    }
  });

  it('never sends faster than tuzhan.ratePerSecond, and refuses nothing under a higher quota', () => {
    const r = simulate({ model: 'bucket', quota: 50, ceiling: 10, durationMs: 60_000 });
    expect(r.refused).toHaveLength(0);
    for (let t = 0; t < 59_000; t += 1000) expect(within(r.accepted, t, t + 1000)).toBeLessThanOrEqual(11);
    expect(r.accepted.length).toBeGreaterThan(590);
  });
});

describe('rate law when the quota changes', () => {
  it('stops being refused within a few seconds when the quota falls from 5 to 2', () => {
    const fall = 60_000;
    const r = simulate({ model: 'bucket', quota: 5, durationMs: 120_000, changes: [[fall, 2]] });
    // Refusals follow the fall for a few seconds, then none until the next probe (one per hold).
    const soon = within(r.refused, fall, fall + 5000);
    expect(soon).toBeGreaterThan(0);
    expect(soon).toBeLessThanOrEqual(4);
    expect(within(r.refused, fall + 5000, fall + 20_000)).toBe(0);
    // ... and the lower quota is still used: at least 90 % of it over the next minute.
    expect(within(r.accepted, fall + 5000, 120_000) / 55 / 2).toBeGreaterThanOrEqual(0.9);
  });

  it('follows a quota that rises from 5 to 10 within about ten seconds of its first probe', () => {
    const rise = 60_000;
    const r = simulate({ model: 'bucket', quota: 5, durationMs: 120_000, changes: [[rise, 10]] });
    // The first two-second span after the rise in which at least 9 requests a second were taken.
    let followed: number | undefined;
    for (let t = rise; t < 118_000 && followed === undefined; t += 250)
      if (within(r.accepted, t, t + 2000) >= 18) followed = t + 2000 - rise;
    // A probe comes at most one hold (10 s) after the last; then a few seconds of steps.
    expect(followed).toBeDefined();
    expect(followed as number).toBeLessThanOrEqual(HOLD_MS + 10_000);
    // From then on it keeps to the new quota, politely.
    const after = rise + (followed as number);
    expect(within(r.accepted, after, 120_000) / ((120_000 - after) / 1000) / 10).toBeGreaterThanOrEqual(0.9);
    expect(within(r.refused, rise, 120_000)).toBeLessThanOrEqual(8);
  });
});

describe('rate law rules', () => {
  const refused = { refused: true };
  const ok = { refused: false };

  it('limits nothing before the first refusal', () => {
    const law = new RateLaw({ ceiling: Infinity });
    for (let i = 0; i < 1000; i++) {
      expect(law.nextStartAt(5)).toBe(5);
      law.answered(law.started(5).ticket, ok, 6);
    }
    expect(law.rate).toBe(Infinity);
  });

  it('learns from the first refusal what the platform took in the second before it', () => {
    const law = new RateLaw({ ceiling: Infinity });
    const tickets = Array.from({ length: 12 }, (_, i) => law.started(100 + i * 50).ticket);
    // The platform took the first 7, refused the 8th; the rest were in flight.
    tickets.slice(0, 7).forEach((t) => law.answered(t, ok, 800));
    const change = law.answered(tickets[7]!, { refused: true, retryAfterMs: 1000 }, 900);
    expect(change).toMatchObject({ from: Infinity, why: 'first refusal' });
    expect(law.estimate).toBe(7);
    // The refusals of requests that left before the reaction are old news.
    tickets.slice(8).forEach((t) => expect(law.answered(t, refused, 950)).toBeUndefined());
    expect(law.estimate).toBe(7);
    expect(law.refusals).toBe(5);
    // Paced evenly just under it, once the pause is over (the last refusal's: 950 + 1 s).
    expect(law.nextStartAt(1000)).toBe(1950);
    law.started(1950);
    expect(law.nextStartAt(1950)).toBeCloseTo(1950 + 1000 / law.rate, 6);
    expect(law.rate).toBeGreaterThan(6.8);
    expect(law.rate).toBeLessThan(7);
  });

  it('pauses every request for a Retry-After, from a refusal or a 503', () => {
    const law = new RateLaw({ ceiling: Infinity });
    law.answered(law.started(0).ticket, { refused: false, retryAfterMs: 3000 }, 10);
    expect(law.nextStartAt(20)).toBe(3010);
    expect(law.estimate).toBeUndefined(); // a 503's Retry-After says nothing about the quota
    law.answered(law.started(3010).ticket, { refused: true, retryAfterMs: 5000 }, 3020);
    expect(law.nextStartAt(3030)).toBe(8020);
    // Without Retry-After a refusal still pauses a little.
    const other = new RateLaw({ ceiling: Infinity });
    other.answered(other.started(0).ticket, refused, 10);
    expect(other.nextStartAt(10)).toBeGreaterThanOrEqual(10 + DEFAULT_PAUSE_MS);
  });

  it('probes only after a hold at the pace actually kept: an idle bridge learns nothing', () => {
    const law = new RateLaw({ ceiling: Infinity });
    law.answered(law.started(0).ticket, refused, 10); // estimate 1 a second (nothing taken before)
    const base = law.rate;
    // One request every ten seconds: far under the pace, for ten minutes.
    for (let t = 2000; t < 600_000; t += 10_000) law.answered(law.started(t).ticket, ok, t + 10);
    expect(law.rate).toBe(base);
    // Close to the pace (80 % of it: a bridge's demand comes in bursts), it probes once the hold
    // is over.
    let t = 600_000;
    const changes: string[] = [];
    for (let i = 0; i < HOLD_REQUESTS + 5; i++, t = law.nextStartAt(t) + 250 / law.rate) {
      const { ticket, change } = law.started(t);
      if (change) changes.push(change.why);
      law.answered(ticket, ok, t + 10);
    }
    expect(changes[0]).toBe('probe');
    expect(law.rate).toBeGreaterThan(base);
  });

  it('returns from a refused probe to a rate no lower than before it', () => {
    const law = new RateLaw({ ceiling: Infinity });
    const first = Array.from({ length: 5 }, (_, i) => law.started(i).ticket);
    first.slice(0, 4).forEach((tk) => law.answered(tk, ok, 10));
    law.answered(first[4]!, refused, 10);
    const before = law.estimate as number;
    let t = law.nextStartAt(10);
    let probing = false;
    while (!probing) {
      const s = law.started(t);
      probing = s.change?.why === 'probe';
      law.answered(s.ticket, ok, t + 10);
      t = law.nextStartAt(t);
    }
    const change = law.answered(law.started(t).ticket, refused, t + 10);
    expect(change?.why).toBe('probe refused');
    expect(law.estimate).toBeGreaterThanOrEqual(before);
  });
});
