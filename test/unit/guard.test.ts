/**
 * The removal guard: a transaction or flush window removing groups from more of a source's rows
 * than its limit is held whole; removals of a transaction whose COMMIT has not been read wait for
 * it (and whatever shares a key or a customer with them waits behind); later changes of a held key
 * are held with it; an operator's approval passes.
 */
import { describe, expect, it } from 'vitest';
import { newEntry, type Entry, type NetEffect } from '../../src/batching/coalesce.js';
import { RemovalGuard, type Planned } from '../../src/batching/guard.js';
import type { RemovalLimit } from '../../src/config/guard.js';
import type { SourceChange } from '../../src/mapping/changes.js';
import type { Holder } from '../../src/domain/types.js';
import { silentLogger } from '../../src/ops/logger.js';

const T = new Date('2024-05-01T00:00:00Z');

let nextLsn = 1n;
type Tx = { committed: boolean; lsn: bigint; hold(): void; release(): void };
const made: Tx[] = [];

/** A transaction as the position tracker makes them: its commit position, COMMIT read or not. */
function tx(committed: boolean): Tx {
  const t = { committed, lsn: nextLsn++, hold() {}, release() {} };
  made.push(t);
  return t;
}

/** What the batcher sends with a flush it makes now: the transactions whose COMMIT is not read yet. */
const openNow = (): Set<Holder> => new Set(made.filter((t) => !t.committed));

/** A key's entry whose calls remove (`del`) or only add groups of customer `id`. */
function planned(
  key: number,
  kind: 'del' | 'add',
  holder: Tx,
  extra: Partial<SourceChange> = {},
  id = `c${key}`,
): Planned {
  const change: SourceChange = {
    kind: kind === 'del' ? 'delete' : 'insert',
    key: { text: `{"id":${key}}`, values: { id: key } },
    before: kind === 'del' ? { identity: { thirdId: id }, groups: ['g'] } : null,
    after: kind === 'del' ? null : { identity: { thirdId: id }, groups: ['g'] },
    ...extra,
  };
  const entry: Entry = newEntry(change, holder.lsn, key, T, holder);
  const effect: NetEffect = {
    kind: 'send',
    parts: [{ op: kind === 'del' ? 'delete' : 'add', identity: { thirdId: id }, groups: ['g'] }],
  };
  return { entry, effect };
}

interface Harness {
  guard: RemovalGuard;
  sent: number[][];
  held: Array<{ keys: number[]; reason: string | null }>;
  dropped: number[];
  /** A flush the batcher makes now, of source s. */
  judge(planned: Planned[]): Promise<void>;
  /** The COMMIT of `tx` was read: the batcher flushes again the sources it was flushed from. */
  committed(tx: Tx): Promise<void>;
}

function harness(
  limit: RemovalLimit,
  o: { rows?: number; held?: number[]; capacity?: number } = {},
): Harness {
  const h: Omit<Harness, 'guard' | 'judge' | 'committed'> = { sent: [], held: [], dropped: [] };
  const keyOf = (p: Planned) => (p.entry.key.values as { id: number }).id;
  const guard = new RemovalGuard({
    limits: new Map([['s', limit]]),
    state: {
      heldKeys: async () => new Set((o.held ?? []).map((k) => `{"id":${k}}`)),
      stillHeld: async (_s, keys) =>
        new Set(keys.filter((k) => (o.held ?? []).some((h) => `{"id":${h}}` === k))),
      sourceRows: async () => o.rows ?? 1000,
    },
    capacity: o.capacity ?? 100,
    logger: silentLogger(),
    sink: {
      send: async (_s, items) => void h.sent.push(items.map(keyOf)),
      hold: (_s, items, reason) => void h.held.push({ keys: items.map(keyOf), reason }),
      drop: (items) => void h.dropped.push(...items.map(keyOf)),
    },
  });
  const judge = (planned: Planned[]): Promise<void> => guard.judge('s', planned, openNow());
  const committed = async (tx: Tx): Promise<void> => {
    tx.committed = true;
    await judge([]);
  };
  return { guard, ...h, judge, committed };
}

const rows = (n: number) => ({ kind: 'rows' as const, rows: n });

