/**
 * The log lines about the learned request rate (src/ops/rate-log.ts): one when the quota is first
 * learned, one per move of a quarter or more after a refusal, none for a probe's steps or small
 * moves; the concurrency leaving its maximum and coming back.
 */
import { describe, expect, it } from 'vitest';
import { createBridgeEvents, type BridgeEventMap } from '../../src/domain/events.js';
import { attachRateLogger } from '../../src/ops/rate-log.js';
import { captureLogger } from '../helpers/capture-logger.js';

type RateEvent = BridgeEventMap['requestRate'][0];

describe('rate log', () => {
  it('logs the first refusal, big moves and no limit, not probes or small moves', () => {
    const events = createBridgeEvents();
    const log = captureLogger();
    attachRateLogger(events, log.logger, (err) => {
      throw err;
    });
    const base = { quota: null, concurrency: 4, maxConcurrency: 4, refused: 0 };
    const rate = (r: number | null, why: string, refused: number): RateEvent => ({
      ...base,
      rate: r,
      quota: r === null ? null : r / 0.98,
      refused,
      change: { what: 'rate', from: 0, to: r ?? Infinity, why },
    });
    events.emit('requestRate', { ...base, rate: null }); // the start: no change
    events.emit('requestRate', rate(4.9, 'first refusal', 3));
    events.emit('requestRate', rate(5.4, 'probe', 3));
    events.emit('requestRate', rate(9.8, 'probe', 3));
    events.emit('requestRate', rate(4.95, 'probe refused', 4)); // back near 4.9: not news
    events.emit('requestRate', rate(1.96, 'quota fell', 7));
    events.emit('requestRate', rate(2.2, 'probe refused', 8)); // +12 %: not news
    events.emit('requestRate', rate(9.5, 'probe refused', 9)); // the quota rose
    events.emit('requestRate', rate(null, 'probe', 9));
    const lines = log.lines().map((l) => [l.msg, l.rate, l.refused]);
    expect(lines).toEqual([
      [
        expect.stringMatching(
          /^request rate: 4\.90\/s \(platform quota about 5\.00\/s.*was no limit; first refusal\)$/,
        ),
        4.9,
        3,
      ],
      [expect.stringMatching(/^request rate: 1\.96\/s .*was 4\.90\/s; quota fell\)$/), 1.96, 7],
      [expect.stringMatching(/^request rate: 9\.50\/s .*was 1\.96\/s; probe refused\)$/), 9.5, 9],
      [expect.stringMatching(/^request rate: no limit any more/), null, 9],
    ]);
  });

  it('logs the concurrency leaving its maximum and coming back, once each', () => {
    const events = createBridgeEvents();
    const log = captureLogger();
    attachRateLogger(events, log.logger, () => {});
    const c = (n: number, why: string): RateEvent => ({
      rate: null,
      quota: null,
      concurrency: n,
      maxConcurrency: 4,
      refused: 0,
      change: { what: 'concurrency', from: 0, to: n, why },
    });
    for (const [n, why] of [
      [2, 'failures'],
      [1, 'failures'],
      [2, 'recovered'],
      [3, 'recovered'],
      [4, 'recovered'],
    ] as const)
      events.emit('requestRate', c(n, why));
    expect(log.lines().map((l) => l.msg)).toEqual([
      'requests in flight: at most 2 of 4 (the platform is struggling: failures)',
      'requests in flight: back to 4',
    ]);
  });
});
