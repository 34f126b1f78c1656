import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Batcher, type FlushSink } from '../../src/batching/batcher.js';
import { holdersOf, type Entry, type Holder } from '../../src/batching/coalesce.js';
import type { Config } from '../../src/config/types.js';
import type { SourceChange } from '../../src/mapping/changes.js';

const T = new Date('2024-05-01T00:00:00Z');

/** Records dispatches; the test decides when they fail. */
class FakeSink implements FlushSink {
  readonly dispatched: Array<{ source: string; entries: Entry[]; at: number; open: ReadonlySet<Holder> }> =
    [];
  failWith: unknown;
  async dispatch(source: string, entries: Entry[], open: ReadonlySet<Holder>): Promise<void> {
    this.dispatched.push({ source, entries, at: Date.now(), open });
    if (this.failWith !== undefined) throw this.failWith;
  }
  keys(i: number): string[] {
    return (this.dispatched[i]?.entries ?? []).map((e) => e.key.text);
  }
}

/** A transaction as the position tracker would be. */
class CountingHolder {
  held = 0;
  /** Absent: complete (a snapshot's holder); false until the COMMIT is read. */
  committed?: boolean;
  hold(n: number) {
    this.held += n;
  }
  release(n: number) {
    this.held -= n;
  }
}

function change(id: number, groups: string[] = ['g'], kind: SourceChange['kind'] = 'insert'): SourceChange {
  return {
    kind,
    key: { text: JSON.stringify({ id }), values: { id } },
    before: null,
    after: kind === 'delete' ? null : { identity: { thirdId: `c${id}` }, groups },
  };
}

const OPTIONS: Config['batching'] = {
  maxBatchSize: 500,
  debounceMs: 200,
  maxWaitMs: 2000,
  maxBufferedRows: 10_000,
};

function setup(over: Partial<Config['batching']> = {}) {
  const sink = new FakeSink();
  const loads: Array<[number, number]> = [];
  const batcher = new Batcher({ ...OPTIONS, ...over }, sink, (b, i) => loads.push([b, i]));
  const holder = new CountingHolder();
  const add = (id: number, groups?: string[], source = 'profiles', kind?: SourceChange['kind']) =>
    batcher.add(source, change(id, groups, kind), BigInt(id), 0, T, holder);
  return { sink, batcher, holder, add, loads };
}