describe('removal guard', () => {
  it('sends a transaction within the limit; holds one above it whole, and sends the rest of the flush', async () => {
    const h = harness(rows(2));
    const t1 = tx(true);
    await h.judge([planned(1, 'del', t1), planned(2, 'del', t1), planned(3, 'add', t1)]);
    expect(h.sent).toEqual([[1, 2, 3]]);
    const t2 = tx(true);
    await h.judge([
      planned(4, 'del', t2),
      planned(5, 'add', t2),
      planned(6, 'del', t2),
      planned(7, 'del', t2),
    ]);
    expect(h.sent).toEqual([[1, 2, 3], [5]]);
    expect(h.held).toEqual([
      {
        keys: [4, 6, 7],
        reason: expect.stringMatching(
          /^3 of the 1000 rows of source s would lose groups in one transaction \(commit 0\/[0-9A-F]+ at 2024-05-01T00:00:00.000Z\), more than guard.maxRemovals \(2\)/,
        ),
      },
    ]);
  });

  it('the default limit is max(100, 10 %) of the rows the source has', async () => {
    const small = harness({ kind: 'default' }, { rows: 50 });
    const t = tx(true);
    await small.judge(Array.from({ length: 100 }, (_, i) => planned(i, 'del', t)));
    expect(small.held).toEqual([]);
    const big = harness({ kind: 'default' }, { rows: 2000 });
    const t2 = tx(true);
    await big.judge(Array.from({ length: 201 }, (_, i) => planned(i, 'del', t2)));
    expect(big.held[0]?.keys).toHaveLength(201);
    expect(big.held[0]?.reason).toContain('max(100, 10% of 2000 rows) = 200');
  });

  it('a flush window of several transactions above the limit is held', async () => {
    const h = harness({ kind: 'share', percent: 1 }, { rows: 300 });
    await h.judge([1, 2, 3, 4].map((k) => planned(k, 'del', tx(true))));
    expect(h.sent).toEqual([]);
    expect(h.held).toEqual([
      { keys: [1, 2, 3, 4], reason: expect.stringContaining('in one flush window of 4 transactions') },
    ]);
  });

  it('a transaction above the limit is held alone: small ones in the same window go on', async () => {
    const h = harness(rows(2));
    const big = tx(true);
    const small = tx(true);
    await h.judge([
      planned(1, 'del', big),
      planned(2, 'del', big),
      planned(3, 'del', big),
      planned(4, 'del', small),
    ]);
    expect(h.held.flatMap((x) => x.keys)).toEqual([1, 2, 3]);
    expect(h.sent).toEqual([[4]]);
  });

  it('removals of a transaction still being read wait for its COMMIT, then go as the flushes they came in', async () => {
    const h = harness(rows(3));
    const t = tx(false);
    await h.judge([planned(1, 'del', t), planned(2, 'add', t)]);
    await h.judge([planned(3, 'del', t)]);
    // Key 2 touches another customer: it does not wait.
    expect(h.sent).toEqual([[2]]);
    expect(h.guard.waiting).toBe(2);
    await h.committed(t);
    expect(h.sent).toEqual([[2], [1], [3]]);
    expect(h.guard.waiting).toBe(0);
  });

  it('a transaction is decided with every removal of it in hand: those flushed at its COMMIT count too', async () => {
    const h = harness(rows(3));
    const t = tx(false);
    await h.judge([planned(1, 'del', t), planned(2, 'del', t)]);
    // COMMIT read; the flush it brings carries the transaction's last removals.
    t.committed = true;
    await h.judge([planned(3, 'del', t), planned(4, 'del', t)]);
    expect(h.sent).toEqual([]);
    expect(h.held.flatMap((x) => x.keys).sort()).toEqual([1, 2, 3, 4]);
  });

  it('holds a transaction the moment its removals pass the limit, and its later removals at once', async () => {
    const h = harness(rows(2));
    const t = tx(false);
    await h.judge([planned(1, 'del', t), planned(2, 'del', t)]);
    expect(h.held).toEqual([]);
    await h.judge([planned(3, 'del', t)]);
    expect(h.held.flatMap((x) => x.keys)).toEqual([1, 2, 3]);
    await h.judge([planned(4, 'del', t), planned(5, 'add', t)]);
    expect(h.held.flatMap((x) => x.keys)).toEqual([1, 2, 3, 4]);
    expect(new Set(h.held.map((x) => x.reason)).size).toBe(1);
    // Judged before its COMMIT: the count is a floor.
    expect(h.held[0]?.reason).toMatch(/^at least 3 of the 1000 rows of source s would lose groups/);
    expect(h.sent).toEqual([[5]]);
  });

  it('a change that shares a customer with a waiting removal waits behind it (order per customer)', async () => {
    const h = harness(rows(5));
    const t = tx(false);
    // Row 1 (customer x) deleted, row 2 inserted for the same customer in the same transaction.
    await h.judge([planned(1, 'del', t, {}, 'x')]);
    await h.judge([planned(2, 'add', t, {}, 'x')]);
    expect(h.sent).toEqual([]);
    await h.committed(t);
    expect(h.sent).toEqual([[1], [2]]);
  });

  it('later changes of a held key are held with it; an approval passes', async () => {
    const h = harness(rows(100), { held: [7] });
    await h.judge([planned(7, 'add', tx(true)), planned(8, 'add', tx(true))]);
    expect(h.held).toEqual([{ keys: [7], reason: null }]);
    expect(h.sent).toEqual([[8]]);
    await h.judge([planned(7, 'del', tx(true), { approved: true })]);
    expect(h.sent).toEqual([[8], [7]]);
    await h.guard.release('s', ['{"id":7}']);
    await h.judge([planned(7, 'add', tx(true))]);
    expect(h.sent).toEqual([[8], [7], [7]]);
  });

  it('a key settled outside this process (the command, SQL) is no longer held here', async () => {
    const held = [9];
    const h = harness(rows(100), { held });
    await h.judge([planned(9, 'add', tx(true))]);
    expect(h.held).toEqual([{ keys: [9], reason: null }]);
    held.pop();
    await h.judge([planned(9, 'add', tx(true))]);
    expect(h.sent).toEqual([[9]]);
  });

  it('a change judged before (a re-sync) is held with its reason, and its key stays held', async () => {
    const h = harness(rows(100));
    await h.judge([planned(1, 'del', tx(true), { hold: 'resync would remove too much' })]);
    expect(h.held).toEqual([{ keys: [1], reason: 'resync would remove too much' }]);
    expect(await h.guard.isHeld('s', '{"id":1}')).toBe(true);
  });

  it('off: nothing is held, nothing waits', async () => {
    const h = harness({ kind: 'off' });
    const t = tx(false);
    await h.judge(Array.from({ length: 50 }, (_, i) => planned(i, 'del', t)));
    expect(h.held).toEqual([]);
    expect(h.sent.flat()).toHaveLength(50);
  });

  it('a session that ends forgets what waited for its COMMIT', async () => {
    const h = harness(rows(5));
    const t = tx(false);
    await h.judge([planned(1, 'del', t), planned(2, 'del', t)]);
    h.guard.forgetOpen();
    expect(h.dropped).toEqual([1, 2]);
    expect(h.guard.waiting).toBe(0);
  });

  it('a transaction whose removals cannot all wait in memory is held', async () => {
    const h = harness(rows(1000), { capacity: 3 });
    const t = tx(false);
    await h.judge([1, 2, 3, 4].map((k) => planned(k, 'del', t)));
    expect(h.held).toEqual([
      { keys: [1, 2, 3, 4], reason: expect.stringContaining('more rows than can wait in memory') },
    ]);
    expect(h.guard.waiting).toBe(0);
  });
  it('a flush made before the COMMIT waits, though the COMMIT was read before it got here', async () => {
    const h = harness(rows(3));
    const t = tx(false);
    // Both flushes were made while t was open; its COMMIT is read while they are on their way.
    const open = openNow();
    t.committed = true;
    await h.guard.judge('s', [planned(1, 'del', t), planned(2, 'del', t)], open);
    expect(h.sent).toEqual([]);
    expect(h.held).toEqual([]);
    await h.guard.judge('s', [planned(3, 'del', t), planned(4, 'del', t)], open);
    expect(h.sent).toEqual([]);
    expect(h.held.flatMap((x) => x.keys)).toEqual([1, 2, 3, 4]);
    expect(h.held[0]?.reason).toMatch(/^at least 4 of the 1000 rows of source s would lose groups/);
    // The flush made after its COMMIT sends nothing of it.
    await h.guard.judge('s', [], new Set());
    expect(h.sent).toEqual([]);
  });

  it('within the limit over several flushes: sent by the first flush made after its COMMIT', async () => {
    const h = harness(rows(3));
    const t = tx(false);
    const open = openNow();
    t.committed = true;
    await h.guard.judge('s', [planned(1, 'del', t), planned(2, 'add', t)], open);
    await h.guard.judge('s', [planned(3, 'del', t)], open);
    expect(h.sent).toEqual([[2]]);
    await h.guard.judge('s', [], new Set());
    expect(h.sent).toEqual([[2], [1], [3]]);
    expect(h.guard.waiting).toBe(0);
  });

  it('the capacity counts what waits in every source: the source that passes it is held', async () => {
    const h = harness(rows(1000), { capacity: 3 });
    const t = tx(false);
    await h.guard.judge('s', [planned(1, 'del', t), planned(2, 'del', t)], openNow());
    await h.guard.judge('s2', [planned(3, 'del', t), planned(4, 'del', t)], openNow());
    expect(h.held).toEqual([
      { keys: [3, 4], reason: expect.stringContaining('more rows than can wait in memory') },
    ]);
    expect(h.guard.waiting).toBe(2);
  });
});
