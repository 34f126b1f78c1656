import { describe, expect, it } from 'vitest';
import { createBridgeEvents } from '../../src/domain/events.js';
import { Metrics } from '../../src/ops/metrics.js';

const LAG = /^tuzhan_cdc_nodejs_eventloop_lag_(?:(\w+)_)?seconds (\S+)$/gm;

/** The event-loop samples of a scrape, by statistic ('' for the lag itself). */
function samples(text: string): Map<string, string> {
  return new Map([...text.matchAll(LAG)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

describe('event-loop metrics', () => {
  it('serve no sample before the first measurement, then finite values', async () => {
    const metrics = new Metrics(createBridgeEvents());
    const first = await metrics.registry.metrics();
    // Right after start: the families are described, but no value stands in for a missing sample
    // (prom-client's own served 9223372036.854776 as the minimum and NaN as the mean).
    expect(first).toContain('# TYPE tuzhan_cdc_nodejs_eventloop_lag_min_seconds gauge');
    expect(samples(first)).toEqual(new Map());
    expect(first).not.toMatch(/\bNaN\b|9223372036/);

    let later = new Map<string, string>();
    for (let i = 0; i < 100 && later.size < 8; i++) {
      await new Promise((r) => setTimeout(r, 20));
      later = new Map([...later, ...samples(await metrics.registry.metrics())]);
    }
    expect([...later.keys()].sort()).toEqual(['', 'max', 'mean', 'min', 'p50', 'p90', 'p99', 'stddev']);
    for (const [stat, value] of later) {
      const n = Number(value);
      expect(Number.isFinite(n), `${stat} ${value}`).toBe(true);
      // A delay, in seconds: never negative, and nowhere near the 2^63 ns of an empty histogram.
      expect(n, stat).toBeGreaterThanOrEqual(0);
      expect(n, stat).toBeLessThan(60);
    }

    // Scrapes closer together than the sampling interval find no new sample: they keep the last
    // values instead of an empty histogram's.
    const again = [await metrics.registry.metrics(), await metrics.registry.metrics()].join('\n');
    expect(again).not.toMatch(/\bNaN\b|9223372036/);
  });
});
