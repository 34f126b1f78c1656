import { describe, expect, it } from 'vitest';
import { planFaults, rng, type FaultKind } from '../../soak/schedule.js';

describe('the soak schedule', () => {
  it('is a function of the seed: the same seed plans the same faults, another seed others', () => {
    expect(planFaults(42, 1800)).toEqual(planFaults(42, 1800));
    expect(planFaults(43, 1800).events).not.toEqual(planFaults(42, 1800).events);
    const a = rng(7);
    const b = rng(7);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    // Not stuck in a corner of [0, 1).
    expect(Math.min(...xs)).toBeLessThan(0.01);
    expect(Math.max(...xs)).toBeGreaterThan(0.99);
  });

  it('kills the bridge process only in the process phase, and ends every fault before the run does', () => {
    for (const [seed, seconds] of [
      [1, 120],
      [2, 600],
      [3, 1800],
      [4, 3600],
    ] as const) {
      const plan = planFaults(seed, seconds);
      expect(plan.processPhaseSeconds).toBe(Math.min(seconds / 3, 300));
      let last = 0;
      for (const { at, fault } of plan.events) {
        expect(at).toBeGreaterThanOrEqual(Math.max(10, last));
        last = at;
        if (fault.kind === 'sigkill' || fault.kind === 'sigterm')
          expect(at).toBeLessThan(plan.processPhaseSeconds);
        if ('seconds' in fault) {
          expect(fault.seconds).toBeGreaterThanOrEqual(1);
          expect(at + fault.seconds).toBeLessThanOrEqual(seconds - 10 + 0.05);
        }
      }
      expect(last).toBeLessThan(seconds - 10);
    }
  });

  it('runs every kind of fault over a half-hour run', () => {
    const kinds = new Set<FaultKind>();
    for (const seed of [11, 12, 13]) for (const e of planFaults(seed, 1800).events) kinds.add(e.fault.kind);
    expect([...kinds].sort()).toEqual(
      [
        'drop-connections',
        'drop-walsender',
        'errors',
        'lost-answers',
        'pg-crash',
        'pg-restart',
        'sigkill',
        'sigterm',
        'slow',
        'throttle',
        'timeouts',
      ].sort(),
    );
  });
});
