import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createBridgeEvents } from '../../src/domain/events.js';
import { attachEventLogger } from '../../src/ops/event-log.js';
import { captureLogger } from '../helpers/capture-logger.js';

const request = (outcome: 'ok' | 'partial' | 'rejected' | 'transient' | 'auth') => ({
  source: 'profiles',
  optType: 'update' as const,
  rows: 500,
  outcome,
  durationMs: 40,
});

describe('the event log', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('logs each request at debug and a summary at info once a minute, none while idle', () => {
    const events = createBridgeEvents();
    const log = captureLogger('debug');
    const stop = attachEventLogger(events, log.logger);
    // A snapshot: hundreds of requests a minute.
    for (let i = 0; i < 300; i++) {
      events.emit('request', request('ok'));
      events.emit('rows', { source: 'profiles', op: 'update', status: 'synced', count: 499 });
      events.emit('rows', { source: 'profiles', op: 'update', status: 'failed', count: 1 });
    }
    const atInfo = () => log.lines().filter((l) => (l.level as number) >= 30);
    expect(atInfo()).toEqual([]);
    expect(log.lines().filter((l) => l.msg === 'batch sent')).toHaveLength(300);
    expect(log.lines().every((l) => l.level === 20)).toBe(true);

    vi.advanceTimersByTime(60_000);
    expect(atInfo()).toHaveLength(1);
    expect(atInfo()[0]).toMatchObject({
      level: 30,
      requests: 300,
      rows: { synced: 149_700, failed: 300 },
      sources: ['profiles'],
      msg: 'sent 300 requests in the last 60 s; rows: 149700 synced, 300 failed',
    });
    // Nothing happened since: no line.
    vi.advanceTimersByTime(120_000);
    expect(atInfo()).toHaveLength(1);
    stop();
  });

  it('warns of a whole-batch rejection; transient and credential failures stay at debug (the client logs them)', () => {
    const events = createBridgeEvents();
    const log = captureLogger('debug');
    const stop = attachEventLogger(events, log.logger, { summaryIntervalMs: 0 });
    events.emit('request', request('rejected'));
    events.emit('request', request('transient'));
    events.emit('request', request('auth'));
    events.emit('retry', { source: 'profiles', reason: 'transient', attempt: 1, delayMs: 200 });
    expect(log.lines().map((l) => [l.level, l.msg])).toEqual([
      [40, 'batch rejected by the platform'],
      [20, 'batch not accepted'],
      [20, 'batch not accepted'],
      [20, 'request will be retried'],
    ]);
    stop();
  });
});
