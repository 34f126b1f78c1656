/**
 * The dispatcher with fakes around it (delivery, sent position, stored state, source rows) and the
 * real ordered scheduler: which requests a flush becomes and in which order, what is recorded as
 * maybe sent before anything leaves, and that a key's transactions are released only once every
 * part of it has its outcome stored. Expected requests are worked out by hand from the rules in
 * docs/design.md ("Coalescing and batching"), not by running the code.
 */
import { describe, expect, it, vi } from 'vitest';
import { newEntry, mergeChange, type Entry } from '../../src/batching/coalesce.js';
import { Dispatcher, type SourceRuntime } from '../../src/batching/dispatcher.js';
import { OrderedScheduler } from '../../src/batching/scheduler.js';
import type { SourceConfig } from '../../src/config/types.js';
import type { DeliveryRequest, LocalOutcome } from '../../src/delivery/requests.js';
import type { Image, SourceChange } from '../../src/domain/change.js';
import type { Holder, RowStatus } from '../../src/domain/types.js';
import { silentLogger } from '../../src/ops/logger.js';
import type { LastSent } from '../../src/status/status-store.js';

/** A transaction as the position tracker sees it: how many of its changes are still held. */
class Tx implements Holder {
  held = 0;
  /** false: its COMMIT has not been read yet (the removal guard waits for it). */
  committed?: boolean;
  hold(n: number): void {
    this.held += n;
  }
  release(n: number): void {
    this.held -= n;
  }
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

const flushed = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

const img = (thirdId: string, groups: string[] | null): Image => ({ identity: { thirdId }, groups });
const key = (k: string) => ({ text: JSON.stringify({ id: k }), values: { id: k } });
const T0 = new Date('2026-01-01T00:00:00Z');

/** A request as the fake platform received it: op, and per row the customer, groups and keys. */
function summary(r: DeliveryRequest): string {
  return `${r.op} ${r.rows
    .map(
      (row) =>
        `${row.identity.thirdId}[${row.groups.join(',')}]<${row.items.map((i) => JSON.parse(i.change.rowKey).id).join(',')}>`,
    )
    .join(' ')}`;
}

class FakeDelivery {
  readonly log: string[];
  readonly requests: DeliveryRequest[] = [];
  readonly recorded: Array<{ source: string; outcomes: LocalOutcome[] }> = [];
  /** Answers the test gives, request by request (in the order they were sent). */
  readonly answers: Array<ReturnType<typeof deferred<RowStatus[]>>> = [];
  constructor(
    log: string[],
    private readonly hold = true,
  ) {
    this.log = log;
  }
  deliver(r: DeliveryRequest): Promise<RowStatus[]> {
    this.requests.push(r);
    this.log.push(`deliver ${summary(r)}`);
    const d = deferred<RowStatus[]>();
    this.answers.push(d);
    if (!this.hold) d.resolve(r.rows.map(() => 'synced'));
    return d.promise;
  }
  async record(source: string, outcomes: readonly LocalOutcome[]): Promise<void> {
    this.log.push(
      `record ${outcomes.map((o) => `${JSON.parse(o.change.rowKey).id}:${o.op}/${o.status}`).join(' ')}`,
    );
    this.recorded.push({ source, outcomes: [...outcomes] });
  }
}

interface Harness {
  dispatcher: Dispatcher;
  delivery: FakeDelivery;
  log: string[];
  done: number[];
  unchanged: Array<[string, number]>;
  fatal: unknown[];
  fresh: Array<[string, bigint, number]>;
  lastSent: ReturnType<typeof vi.fn>;
  readRow: ReturnType<typeof vi.fn>;
  scheduler: OrderedScheduler;
}

function harness(
  o: {
    mode?: 'row' | 'membership';
    maxBatchSize?: number;
    isFresh?: boolean;
    hold?: boolean;
    lastSent?: Map<string, LastSent>;
    rows?: Record<string, Record<string, unknown> | null>;
    signal?: AbortSignal;
    /** A removal guard allowing this many rows' removals per transaction. */
    maxRemovals?: number;
  } = {},
): Harness {
  const log: string[] = [];
  const done: number[] = [];
  const unchanged: Array<[string, number]> = [];
  const fatal: unknown[] = [];
  const fresh: Array<[string, bigint, number]> = [];
  const delivery = new FakeDelivery(log, o.hold ?? true);
  const config = {
    name: 'src',
    mode: o.mode ?? 'row',
    match: { isMatching: false },
  } as unknown as SourceConfig;
  const readRow = vi.fn(async (values: Record<string, unknown>) => o.rows?.[String(values.id)] ?? null);
  const runtime: SourceRuntime = {
    config,
    mapper: { image: (row) => img(String(row.third), String(row.groups).split(',')) },
    readRow,
  };
  const lastSent = vi.fn(async (_source: string, keys: readonly string[]) => {
    log.push(`lastSent ${keys.map((k) => JSON.parse(k).id).join(',')}`);
    return o.lastSent ?? new Map<string, LastSent>();
  });
  const scheduler = new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 });
  const dispatcher = new Dispatcher({
    maxBatchSize: o.maxBatchSize ?? 500,
    sent: {
      isFresh: (source, lsn, seq) => {
        fresh.push([source, lsn, seq]);
        return o.isFresh ?? true;
      },
      cover: async (source, lsn, seq) => void log.push(`cover ${source} ${lsn}/${seq}`),
    },
    sources: new Map([['src', runtime]]),
    delivery,
    state: { lastSent },
    scheduler,
    logger: silentLogger(),
    onDone: (n) => done.push(n),
    onUnchanged: (source, n) => unchanged.push([source, n]),
    onFatal: (err) => fatal.push(err),
    signal: o.signal,
    ...(o.maxRemovals === undefined
      ? {}
      : {
          held: {
            heldKeys: async () => new Set<string>(),
            stillHeld: async () => new Set<string>(),
            sourceRows: async () => 1000,
            hold: async (source, rows, reason) =>
              void log.push(`hold ${source} ${rows.map((r) => JSON.parse(r.rowKey).id).join(',')} ${reason}`),
          },
          limits: new Map([['src', { kind: 'rows' as const, rows: o.maxRemovals }]]),
          onHeld: (source, rows) => void log.push(`onHeld ${source} ${rows}`),
        }),
  });
  return { dispatcher, delivery, log, done, unchanged, fatal, fresh, lastSent, readRow, scheduler };
}

