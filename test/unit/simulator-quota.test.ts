/**
 * The simulator's sustained quota (src/simulator/quota.ts) on an explicit clock: a token bucket of
 * a second's worth, refilled at the rate; a refusal takes no token and says when one is due.
 */
import { describe, expect, it } from 'vitest';
import { Quota } from '../../src/simulator/quota.js';

describe('simulator quota', () => {
  it('takes a second’s worth at once, then N a second; refusals say when to come back', () => {
    const q = new Quota();
    expect([1, 2, 3, 4, 5].map(() => q.take(5, 0).ok)).toEqual([true, true, true, true, true]);
    expect(q.take(5, 0)).toEqual({ ok: false, retryAfterSeconds: 1 });
    // A refusal took nothing: 200 ms later one token is back, not less.
    expect(q.take(5, 200).ok).toBe(true);
    expect(q.take(5, 200).ok).toBe(false);
    // Paced at N a second, nothing is refused, for as long as it lasts.
    let refused = 0;
    for (let t = 400; t < 60_000; t += 200) if (!q.take(5, t).ok) refused += 1;
    expect(refused).toBe(0);
    // Faster than that is refused in proportion: 10 a second for 10 s against 5 a second.
    for (let t = 60_000; t < 70_000; t += 100) if (!q.take(5, t).ok) refused += 1;
    expect(refused).toBeGreaterThanOrEqual(49);
    expect(refused).toBeLessThanOrEqual(51);
  });

  it('follows a new quota at once; 0 is none; a slow quota asks for a longer wait', () => {
    const q = new Quota();
    expect(q.take(0, 0).ok).toBe(true);
    for (let i = 0; i < 100; i++) expect(q.take(0, 1).ok).toBe(true);
    expect(q.take(10, 1000).ok).toBe(true); // a new quota starts full
    for (let i = 0; i < 9; i++) q.take(10, 1000);
    expect(q.take(10, 1000).ok).toBe(false);
    // Lowered to 2 after 100 ms: the token refilled at 10 a second until then, then 2 a second.
    expect(q.take(2, 1100).ok).toBe(true);
    expect(q.take(2, 1100)).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(q.take(2, 1500).ok).toBe(false);
    expect(q.take(2, 1600).ok).toBe(true);
    expect(q.take(0.25, 1600)).toEqual({ ok: false, retryAfterSeconds: 4 });
  });
});