/** Lets pending promise callbacks run without moving the fake clock. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe('Batcher', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('flushes a source when it holds maxBatchSize keys', async () => {
    const { sink, add, batcher } = setup({ maxBatchSize: 3 });
    add(1);
    add(2);
    add(2); // same key: still two keys
    await settle();
    expect(sink.dispatched).toHaveLength(0);
    add(3);
    await settle();
    expect(sink.dispatched).toHaveLength(1);
    expect(sink.keys(0)).toEqual(['{"id":1}', '{"id":2}', '{"id":3}']);
    expect(sink.dispatched[0]?.at).toBe(0);
    expect(batcher.load).toBe(3);
    // Nothing left over for the timers to flush.
    await vi.advanceTimersByTimeAsync(5000);
    expect(sink.dispatched).toHaveLength(1);
  });

  it('flushes after debounceMs without changes', async () => {
    const { sink, add } = setup();
    add(1);
    await vi.advanceTimersByTimeAsync(150);
    add(2);
    await vi.advanceTimersByTimeAsync(199);
    expect(sink.dispatched).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(sink.dispatched).toHaveLength(1);
    expect(sink.dispatched[0]?.at).toBe(350);
    expect(sink.keys(0)).toEqual(['{"id":1}', '{"id":2}']);
  });

  it('flushes after maxWaitMs even with a steady trickle of changes', async () => {
    const { sink, add } = setup({ debounceMs: 200, maxWaitMs: 1000 });
    let id = 0;
    for (let t = 0; t < 1500; t += 100) {
      add(++id);
      await vi.advanceTimersByTimeAsync(100);
    }
    expect(sink.dispatched.length).toBeGreaterThanOrEqual(1);
    expect(sink.dispatched[0]?.at).toBe(1000);
    expect(sink.keys(0)).toHaveLength(10);
    // The trickle stops at t = 1400: the next buffer (from t = 1000) goes after debounceMs of quiet.
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.dispatched.map((d) => d.at)).toEqual([1000, 1600]);
    expect(sink.keys(1)).toHaveLength(5);
  });

  it('maxWaitMs also applies to repeated changes of one key', async () => {
    const { sink, add } = setup({ debounceMs: 200, maxWaitMs: 1000 });
    for (let t = 0; t < 1200; t += 100) {
      add(1, [`g${t}`]);
      await vi.advanceTimersByTimeAsync(100);
    }
    expect(sink.dispatched[0]?.at).toBe(1000);
    expect(sink.dispatched[0]?.entries[0]?.changes).toBe(10);
  });

  it("coalesces a key's changes into one entry: first before, latest after, every change held", async () => {
    const { sink, batcher, holder } = setup();
    const h2 = new CountingHolder();
    batcher.add('profiles', change(1, ['a']), 10n, 0, T, holder);
    batcher.add('profiles', change(1, ['b'], 'update'), 20n, 0, T, holder);
    const later = new Date('2024-05-02T00:00:00Z');
    batcher.add('profiles', change(1, ['c'], 'update'), 30n, 0, later, h2);
    batcher.flushAll();
    await settle();
    expect(sink.dispatched).toHaveLength(1);
    const [entry] = sink.dispatched[0]?.entries ?? [];
    expect(entry).toMatchObject({
      key: { text: '{"id":1}' },
      before: null,
      after: { groups: ['c'] },
      lsn: 30n,
      commitTime: later,
      changes: 3,
    });
    expect(holdersOf(entry as Entry).map(([h, n]) => [h === holder ? 'tx1' : 'tx2', n])).toEqual([
      ['tx1', 2],
      ['tx2', 1],
    ]);
    expect(holder.held).toBe(2);
    expect(h2.held).toBe(1);
    expect(batcher.load).toBe(1);
  });

  it('keeps one buffer per source and dispatches them in flush order', async () => {
    const { sink, add, batcher } = setup();
    add(1, ['a'], 'members');
    add(1, ['a'], 'profiles');
    add(2, ['a'], 'members');
    batcher.flush('profiles');
    batcher.flush('members');
    await settle();
    expect(sink.dispatched.map((d) => [d.source, d.entries.length])).toEqual([
      ['profiles', 1],
      ['members', 2],
    ]);
  });

  it('dispatches one after another: a flush waits for the previous dispatch to return', async () => {
    const order: string[] = [];
    let finishFirst!: () => void;
    const sink: FlushSink = {
      dispatch: (source) => {
        order.push(`start ${source}`);
        if (source === 'a')
          return new Promise<void>((r) => (finishFirst = r)).then(() => void order.push('end a'));
        return Promise.resolve();
      },
    };
    const batcher = new Batcher(OPTIONS, sink);
    const holder = new CountingHolder();
    batcher.add('a', change(1), 1n, 0, T, holder);
    batcher.flush('a');
    batcher.add('b', change(2), 2n, 0, T, holder);
    batcher.flush('b');
    await settle();
    expect(order).toEqual(['start a']);
    finishFirst();
    await settle();
    expect(order).toEqual(['start a', 'end a', 'start b']);
  });

  it('reports buffered and in-flight counts', async () => {
    const { add, batcher, loads } = setup();
    add(1);
    add(2);
    batcher.flushAll();
    add(3);
    batcher.flushAll();
    batcher.done(2);
    expect(loads).toEqual([
      [0, 2],
      [0, 3],
      [0, 1],
    ]);
    expect(batcher.load).toBe(1);
  });

  it('waitForRoom blocks at maxBufferedRows (buffered + in flight) and resumes after done', async () => {
    const { sink, add, batcher } = setup({ maxBufferedRows: 3 });
    add(1);
    add(2);
    await batcher.waitForRoom(); // 2 < 3
    add(3);
    let resumed = false;
    const waiting = batcher.waitForRoom().then(() => (resumed = true));
    await settle();
    // Waiting flushes the buffers so the dispatcher can make room.
    expect(sink.dispatched).toHaveLength(1);
    expect(sink.keys(0)).toHaveLength(3);
    expect(resumed).toBe(false);
    // Same load, now in flight instead of buffered: still no room.
    add(4);
    expect(batcher.load).toBe(4);
    batcher.done(1);
    await settle();
    expect(resumed).toBe(false);
    batcher.done(1);
    await waiting;
    expect(resumed).toBe(true);
    expect(batcher.load).toBe(2);
  });

  it('drain flushes everything and resolves when every entry is done', async () => {
    const { sink, add, batcher } = setup();
    add(1);
    add(2, ['x'], 'members');
    let drained = false;
    const draining = batcher.drain().then(() => (drained = true));
    await settle();
    expect(sink.dispatched.map((d) => d.source)).toEqual(['profiles', 'members']);
    batcher.done(1);
    await settle();
    expect(drained).toBe(false);
    batcher.done(1);
    await draining;
    expect(batcher.load).toBe(0);
    await expect(batcher.drain()).resolves.toBeUndefined();
  });

  it('a dispatch failure surfaces from waitForRoom', async () => {
    const { sink, add, batcher } = setup({ maxBufferedRows: 2 });
    sink.failWith = new Error('status store is gone');
    add(1);
    add(2);
    await expect(batcher.waitForRoom()).rejects.toThrow('status store is gone');
    // And from every later call.
    await expect(batcher.waitForRoom()).rejects.toThrow('status store is gone');
  });

  it('a dispatch failure surfaces from drain', async () => {
    const { sink, add, batcher } = setup();
    sink.failWith = new Error('unknown source');
    add(1);
    await expect(batcher.drain()).rejects.toThrow('unknown source');
  });
});

describe('Batcher.discardBuffered (a lost stream: the server sends those changes again)', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('drops what the buffers hold, keeps what is in flight, and frees room at once', async () => {
    const { sink, batcher, add } = setup({ maxBatchSize: 2, maxBufferedRows: 3 });
    add(1);
    add(2); // a full batch: handed to the sink, in flight until done()
    add(3);
    add(4, ['g'], 'memberships');
    expect(batcher.load).toBe(4);
    let room = false;
    void batcher.waitForRoom().then(() => (room = true));
    await settle();
    expect(sink.dispatched.map((d) => d.source)).toEqual(['profiles', 'profiles', 'memberships']);
    sink.dispatched.length = 0;
    add(5);
    expect(batcher.discardBuffered()).toBe(1);
    await settle();
    expect(batcher.load).toBe(4); // the three handed on while waiting for room stay in flight
    await vi.advanceTimersByTimeAsync(OPTIONS.maxWaitMs * 2);
    expect(sink.dispatched).toEqual([]); // the dropped entry's timers are gone with it
    batcher.done(4);
    await settle();
    expect(room).toBe(true);
    expect(batcher.load).toBe(0);
  });
  it('a flush carries the transactions open when it was made; their COMMIT flushes those sources again', async () => {
    const { sink, batcher, holder, add } = setup({ maxBatchSize: 2 });
    holder.committed = false;
    add(1);
    add(2); // a full buffer: flushed while the transaction is open
    add(3, ['g'], 'members');
    add(4);
    // The COMMIT is read before any flush reached the sink: what each says was fixed when made.
    holder.committed = true;
    batcher.committed(holder);
    await settle();
    expect(sink.dispatched.map((d) => [d.source, d.entries.length, d.open.has(holder)])).toEqual([
      ['profiles', 2, true],
      ['profiles', 1, false],
    ]);
    // The other source's entries were never flushed while open: its own flush comes in its time.
    await vi.advanceTimersByTimeAsync(OPTIONS.debounceMs);
    expect(sink.dispatched.map((d) => [d.source, d.open.has(holder)])).toEqual([
      ['profiles', true],
      ['profiles', false],
      ['members', false],
    ]);
    // Once more: nothing left to flush again for it.
    batcher.committed(holder);
    await settle();
    expect(sink.dispatched).toHaveLength(3);
  });
});