/** An entry of one change (its own transaction), at a position. */
function entry(
  id: string,
  before: SourceChange['before'],
  after: Image | null,
  lsn: bigint,
  seq = 0,
): [Entry, Tx] {
  const tx = new Tx();
  const kind = before === null ? 'insert' : after === null ? 'delete' : 'update';
  return [newEntry({ kind, key: key(id), before, after }, lsn, seq, T0, tx), tx];
}

/** What the batcher passes with a flush: the transactions whose COMMIT it had not read yet. */
function openOf(entries: Entry[]): Set<Tx> {
  return new Set(
    entries.flatMap((e) => (e.holder instanceof Tx && e.holder.committed === false ? [e.holder] : [])),
  );
}

describe('Dispatcher', () => {
  it('refuses a source it does not know', async () => {
    const h = harness();
    await expect(h.dispatcher.dispatch('nope', [], openOf([]))).rejects.toThrow('unknown source nope');
  });

  it('row mode: deletes, then adds, per pair the row held; the sent position covers the latest sent change first', async () => {
    const h = harness();
    const [k1, t1] = entry('k1', null, img('c1', ['a', 'b']), 10n);
    const [k2, t2] = entry('k2', img('c2', ['x']), img('c2', ['y']), 30n, 2);
    const [k3, t3] = entry('k3', img('c3', ['z']), null, 20n);
    // An identity change: the old customer is cleared, the new one set.
    const [k4, t4] = entry('k4', img('c4', ['g']), img('c5', ['g']), 30n, 1);
    // Later changes that send nothing: an unchanged row, and a row that came and went.
    const [k5] = entry('k5', img('c6', ['a']), img('c6', ['a']), 50n);
    const tx6 = new Tx();
    const k6 = newEntry(
      { kind: 'insert', key: key('k6'), before: null, after: img('c7', ['a']) },
      40n,
      0,
      T0,
      tx6,
    );
    mergeChange(
      k6,
      { kind: 'delete', key: key('k6'), before: img('c7', ['a']), after: null },
      40n,
      1,
      T0,
      tx6,
    );
    await h.dispatcher.dispatch('src', [k1, k2, k3, k4, k5, k6], openOf([k1, k2, k3, k4, k5, k6]));
    await flushed();
    // The cover is the latest change sent (k2's, 30/2), not the later ones that send nothing.
    expect(h.log[0]).toBe('cover src 30/2');
    expect(h.log[1]).toBe('record k6:delete/skipped');
    // Each pair a row held and holds no longer is deleted with its group (k2 lost x, k4 left c4,
    // k3 is gone); the adds wait for the deletes of the same keys (k2, k4 in both).
    expect(h.log.slice(2)).toEqual(['deliver delete c2[x]<k2> c3[z]<k3> c4[g]<k4>']);
    expect(h.delivery.requests.map((r) => [r.policy, r.source.name])).toEqual([['daemon', 'src']]);
    // Nothing is released before its outcome is stored.
    expect([t1.held, t2.held, t3.held, t4.held]).toEqual([1, 1, 1, 1]);
    expect(tx6.held).toBe(0);
    expect(h.done).toEqual([1, 1]);
    expect(h.unchanged).toEqual([['src', 1]]);

    h.delivery.answers[0]?.resolve(['synced', 'synced', 'synced']);
    await flushed();
    // k3 is done; k2 and k4 still have their adds to go, which now start (with k1's).
    expect([t3.held, t2.held, t4.held]).toEqual([0, 1, 1]);
    expect(h.done).toEqual([1, 1, 1]);
    expect(h.log.at(-1)).toBe('deliver add c1[a,b]<k1> c2[y]<k2> c5[g]<k4>');
    h.delivery.answers[1]?.resolve(['synced', 'synced', 'synced']);
    await flushed();
    expect([t1.held, t2.held, t4.held]).toEqual([0, 0, 0]);
    expect(h.done).toEqual([1, 1, 1, 3]);
    expect(h.fatal).toEqual([]);
  });

  it('covers the latest position of the changes it sends, whatever their order in the flush', async () => {
    for (const order of [
      [2, 1, 0],
      [0, 1, 2],
      [1, 2, 0],
    ]) {
      const h = harness({ hold: false });
      const at: Array<[bigint, number]> = [
        [30n, 1],
        [30n, 2],
        [20n, 5],
      ];
      const entries = order.map((i) => {
        const [lsn, seq] = at[i] as [bigint, number];
        return entry(`k${i}`, null, img(`c${i}`, ['a']), lsn, seq)[0];
      });
      await h.dispatcher.dispatch('src', entries, openOf(entries));
      await flushed();
      expect(h.log[0]).toBe('cover src 30/2');
    }
  });

  it('with the removal guard: a mass removal is recorded held and released, nothing of it sent; the rest goes', async () => {
    const h = harness({ maxRemovals: 1 });
    expect(h.dispatcher.guard).toBeDefined();
    // One transaction removes two rows' groups (over the limit of one); another adds a row.
    const tx = new Tx();
    const gone = ['k1', 'k2'].map((k, i) =>
      newEntry({ kind: 'delete', key: key(k), before: img(`c${i}`, ['a']), after: null }, 5n, i, T0, tx),
    );
    const [add, t3] = entry('k3', null, img('c3', ['b']), 6n);
    await h.dispatcher.dispatch('src', [...gone, add], openOf([...gone, add]));
    await flushed();
    const held = h.log.filter((l) => l.startsWith('hold'));
    expect(held).toHaveLength(1);
    expect(held[0]).toMatch(/^hold src k1,k2 \S/);
    expect(h.log).toContain('onHeld src 2');
    expect(h.delivery.requests.map(summary)).toEqual(['add c3[b]<k3>']);
    // Held is an outcome: the transaction is released; k3 once its request is answered.
    expect(tx.held).toBe(0);
    expect(t3.held).toBe(1);
    h.delivery.answers[0]?.resolve(['synced']);
    await flushed();
    expect(t3.held).toBe(0);
    expect([...h.done].sort()).toEqual([1, 2]);
    expect(h.fatal).toEqual([]);
  });

  it('with the removal guard: removals of a transaction not yet committed wait; a new session forgets them', async () => {
    // Within the limit so far: whether the transaction is a mass removal is known at its COMMIT.
    const h = harness({ maxRemovals: 5 });
    const tx = new Tx();
    tx.committed = false;
    const gone = ['k1', 'k2'].map((k, i) =>
      newEntry({ kind: 'delete', key: key(k), before: img(`c${i}`, ['a']), after: null }, 5n, i, T0, tx),
    );
    await h.dispatcher.dispatch('src', gone, openOf(gone));
    await flushed();
    expect(h.dispatcher.waiting).toBe(2);
    expect(h.log).toEqual([]);
    expect(tx.held).toBe(2);
    // The session ended before the COMMIT: forgotten without an outcome (read again), released.
    h.dispatcher.forgetOpen();
    expect(h.dispatcher.waiting).toBe(0);
    expect(tx.held).toBe(0);
    expect(h.done).toEqual([2]);
    expect(h.log).toEqual([]);
  });

  it('with the removal guard: a later change of a key waiting for its COMMIT starts from its new row, not the stored one', async () => {
    // sync_status still says k1 was last sent to c1: its change to c2 waits in the guard, unsent.
    const lastSent = new Map<string, LastSent>([
      ['{"id":"k1"}', { op: 'add', status: 'synced', payload: { thirdId: 'c1', groups: 'a' } }],
    ]);
    const h = harness({ maxRemovals: 5, hold: false, lastSent });
    const tx = new Tx();
    tx.committed = false;
    const moved = newEntry(
      { kind: 'update', key: key('k1'), before: 'lookup', after: img('c2', ['a']) },
      5n,
      0,
      T0,
      tx,
    );
    await h.dispatcher.dispatch('src', [moved], openOf([moved]));
    await flushed();
    expect(h.dispatcher.waiting).toBe(1);
    // The same transaction deletes the row (the WAL carries no old row), then commits.
    const gone = newEntry({ kind: 'delete', key: key('k1'), before: 'lookup', after: null }, 5n, 1, T0, tx);
    tx.committed = true;
    await h.dispatcher.dispatch('src', [gone], openOf([gone]));
    await flushed();
    // By hand: c1 loses a and c2 gets it (the first change), then c2 loses it (the delete).
    expect(h.delivery.requests.map(summary)).toEqual([
      'delete c1[a]<k1>',
      'add c2[a]<k1>',
      'delete c2[a]<k1>',
    ]);
    expect(h.dispatcher.waiting).toBe(0);
    expect(tx.held).toBe(0);
    expect(h.fatal).toEqual([]);
  });

  it('without a removal guard nothing waits', () => {
    const h = harness();
    expect(h.dispatcher.guard).toBeUndefined();
    expect(h.dispatcher.waiting).toBe(0);
    h.dispatcher.forgetOpen();
    h.dispatcher.settleOpen();
  });

  it('carries each key change as stored: its key, latest position and commit time, no prior attempts', async () => {
    const h = harness({ hold: false });
    const tx = new Tx();
    const e = newEntry(
      { kind: 'insert', key: key('k1'), before: null, after: img('c1', ['a']) },
      5n,
      0,
      T0,
      tx,
    );
    const later = new Date('2026-01-02T00:00:00Z');
    mergeChange(
      e,
      { kind: 'update', key: key('k1'), before: img('c1', ['a']), after: img('c1', ['b']) },
      7n,
      3,
      later,
      tx,
    );
    await h.dispatcher.dispatch('src', [e], openOf([e]));
    await flushed();
    const item = h.delivery.requests[0]?.rows[0]?.items[0];
    expect(item?.change).toMatchObject({
      rowKey: '{"id":"k1"}',
      lsn: 7n,
      committedAt: later,
      priorAttempts: 0,
    });
    expect(item?.op).toBe('add');
    // The window is checked for freshness from its first change.
    expect(h.fresh).toEqual([['src', 5n, 0]]);
    expect(h.log[0]).toBe('cover src 7/3');
    expect(tx.held).toBe(0);
  });

  it('splits an operation into requests of at most maxBatchSize rows', async () => {
    const h = harness({ maxBatchSize: 2, hold: false });
    const entries = ['k1', 'k2', 'k3', 'k4', 'k5'].map(
      (k, i) => entry(k, null, img(`c${i}`, ['a']), BigInt(i + 1))[0],
    );
    await h.dispatcher.dispatch('src', entries, openOf(entries));
    await flushed();
    expect(h.delivery.requests.map((r) => r.rows.length)).toEqual([2, 2, 1]);
    expect(h.done).toEqual([2, 2, 1]);
  });

  describe('fuller requests: later flushes join requests that have not started', () => {
    /** Four requests in flight (the harness's concurrency), unanswered: later ones wait for a slot. */
    async function busy(h: Harness): Promise<void> {
      for (let i = 0; i < 4; i++) {
        const only = [entry(`busy${i}`, null, img(`b${i}`, ['a']), BigInt(i + 1))[0]];
        await h.dispatcher.dispatch('src', only, openOf(only));
      }
      await flushed();
      expect(h.delivery.requests).toHaveLength(4);
    }
    /** One flush per customer: each lost group x and gained y (a delete, then an add). */
    async function moves(
      h: Harness,
      ids: string[],
      customers = ids.map((id) => id.replace('k', 'c')),
      from = 10,
    ): Promise<Tx[]> {
      const txs: Tx[] = [];
      for (const [i, id] of ids.entries()) {
        const c = customers[i] as string;
        const [e, tx] = entry(id, img(c, ['x']), img(c, ['y']), BigInt(from + i));
        txs.push(tx);
        await h.dispatcher.dispatch('src', [e], openOf([e]));
      }
      return txs;
    }
    /** Answers every request sent and not answered yet, until none is left. */
    async function answerAll(h: Harness): Promise<void> {
      for (let i = 0; i < h.delivery.requests.length; i++) {
        h.delivery.answers[i]?.resolve((h.delivery.requests[i] as DeliveryRequest).rows.map(() => 'synced'));
        await flushed();
      }
    }

    it('a delete and an add of N customers, flushed apart, travel as one delete and one add request', async () => {
      const h = harness();
      await busy(h);
      const txs = await moves(h, ['k1', 'k2', 'k3', 'k4', 'k5']);
      await flushed();
      expect(h.delivery.requests).toHaveLength(4);
      await answerAll(h);
      // Two requests for the five changes, not ten: every delete before every add.
      expect(h.log.filter((l) => l.startsWith('deliver') && !l.includes('busy'))).toEqual([
        'deliver delete c1[x]<k1> c2[x]<k2> c3[x]<k3> c4[x]<k4> c5[x]<k5>',
        'deliver add c1[y]<k1> c2[y]<k2> c3[y]<k3> c4[y]<k4> c5[y]<k5>',
      ]);
      expect(txs.map((t) => t.held)).toEqual([0, 0, 0, 0, 0]);
      expect(h.done.reduce((a, b) => a + b, 0)).toBe(9);
      expect(h.fatal).toEqual([]);
    });

    it('at most maxBatchSize rows a request', async () => {
      const h = harness({ maxBatchSize: 2 });
      await busy(h);
      await moves(h, ['k1', 'k2', 'k3']);
      await answerAll(h);
      // k3's requests depend on nothing, so they may go before the first batch's add.
      expect(h.delivery.requests.slice(4).map(summary).sort()).toEqual([
        'add c1[y]<k1> c2[y]<k2>',
        'add c3[y]<k3>',
        'delete c1[x]<k1> c2[x]<k2>',
        'delete c3[x]<k3>',
      ]);
    });

    it('a later change of a key in the batch, or of a customer it touches, waits for it', async () => {
      const h = harness();
      await busy(h);
      // k1 again (its next change), and k9 on k2's customer: neither may join the first batch, and
      // k9 not k1's either (c2 is still the first batch's): each waits for the first to finish.
      await moves(h, ['k1', 'k2', 'k1', 'k9'], ['c1', 'c2', 'c1', 'c2']);
      await answerAll(h);
      expect(h.delivery.requests.slice(4).map(summary)).toEqual([
        'delete c1[x]<k1> c2[x]<k2>',
        'add c1[y]<k1> c2[y]<k2>',
        'delete c1[x]<k1>',
        'delete c2[x]<k9>',
        'add c1[y]<k1>',
        'add c2[y]<k9>',
      ]);
    });

    it('nothing joins a batch once one of its requests started, or an operation it lacks', async () => {
      const h = harness();
      // k1's delete starts at once (a slot is free): k2 goes in requests of its own.
      await moves(h, ['k1', 'k2']);
      await flushed();
      await answerAll(h);
      expect(h.delivery.requests.map(summary)).toEqual([
        'delete c1[x]<k1>',
        'delete c2[x]<k2>',
        'add c1[y]<k1>',
        'add c2[y]<k2>',
      ]);
      // A flush of adds only, then one that also deletes: the delete has no request to join.
      const g = harness();
      await busy(g);
      const [a] = entry('k7', null, img('c7', ['y']), 30n);
      await g.dispatcher.dispatch('src', [a], openOf([a]));
      await moves(g, ['k8'], ['c8'], 31);
      await answerAll(g);
      expect(g.delivery.requests.slice(4).map(summary)).toEqual([
        'add c7[y]<k7>',
        'delete c8[x]<k8>',
        'add c8[y]<k8>',
      ]);
    });
  });

  it('passes the stop signal to delivery', async () => {
    const ac = new AbortController();
    const h = harness({ hold: false, signal: ac.signal });
    const only = [entry('k1', null, img('c1', ['a']), 1n)[0]];
    await h.dispatcher.dispatch('src', only, openOf(only));
    await flushed();
    expect(h.delivery.requests[0]?.signal).toBe(ac.signal);
  });

  it('membership mode: pairs of one customer and operation travel as one API row', async () => {
    const h = harness({ mode: 'membership', hold: false });
    const [a] = entry('1', null, img('m1', ['g1']), 1n);
    const [b] = entry('2', null, img('m1', ['g2']), 1n, 1);
    const [c] = entry('3', img('m2', ['g1']), null, 1n, 2);
    const [d] = entry('4', null, img('m2', ['g3']), 1n, 3);
    await h.dispatcher.dispatch('src', [a, b, c, d], openOf([a, b, c, d]));
    await flushed();
    expect(h.delivery.requests.map(summary)).toEqual(['delete m2[g1]<3>', 'add m1[g1,g2]<1,2> m2[g3]<4>']);
    expect(h.done).toEqual([1, 3]);
  });

  it('unchanged windows: no request, nothing stored, released at once and counted', async () => {
    const h = harness();
    const [u1, t1] = entry('k1', img('c1', ['a', 'b']), img('c1', ['b', 'a']), 9n);
    const tx = new Tx();
    const u2 = newEntry(
      { kind: 'update', key: key('k2'), before: img('c2', ['x']), after: img('c2', ['x']) },
      9n,
      1,
      T0,
      tx,
    );
    mergeChange(
      u2,
      { kind: 'update', key: key('k2'), before: img('c2', ['x']), after: img('c2', ['x']) },
      9n,
      2,
      T0,
      tx,
    );
    await h.dispatcher.dispatch('src', [u1, u2], openOf([u1, u2]));
    await flushed();
    expect(h.log).toEqual([]);
    expect([t1.held, tx.held]).toEqual([0, 0]);
    expect(h.done).toEqual([2]);
    expect(h.unchanged).toEqual([['src', 3]]);
  });

  it('stores local outcomes (skipped, failed) in order with the key requests before them', async () => {
    const h = harness();
    // k1 is sent first (held by the platform); then k1 comes and goes, and k2 cannot be mapped.
    const [first] = entry('k1', null, img('c1', ['b']), 1n);
    await h.dispatcher.dispatch('src', [first], openOf([first]));
    await flushed();
    const tx = new Tx();
    const gone = newEntry(
      { kind: 'insert', key: key('k1'), before: null, after: img('c1', ['c']) },
      2n,
      0,
      T0,
      tx,
    );
    mergeChange(
      gone,
      { kind: 'delete', key: key('k1'), before: img('c1', ['c']), after: null },
      2n,
      1,
      T0,
      tx,
    );
    const bad: Image = { identity: {}, groups: ['a'], error: 'no identity value' };
    const [unmappable, t2] = entry('k2', null, bad, 2n, 2);
    await h.dispatcher.dispatch('src', [gone, unmappable], openOf([gone, unmappable]));
    await flushed();
    // Nothing was sent: no cover for this flush.
    expect(h.log.filter((l) => l.startsWith('cover'))).toEqual(['cover src 1/0']);
    // k1's record waits for k1's request; so the whole local write does.
    expect(h.log.filter((l) => l.startsWith('record'))).toEqual([]);
    h.delivery.answers[0]?.resolve(['synced']);
    await flushed();
    expect(h.log.at(-1)).toBe('record k1:delete/skipped k2:add/failed');
    expect(h.delivery.recorded[0]?.outcomes.map((o) => o.error)).toEqual([
      'row gone (or outside the filter) before it was sent',
      'no identity value',
    ]);
    expect([tx.held, t2.held]).toEqual([0, 0]);
    expect(h.done).toEqual([1, 2]);
  });

  it('a key whose changes may have been sent is not coalesced away: a row that came and went is deleted', async () => {
    const h = harness({ isFresh: false, hold: false });
    const tx = new Tx();
    const e = newEntry(
      { kind: 'insert', key: key('k1'), before: null, after: img('c1', ['a']) },
      4n,
      0,
      T0,
      tx,
    );
    mergeChange(e, { kind: 'delete', key: key('k1'), before: img('c1', ['a']), after: null }, 4n, 1, T0, tx);
    await h.dispatcher.dispatch('src', [e], openOf([e]));
    await flushed();
    // The pair it may have added is removed (its group named: other pairs of c1 are not its own).
    expect(h.log).toEqual(['cover src 4/1', 'deliver delete c1[a]<k1>']);
    expect(tx.held).toBe(0);
  });

  it('stops the bridge when delivery fails, and releases nothing of it', async () => {
    const h = harness();
    const [e, tx] = entry('k1', null, img('c1', ['a']), 1n);
    await h.dispatcher.dispatch('src', [e], openOf([e]));
    await flushed();
    const boom = new Error('storing outcomes failed');
    h.delivery.answers[0]?.reject(boom);
    await flushed();
    expect(h.fatal).toEqual([boom]);
    expect(tx.held).toBe(1);
    expect(h.done).toEqual([]);
  });

  it('deleteLookup: state reads what was last sent, once earlier requests for those keys are done', async () => {
    const lastSent = new Map<string, LastSent>([
      ['{"id":"k1"}', { op: 'add', status: 'synced', payload: { thirdId: 'c1', groups: 'a,b' } }],
      ['{"id":"k2"}', { op: 'delete', status: 'synced', payload: { thirdId: 'c2' } }],
    ]);
    const h = harness({ lastSent });
    const [earlier] = entry('k1', null, img('c1', ['a', 'b']), 1n);
    await h.dispatcher.dispatch('src', [earlier], openOf([earlier]));
    await flushed();
    const [d1, t1] = entry('k1', 'lookup', null, 2n);
    const [d2, t2] = entry('k2', 'lookup', null, 2n, 1);
    const [d3] = entry('k3', 'lookup', null, 2n, 2);
    const dispatching = h.dispatcher.dispatch('src', [d1, d2, d3], openOf([d1, d2, d3]));
    await flushed();
    expect(h.lastSent).not.toHaveBeenCalled();
    h.delivery.answers[0]?.resolve(['synced']);
    await dispatching;
    await flushed();
    expect(h.lastSent).toHaveBeenCalledWith('src', ['{"id":"k1"}', '{"id":"k2"}', '{"id":"k3"}']);
    // k1 had groups on the platform: those pairs go. k2's last outcome was a delete, k3 has none:
    // nothing of them is on the platform, nothing changes, and their last outcomes stay.
    expect(h.delivery.requests.map(summary).at(-1)).toBe('delete c1[a,b]<k1>');
    expect(h.log.filter((l) => l.startsWith('record'))).toEqual([]);
    expect(h.unchanged).toEqual([['src', 2]]);
    expect(t2.held).toBe(0);
    h.delivery.answers[1]?.resolve(['synced']);
    await flushed();
    expect([t1.held, t2.held]).toEqual([0, 0]);
  });

  it('reads unchanged TOAST groups from the current row; a row gone meanwhile is treated as gone', async () => {
    const h = harness({ hold: false, rows: { k1: { third: 'c1', groups: 'big,list' } } });
    const [e1] = entry('k1', img('c1', ['old']), img('c1', null), 1n);
    const [e2] = entry('k2', img('c2', ['x']), img('c2', null), 1n, 1);
    await h.dispatcher.dispatch('src', [e1, e2], openOf([e1, e2]));
    await flushed();
    expect(h.readRow.mock.calls).toEqual([[{ id: 'k1' }], [{ id: 'k2' }]]);
    // k1 lost the pair (c1, old) and holds big and list; k2's row is gone: its pair goes.
    expect(h.delivery.requests.map(summary)).toEqual([
      'delete c1[old]<k1> c2[x]<k2>',
      'add c1[big,list]<k1>',
    ]);
  });

  it('a TOAST row gone without its old row in the WAL: the pairs last stored for the key go', async () => {
    const lastSent = new Map<string, LastSent>([
      ['{"id":"k1"}', { op: 'add', status: 'synced', payload: { thirdId: 'c1', groups: 'a,b' } }],
    ]);
    const h = harness({ hold: false, rows: {}, lastSent });
    const [e] = entry('k1', 'lookup', img('c1', null), 1n);
    const [never, t2] = entry('k2', 'lookup', img('c2', null), 1n, 1);
    await h.dispatcher.dispatch('src', [e, never], openOf([e, never]));
    await flushed();
    expect(h.delivery.requests.map(summary)).toEqual(['delete c1[a,b]<k1>']);
    // k2 has no stored state: nothing of it is known on the platform, so nothing is removed.
    expect(h.log.filter((l) => l.startsWith('record'))).toEqual(['record k2:delete/skipped']);
    expect(t2.held).toBe(0);
  });

  it('membership: an update without its old row is unchanged when it restates what was last stored', async () => {
    const lastSent = new Map<string, LastSent>([
      ['{"id":"k1"}', { op: 'update', status: 'synced', payload: { thirdId: 'c1', groups: 'a' } }],
      ['{"id":"k2"}', { op: 'update', status: 'synced', payload: { thirdId: 'c2', groups: 'a' } }],
      ['{"id":"k3"}', { op: 'delete', status: 'synced', payload: { thirdId: 'c3', groups: 'a' } }],
    ]);
    const h = harness({ mode: 'membership', hold: false, lastSent });
    const [same, t1] = entry('k1', 'unknown', img('c1', ['a']), 1n);
    const [other] = entry('k2', 'unknown', img('c2', ['b']), 1n, 1);
    const [afterDelete] = entry('k3', 'unknown', img('c3', ['a']), 1n, 2);
    await h.dispatcher.dispatch('src', [same, other, afterDelete], openOf([same, other, afterDelete]));
    await flushed();
    expect(h.lastSent).toHaveBeenCalledTimes(1);
    expect(t1.held).toBe(0);
    expect(h.unchanged).toEqual([['src', 1]]);
    // k2's old pair is not known (not in the WAL, not what was stored): only its new pair is set.
    expect(h.delivery.requests.map(summary)).toEqual(['add c2[b]<k2> c3[a]<k3>']);
  });
});
