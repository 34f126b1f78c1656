import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PositionTracker, type Tx } from '../../src/router/positions.js';

const T = new Date('2024-05-01T00:00:00Z');

function tracker(start = 0n) {
  const t = new PositionTracker(start);
  const seen: bigint[] = [];
  t.onAdvance((lsn) => seen.push(lsn));
  return { t, seen };
}

describe('PositionTracker', () => {
  it('confirms a transaction once it is committed and holds nothing', () => {
    const { t, seen } = tracker(10n);
    const tx = t.begin(90n, T);
    tx.hold(2);
    t.commit(tx, 100n);
    expect(t.confirmed).toBe(10n);
    tx.release(1);
    expect(t.confirmed).toBe(10n);
    tx.release(1);
    expect(t.confirmed).toBe(100n);
    expect(seen).toEqual([100n]);
    expect(t.open).toBe(0);
  });

  it('a transaction released before its COMMIT waits for the COMMIT', () => {
    const { t } = tracker();
    const tx = t.begin(90n, T);
    tx.hold(1);
    tx.release(1);
    expect(t.confirmed).toBe(0n);
    expect(t.open).toBe(1);
    t.commit(tx, 100n);
    expect(t.confirmed).toBe(100n);
  });

  it('a commit holding nothing is confirmed at once', () => {
    const { t, seen } = tracker();
    t.commit(t.begin(90n, T), 100n);
    expect(t.confirmed).toBe(100n);
    expect(seen).toEqual([100n]);
  });

  it('an out-of-order release does not move past an earlier pending transaction', () => {
    const { t, seen } = tracker();
    const a = t.begin(90n, T);
    a.hold(1);
    t.commit(a, 100n);
    const b = t.begin(190n, T);
    b.hold(1);
    t.commit(b, 200n);
    const c = t.begin(290n, T);
    t.commit(c, 300n);
    b.release(1);
    expect(t.confirmed).toBe(0n);
    expect(seen).toEqual([]);
    a.release(1);
    // a, b and c all finished: one move, to the last of them.
    expect(t.confirmed).toBe(300n);
    expect(seen).toEqual([300n]);
  });

  it('stops at an uncommitted transaction even when it holds nothing', () => {
    const { t } = tracker();
    const a = t.begin(90n, T);
    t.begin(190n, T);
    t.commit(a, 100n);
    expect(t.confirmed).toBe(100n);
    expect(t.open).toBe(1);
  });

  it('never moves backwards (a transaction replayed below the start position)', () => {
    const { t, seen } = tracker(1000n);
    t.commit(t.begin(400n, T), 500n);
    expect(t.confirmed).toBe(1000n);
    expect(seen).toEqual([]);
    expect(t.open).toBe(0);
  });

  it('a transaction replayed up to exactly the confirmed position is no move', () => {
    const { t, seen } = tracker(1000n);
    t.commit(t.begin(990n, T), 1000n);
    expect(t.confirmed).toBe(1000n);
    // Listeners (the 'confirmed' event, the status message) hear of moves only.
    expect(seen).toEqual([]);
  });

  it('forgets confirmed transactions: a daemon running for weeks does not keep them all', () => {
    // SPEC section 5: bounded memory. Nothing public tells how many finished transactions the
    // tracker still keeps, so this looks at its queue.
    const { t } = tracker();
    for (let i = 1; i <= 5000; i++) {
      const tx = t.begin(BigInt(i * 10), T);
      tx.hold(1);
      t.commit(tx, BigInt(i * 10 + 1));
      tx.release(1);
    }
    expect(t.confirmed).toBe(50001n);
    expect((t as unknown as { queue: unknown[] }).queue.length).toBeLessThanOrEqual(2048);
  });

  it('confirmIdle only when nothing is open, and never backwards', () => {
    const { t, seen } = tracker(100n);
    const tx = t.begin(150n, T);
    expect(t.confirmIdle(500n)).toBe(false);
    expect(t.confirmed).toBe(100n);
    t.commit(tx, 160n);
    expect(t.confirmIdle(500n)).toBe(true);
    expect(t.confirmed).toBe(500n);
    expect(t.confirmIdle(400n)).toBe(false);
    expect(t.confirmIdle(500n)).toBe(false);
    expect(t.confirmed).toBe(500n);
    expect(seen).toEqual([160n, 500n]);
  });

  it('reset forgets open transactions and keeps the confirmed position', () => {
    const { t } = tracker(50n);
    const tx = t.begin(90n, T);
    tx.hold(1);
    t.commit(tx, 100n);
    expect(t.oldestOpenCommitTime()).toEqual(T);
    t.reset();
    expect(t.open).toBe(0);
    expect(t.confirmed).toBe(50n);
    expect(t.oldestOpenCommitTime()).toBeNull();
    expect(t.confirmIdle(80n)).toBe(true);
    // The server sends the transaction again; it is tracked anew.
    const again = t.begin(90n, T);
    t.commit(again, 100n);
    expect(t.confirmed).toBe(100n);
  });

  it('reports the commit time of the oldest open transaction', () => {
    const { t } = tracker();
    const t1 = new Date('2024-01-01T00:00:00Z');
    const t2 = new Date('2024-01-02T00:00:00Z');
    const a = t.begin(10n, t1);
    a.hold(1);
    t.commit(a, 11n);
    t.begin(20n, t2);
    expect(t.oldestOpenCommitTime()).toEqual(t1);
    a.release(1);
    expect(t.oldestOpenCommitTime()).toEqual(t2);
  });

  it('refuses to release more than was held', () => {
    const { t } = tracker();
    const tx = t.begin(10n, T);
    tx.hold(1);
    expect(() => tx.release(2)).toThrow(/released more/);
  });

  it('stays correct across the compaction of a long queue', () => {
    const { t } = tracker();
    const txs: Tx[] = [];
    for (let i = 1; i <= 3000; i++) {
      const tx = t.begin(BigInt(i * 10), T);
      tx.hold(1);
      t.commit(tx, BigInt(i * 10 + 1));
      txs.push(tx);
    }
    for (let i = 0; i < 2000; i++) txs[i]?.release(1);
    expect(t.confirmed).toBe(20001n);
    expect(t.open).toBe(1000);
    txs[2999]?.release(1);
    expect(t.confirmed).toBe(20001n);
    for (let i = 2000; i < 2999; i++) txs[i]?.release(1);
    expect(t.confirmed).toBe(30001n);
    expect(t.open).toBe(0);
  });

  it('property: confirms exactly the end of the finished prefix, never past an unfinished transaction', () => {
    const command = fc.oneof(
      fc.constant({ op: 'begin' as const, i: 0 }),
      fc.record({
        op: fc.constantFrom('hold' as const, 'release' as const, 'commit' as const),
        i: fc.nat(20),
      }),
    );
    fc.assert(
      fc.property(fc.array(command, { maxLength: 80 }), (commands) => {
        const start = 5n;
        const { t, seen } = tracker(start);
        const model: Array<{ tx: Tx; end: bigint; held: number; committed: boolean }> = [];
        for (const c of commands) {
          if (c.op === 'begin') {
            const end = BigInt((model.length + 1) * 100);
            model.push({ tx: t.begin(end - 10n, T), end, held: 0, committed: false });
            continue;
          }
          const m = model.length ? model[c.i % model.length] : undefined;
          if (!m) continue;
          if (c.op === 'hold' && !m.committed) {
            m.tx.hold(1);
            m.held += 1;
          } else if (c.op === 'release' && m.held > 0) {
            m.held -= 1;
            m.tx.release(1);
          } else if (c.op === 'commit' && !m.committed) {
            m.committed = true;
            t.commit(m.tx, m.end);
          }
          const firstOpen = model.findIndex((x) => !x.committed || x.held > 0);
          const prefix = firstOpen < 0 ? model : model.slice(0, firstOpen);
          const expected = prefix.length ? (prefix[prefix.length - 1] as { end: bigint }).end : start;
          // Plain checks: expect() on every step makes the property slow.
          if (t.confirmed !== expected) throw new Error(`confirmed ${t.confirmed}, expected ${expected}`);
          if (firstOpen >= 0 && t.confirmed >= (model[firstOpen] as { end: bigint }).end)
            throw new Error(`confirmed ${t.confirmed} past unfinished transaction ${firstOpen}`);
        }
        // Listeners saw strictly increasing positions ending at the confirmed one.
        for (let i = 1; i < seen.length; i++) expect(seen[i]! > seen[i - 1]!).toBe(true);
        expect(seen.length ? seen[seen.length - 1] : start).toBe(t.confirmed);
      }),
      { numRuns: 300 },
    );
  });
});
