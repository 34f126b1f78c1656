/**
 * The limiter every request to the platform passes (src/tuzhan/limiter.ts) on fake timers: the
 * concurrency, a Retry-After that holds every waiting sender, aborts, what it reports; and the
 * concurrency law (src/tuzhan/concurrency-law.ts) window by window.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConcurrencyLaw, WINDOW_MS } from '../../src/tuzhan/concurrency-law.js';
import { Limiter, type LimiterChange, type LimiterState, type Permit } from '../../src/tuzhan/limiter.js';

const aborted = () => new Error('aborted');

describe('Limiter', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  /** Asks for a permit; `got` holds it once given. */
  function ask(
    l: Limiter,
    signal?: AbortSignal,
  ): { got: Permit | undefined; err: unknown; p: Promise<void> } {
    const r: { got: Permit | undefined; err: unknown; p: Promise<void> } = {
      got: undefined,
      err: undefined,
      p: Promise.resolve(),
    };
    r.p = l.acquire(signal, aborted).then(
      (p) => void (r.got = p),
      (e: unknown) => void (r.err = e),
    );
    return r;
  }

  it('lets at most `concurrency` requests out, the next as one is answered', async () => {
    const l = new Limiter({ ratePerSecond: 0, concurrency: 2 });
    const asks = [ask(l), ask(l), ask(l)];
    await vi.advanceTimersByTimeAsync(0);
    expect(asks.map((a) => a.got !== undefined)).toEqual([true, true, false]);
    asks[0]!.got!.done({ kind: 'answered' });
    await vi.advanceTimersByTimeAsync(0);
    expect(asks[2]!.got).toBeDefined();
    // A request that was never sent gives its place back too.
    const fourth = ask(l);
    asks[1]!.got!.cancel();
    await vi.advanceTimersByTimeAsync(0);
    expect(fourth.got).toBeDefined();
  });

  it('holds every waiting sender for a Retry-After, whoever was refused', async () => {
    const l = new Limiter({ ratePerSecond: 0, concurrency: 4 });
    const first = ask(l);
    await vi.advanceTimersByTimeAsync(0);
    first.got!.done({ kind: 'refused', retryAfterMs: 3000 });
    const others = [ask(l), ask(l), ask(l)];
    await vi.advanceTimersByTimeAsync(2990);
    expect(others.filter((a) => a.got)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(20);
    // The pause is over: they leave, paced under what the platform took (one request a second).
    expect(others.filter((a) => a.got).length).toBeGreaterThanOrEqual(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(others.filter((a) => a.got)).toHaveLength(3);
    // A 503's Retry-After holds them as well.
    for (const a of others) a.got!.done({ kind: 'failed', retryAfterMs: 2000 });
    const late = ask(l);
    await vi.advanceTimersByTimeAsync(1900);
    expect(late.got).toBeUndefined();
    await vi.advanceTimersByTimeAsync(2000);
    expect(late.got).toBeDefined();
  });

  it('keeps fewer requests in flight after 5xx answers or timeouts, not after refusals', async () => {
    const l = new Limiter({ ratePerSecond: 0, concurrency: 4 });
    const changes: Array<LimiterChange | undefined> = [];
    l.subscribe((_, c) => void changes.push(c));
    const a = ask(l);
    await vi.advanceTimersByTimeAsync(0);
    a.got!.done({ kind: 'failed' });
    expect(l.state().concurrency).toBe(2);
    expect(changes).toEqual([{ kind: 'concurrency', change: { from: 4, to: 2, why: 'failures' } }]);
    const asks = [ask(l), ask(l), ask(l)];
    await vi.advanceTimersByTimeAsync(0);
    expect(asks.filter((x) => x.got)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1500);
    asks[0]!.got!.done({ kind: 'refused' });
    expect(l.state().concurrency).toBe(2);
  });

  it('paces evenly under tuzhan.ratePerSecond', async () => {
    const l = new Limiter({ ratePerSecond: 4, concurrency: 10 });
    const starts: number[] = [];
    for (let i = 0; i < 9; i++)
      void l.acquire(undefined, aborted).then((p) => {
        starts.push(Date.now());
        p.done({ kind: 'answered' });
      });
    await vi.advanceTimersByTimeAsync(2000);
    expect(starts).toHaveLength(9);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(250);
  });

  it('gives up a wait when its signal aborts, and on close', async () => {
    const l = new Limiter({ ratePerSecond: 0, concurrency: 1 });
    const busy = ask(l);
    const ac = new AbortController();
    const waiting = ask(l, ac.signal);
    const other = ask(l);
    await vi.advanceTimersByTimeAsync(0);
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(waiting.err).toEqual(aborted());
    busy.got!.done({ kind: 'answered' });
    await vi.advanceTimersByTimeAsync(0);
    expect(other.got).toBeDefined();
    const last = ask(l);
    l.close(new Error('closed'));
    await vi.advanceTimersByTimeAsync(0);
    expect((last.err as Error).message).toBe('closed');
  });

  it('reports what it learned, and each move', async () => {
    const l = new Limiter({ ratePerSecond: 0, concurrency: 4 });
    const seen: Array<[LimiterState, LimiterChange | undefined]> = [];
    l.subscribe((s, c) => void seen.push([s, c]));
    expect(l.state()).toMatchObject({ rate: null, quota: null, ceiling: null, concurrency: 4, refused: 0 });
    const asks = [ask(l), ask(l), ask(l), ask(l)];
    await vi.advanceTimersByTimeAsync(0);
    for (const a of asks.slice(0, 3)) a.got!.done({ kind: 'answered' });
    asks[3]!.got!.done({ kind: 'refused', retryAfterMs: 1000 });
    const [state, change] = seen[seen.length - 1]!;
    expect(change).toEqual({
      kind: 'rate',
      change: { from: Infinity, to: state.rate, why: 'first refusal' },
    });
    expect(state).toMatchObject({ quota: 3, refused: 1, concurrency: 4 });
    expect(state.rate).toBeCloseTo(3 * 0.98, 6);
    expect(state.pausedUntil).toBe(new Date(Date.now() + 1000).toISOString());
  });
});

describe('ConcurrencyLaw', () => {
  it('halves after a window with a failure, and climbs back one a window while every slot is used', () => {
    const law = new ConcurrencyLaw(8);
    let t = 0;
    const window = (failed: boolean, latencyMs = 20, full = true) => {
      if (full) law.started(law.limit);
      t += WINDOW_MS;
      return law.answered(failed, latencyMs, t);
    };
    window(false);
    expect(window(true)).toEqual({ from: 8, to: 4, why: 'failures' });
    expect(window(true)?.to).toBe(2);
    expect(window(false)).toEqual({ from: 2, to: 3, why: 'recovered' });
    // Not every slot used: more slots would not help.
    expect(window(false, 20, false)).toBeUndefined();
    expect(law.limit).toBe(3);
    for (let i = 0; i < 10; i++) window(false);
    expect(law.limit).toBe(8);
  });

  it('takes a quarter off when latency jumps well above its usual, then gets used to it', () => {
    const law = new ConcurrencyLaw(4);
    let t = 0;
    const window = (latencyMs: number) => {
      law.started(law.limit);
      t += WINDOW_MS;
      return law.answered(false, latencyMs, t);
    };
    for (let i = 0; i < 5; i++) window(20);
    expect(window(2000)).toEqual({ from: 4, to: 3, why: 'latency' });
    // A slower platform becomes the usual: the limit grows back.
    for (let i = 0; i < 40; i++) window(2000);
    expect(law.limit).toBe(4);
    // Noise around the usual moves nothing.
    expect(window(2100)).toBeUndefined();
  });
});
