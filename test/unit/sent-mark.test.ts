/**
 * The sent marks (src/status/sent-mark.ts) against a fake pool: which positions count as never sent,
 * what is stored before requests leave, and that a mark only moves forward. The statements
 * themselves run against PostgreSQL in test/integration/sent-position.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { SentMark, type RetryingQuery } from '../../src/status/sent-mark.js';
import { statusSql } from '../../src/status/sql.js';

const SQL = statusSql('S');

interface Call {
  text: string;
  params: unknown[] | undefined;
}

/** A pool answering the marks it is given and the server position, and logging every query. */
function fakePool(marks: Array<{ source: string; lsn: string; seq: string }> = [], serverLsn = '0/0') {
  const calls: Call[] = [];
  const waits: Array<() => void> = [];
  let holdCovers = false;
  const pool = {
    calls,
    holdCovers(on: boolean) {
      holdCovers = on;
    },
    release() {
      for (const w of waits.splice(0)) w();
    },
    /** Lets the latest held cover finish first. */
    releaseLatest() {
      waits.pop()?.();
    },
    async query(text: string, params?: unknown[]) {
      calls.push({ text, params });
      if (text === SQL.sentPositions) return { rows: marks };
      if (text.includes('pg_current_wal_insert_lsn')) return { rows: [{ now: serverLsn }] };
      if (text === SQL.coverSent && holdCovers) await new Promise<void>((r) => waits.push(r));
      return { rows: [] };
    },
  };
  return pool;
}

const retried: string[] = [];
const withRetry: RetryingQuery = (what, fn) => {
  retried.push(what);
  return fn();
};

