import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, sleep } from '../../src/util/backoff.js';

describe('backoffDelay', () => {
  it('doubles the cap per attempt from baseMs, up to maxMs', () => {
    const top = { baseMs: 100, maxMs: 5000, random: () => 1 };
    expect([1, 2, 3, 4, 5, 6, 7, 10].map((n) => backoffDelay(n, top))).toEqual([
      100, 200, 400, 800, 1600, 3200, 5000, 5000,
    ]);
    const bottom = { baseMs: 100, maxMs: 5000, random: () => 0 };
    expect([1, 2, 3, 7].map((n) => backoffDelay(n, bottom))).toEqual([50, 100, 200, 2500]);
  });

  it('treats attempt 0 or below like the first retry', () => {
    expect(backoffDelay(0, { baseMs: 100, maxMs: 1000, random: () => 1 })).toBe(100);
    expect(backoffDelay(-3, { baseMs: 100, maxMs: 1000, random: () => 1 })).toBe(100);
  });

  it('stays within [cap/2, cap] for any attempt and random value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseMs, maxMs, r) => {
          const cap = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
          const d = backoffDelay(attempt, { baseMs, maxMs, random: () => r });
          expect(d).toBeGreaterThanOrEqual(Math.floor(cap / 2));
          expect(d).toBeLessThanOrEqual(Math.ceil(cap));
        },
      ),
    );
  });

  it('uses Math.random without an injected source', () => {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(3, { baseMs: 100, maxMs: 10_000 });
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
  });
});

describe('sleep', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves after the delay', async () => {
    vi.useFakeTimers();
    let done = false;
    void sleep(1000).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });

  it('resolves early, without error, when the signal aborts', async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    let done = false;
    void sleep(60_000, ac.signal).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(false);
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('resolves at once when the signal is already aborted', async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    ac.abort();
    let done = false;
    void sleep(60_000, ac.signal).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });
});