describe('SentMark', () => {
  it('without a mark every change is fresh; with one, only changes after it', async () => {
    const pool = fakePool([{ source: 'a', lsn: '0/10', seq: '5' }]);
    const m = new SentMark(pool as never, 'S', 'slot', withRetry);
    expect(m.isFresh('a', 0n, 0)).toBe(true);
    await m.load(['a'], false);
    expect(pool.calls[0]).toEqual({ text: SQL.sentPositions, params: ['slot'] });
    expect(m.isFresh('a', 0x10n, 5)).toBe(false);
    expect(m.isFresh('a', 0x10n, 4)).toBe(false);
    expect(m.isFresh('a', 0x10n, 6)).toBe(true);
    expect(m.isFresh('a', 0xfn, 1000)).toBe(false);
    expect(m.isFresh('a', 0x11n, 0)).toBe(true);
    // Another source has no mark: nothing of it was sent.
    expect(m.isFresh('b', 1n, 0)).toBe(true);
    expect(m.isFresh('b', 0n, 0)).toBe(true);
  });

  it('load replaces what it knew; resuming, a source with no mark counts as sent up to the server position', async () => {
    const pool = fakePool([{ source: 'a', lsn: '0/20', seq: '1' }], '0/99');
    const m = new SentMark(pool as never, 'S', 'slot', withRetry);
    await m.load(['a', 'b'], false);
    expect(m.isFresh('b', 0x50n, 0)).toBe(true);
    expect(pool.calls).toHaveLength(1);
    await m.load(['a', 'b'], true);
    expect(pool.calls.map((c) => c.text)).toEqual([
      SQL.sentPositions,
      SQL.sentPositions,
      'SELECT pg_current_wal_insert_lsn()::text AS now',
      SQL.coverSent,
    ]);
    expect(pool.calls[3]?.params).toEqual(['slot', 'b', '0/99', Number.MAX_SAFE_INTEGER]);
    expect(m.isFresh('b', 0x99n, Number.MAX_SAFE_INTEGER - 1)).toBe(false);
    expect(m.isFresh('b', 0x9an, 0)).toBe(true);
    expect(m.isFresh('a', 0x20n, 2)).toBe(true);

    // A later load forgets marks the table no longer has.
    const empty = fakePool([]);
    const m2 = new SentMark(empty as never, 'S', 'slot', withRetry);
    await m2.cover('a', 5n, 0);
    expect(m2.isFresh('a', 5n, 1)).toBe(true);
    expect(m2.isFresh('a', 5n, 0)).toBe(false);
    await m2.load(['a'], false);
    expect(m2.isFresh('a', 5n, 0)).toBe(true);
  });

  it('cover stores the position (with retries) before it counts, and only when it moves the mark', async () => {
    retried.length = 0;
    const pool = fakePool();
    const m = new SentMark(pool as never, 'S', 'slot', withRetry);
    await m.cover('a', 0x30n, 2);
    expect(pool.calls).toEqual([{ text: SQL.coverSent, params: ['slot', 'a', '0/30', 2] }]);
    expect(retried).toEqual(['recording the sent position']);
    expect(m.isFresh('a', 0x30n, 2)).toBe(false);
    // At or before the mark: nothing to store.
    await m.cover('a', 0x30n, 2);
    await m.cover('a', 0x30n, 1);
    await m.cover('a', 0x2fn, 9);
    expect(pool.calls).toHaveLength(1);

    // Not counted until stored: a change is fresh while its cover is on its way.
    pool.holdCovers(true);
    const pending = m.cover('a', 0x40n, 0);
    await new Promise((r) => setImmediate(r));
    expect(m.isFresh('a', 0x40n, 0)).toBe(true);
    pool.release();
    await pending;
    expect(m.isFresh('a', 0x40n, 0)).toBe(false);
  });

  it('never moves a mark back when covers finish out of order', async () => {
    const pool = fakePool();
    const m = new SentMark(pool as never, 'S', 'slot', withRetry);
    pool.holdCovers(true);
    const early = m.cover('a', 0x10n, 0);
    const late = m.cover('a', 0x20n, 0);
    await new Promise((r) => setImmediate(r));
    pool.releaseLatest();
    await late;
    pool.release();
    await early;
    expect(m.isFresh('a', 0x1fn, 0)).toBe(false);
    expect(m.isFresh('a', 0x20n, 1)).toBe(true);
  });

  it('coverThrough marks whole transactions of every source', async () => {
    const pool = fakePool();
    const m = new SentMark(pool as never, 'S', 'slot', withRetry);
    await m.coverThrough(['a', 'b'], 0x70n);
    expect(pool.calls.map((c) => c.params)).toEqual([
      ['slot', 'a', '0/70', Number.MAX_SAFE_INTEGER],
      ['slot', 'b', '0/70', Number.MAX_SAFE_INTEGER],
    ]);
    expect(m.isFresh('a', 0x70n, 1_000_000)).toBe(false);
    expect(m.isFresh('b', 0x71n, 0)).toBe(true);
  });

  it('coverRead: nothing of the source is fresh while rows are read, then covered past the read', async () => {
    const pool = fakePool([], '0/80');
    const m = new SentMark(pool as never, 'S', 'slot', withRetry);
    let during: boolean[] = [];
    const read = await m.coverRead(['a'], async () => {
      // A flush planned while the retry reads: the read may have seen any of these changes.
      during = [m.isFresh('a', 0x90n, 0), m.isFresh('a', 0x10n, 0), m.isFresh('b', 0x10n, 0)];
      // The read itself moves no mark: the cover comes after it, at the server position then.
      expect(pool.calls).toEqual([]);
      return 'rows';
    });
    expect(read).toBe('rows');
    expect(during).toEqual([false, false, true]);
    expect(pool.calls.map((c) => c.text)).toEqual([
      'SELECT pg_current_wal_insert_lsn()::text AS now',
      SQL.coverSent,
    ]);
    expect(pool.calls[1]?.params).toEqual(['slot', 'a', '0/80', Number.MAX_SAFE_INTEGER]);
    expect(m.isFresh('a', 0x80n, 1_000_000)).toBe(false);
    expect(m.isFresh('a', 0x81n, 0)).toBe(true);
  });

  it('coverRead: a failed read covers nothing and leaves the source fresh again', async () => {
    const pool = fakePool([], '0/80');
    const m = new SentMark(pool as never, 'S', 'slot', withRetry);
    await expect(m.coverRead(['a'], () => Promise.reject(new Error('read failed')))).rejects.toThrow(
      'read failed',
    );
    expect(pool.calls).toEqual([]);
    expect(m.isFresh('a', 0x10n, 0)).toBe(true);
  });
});
