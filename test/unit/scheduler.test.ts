import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OrderedScheduler, Resources } from '../../src/batching/scheduler.js';

/** A promise the test resolves. */
function gate() {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const tick = () => new Promise<void>((r) => setTimeout(r, 0));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('OrderedScheduler', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs tasks sharing a resource in scheduling order, never overlapping', async () => {
    const s = new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 });
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await sleep(ms);
      log.push(`end ${name}`);
      return name;
    };
    const results = await Promise.all([
      s.schedule(['k'], task('a', 15)),
      s.schedule(['k', 'x'], task('b', 5)),
      s.schedule(['k'], task('c', 1)),
    ]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('orders through a shared resource transitively', async () => {
    const s = new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 });
    const log: string[] = [];
    const g = gate();
    const a = s.schedule(['x'], async () => {
      log.push('a');
      await g.promise;
      log.push('a done');
    });
    const b = s.schedule(['x', 'y'], async () => void log.push('b'));
    const c = s.schedule(['y'], async () => void log.push('c'));
    const d = s.schedule(['z'], async () => void log.push('d'));
    await tick();
    expect(log).toEqual(['a', 'd']);
    g.open();
    await Promise.all([a, b, c, d]);
    expect(log).toEqual(['a', 'd', 'a done', 'b', 'c']);
  });

  it('runs disjoint tasks concurrently, at most `concurrency` at once', async () => {
    const s = new OrderedScheduler({ concurrency: 2, ratePerSecond: 0 });
    let running = 0;
    let peak = 0;
    const gates = [gate(), gate(), gate(), gate()];
    const started: number[] = [];
    const all = gates.map((g, i) =>
      s.schedule([`r${i}`], async () => {
        started.push(i);
        running += 1;
        peak = Math.max(peak, running);
        await g.promise;
        running -= 1;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(s.pending).toBe(4);
    gates[1]?.open();
    await tick();
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.open();
    await Promise.all(all);
    expect(peak).toBe(2);
    expect(s.pending).toBe(0);
  });

  it('direct tasks do not take a concurrency slot', async () => {
    const s = new OrderedScheduler({ concurrency: 1, ratePerSecond: 0 });
    const g = gate();
    const slow = s.schedule(['a'], () => g.promise);
    let ran = false;
    await s.schedule(['b'], async () => void (ran = true), { direct: true });
    expect(ran).toBe(true);
    g.open();
    await slow;
  });

  it('settled(resources) waits only for tasks on those resources', async () => {
    const s = new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 });
    const ga = gate();
    const gb = gate();
    let aDone = false;
    void s.schedule(['a'], async () => {
      await ga.promise;
      aDone = true;
    });
    const b = s.schedule(['b'], () => gb.promise);
    let settled = false;
    const waiting = s.settled(['a', 'c']).then(() => (settled = true));
    await tick();
    expect(settled).toBe(false);
    ga.open();
    await waiting;
    expect(aDone).toBe(true);
    expect(s.pending).toBe(1);
    await expect(s.settled(['nothing'])).resolves.toBeUndefined();
    gb.open();
    await b;
  });

  it('idle() resolves when every scheduled task has finished', async () => {
    const s = new OrderedScheduler({ concurrency: 2, ratePerSecond: 0 });
    await expect(s.idle()).resolves.toBeUndefined();
    const g1 = gate();
    const g2 = gate();
    void s.schedule(['a'], () => g1.promise);
    void s.schedule(['a'], () => g2.promise);
    let idle = false;
    const waiting = s.idle().then(() => (idle = true));
    g1.open();
    await tick();
    expect(idle).toBe(false);
    g2.open();
    await waiting;
    expect(s.pending).toBe(0);
  });

  it('a failing task rejects its own promise and does not block later tasks on the resource', async () => {
    const s = new OrderedScheduler({ concurrency: 2, ratePerSecond: 0 });
    const failing = s.schedule(['k'], async () => {
      await sleep(2);
      throw new Error('boom');
    });
    const next = s.schedule(['k'], async () => 'next ran');
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('next ran');
    await s.idle();
    expect(s.pending).toBe(0);
  });

  it('limits task starts per second with ratePerSecond', async () => {
    vi.useFakeTimers();
    const s = new OrderedScheduler({ concurrency: 10, ratePerSecond: 2 });
    const started: number[] = [];
    const all = [0, 1, 2, 3].map((i) => s.schedule([`r${i}`], async () => void started.push(i)));
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual([0, 1]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(started).toEqual([0, 1, 2, 3]);
    await Promise.all(all);
  });

  it('orders by lane and name: one name in two lanes is two resources', async () => {
    const s = new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 });
    const log: string[] = [];
    const first = gate();
    const a = s.schedule(new Resources().add('key:a', '{"id":1}').add('id:thirdId', 'c-1'), async () => {
      await first.promise;
      log.push('a');
    });
    // Another source's key with the same text: not the same row, runs at once.
    const b = s.schedule(new Resources().add('key:b', '{"id":1}'), async () => {
      log.push('b');
    });
    // The same customer through another source's row: waits for a.
    const c = s.schedule(new Resources().add('key:b', '{"id":2}').add('id:thirdId', 'c-1'), async () => {
      log.push('c');
    });
    await b;
    expect(log).toEqual(['b']);
    first.open();
    await Promise.all([a, c]);
    expect(log).toEqual(['b', 'a', 'c']);
    await s.settled(new Resources().add('key:a', '{"id":1}'));
    expect(s.pending).toBe(0);
  });

  it('free: whether no unfinished task names any of the resources', async () => {
    const s = new OrderedScheduler({ concurrency: 1, ratePerSecond: 0 });
    const g = gate();
    const of = (...names: Array<[string, string]>) => {
      const r = new Resources();
      for (const [lane, name] of names) r.add(lane, name);
      return r;
    };
    expect(s.free(of(['key', 'a']))).toBe(true);
    const running = s.schedule(of(['key', 'a'], ['id', 'c1']), () => g.promise);
    // Waiting for the slot counts as unfinished too.
    const waiting = s.schedule(of(['key', 'b']), async () => undefined);
    expect(s.free(of(['key', 'a']))).toBe(false);
    expect(s.free(of(['key', 'x'], ['id', 'c1']))).toBe(false);
    expect(s.free(of(['key', 'b']))).toBe(false);
    // The same name in another lane is another resource.
    expect(s.free(of(['id', 'a'], ['key', 'c1'], ['key', 'x']))).toBe(true);
    g.open();
    await Promise.all([running, waiting]);
    expect(s.free(of(['key', 'a'], ['id', 'c1'], ['key', 'b']))).toBe(true);
  });

  it('takes a resource named twice in one task like once', async () => {
    const s = new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 });
    const log: string[] = [];
    const first = gate();
    const a = s.schedule(['k', 'x', 'k'], async () => {
      await first.promise;
      log.push('a');
    });
    const b = s.schedule(['k'], async () => {
      log.push('b');
    });
    await tick();
    expect(log).toEqual([]);
    first.open();
    await Promise.all([a, b]);
    expect(log).toEqual(['a', 'b']);
    await s.idle();
    expect(s.pending).toBe(0);
  });

  it('lets go of a started task while the queue stays busy (its rows are not kept alive)', async () => {
    // p-queue keeps started tasks in its array while more wait: the scheduler must not hand it ours.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const s = new OrderedScheduler({ concurrency: 1, ratePerSecond: 0 });
    const refs: Array<WeakRef<object>> = [];
    const done: Array<Promise<number>> = [];
    let started = 0;
    const release = gate();
    for (let i = 0; i < 300; i++) {
      const rows = { rows: new Array(100).fill(i) }; // what a request's closure holds
      refs.push(new WeakRef(rows));
      done.push(
        s.schedule([`k${i}`], async () => {
          started += 1;
          if (started === 140) await release.promise;
          return rows.rows.length;
        }),
      );
    }
    await vi.waitFor(() => expect(started).toBe(140));
    // 139 tasks finished, 160 wait: p-queue still holds the finished ones in its array.
    await tick();
    gc();
    await tick();
    gc();
    const alive = refs.slice(0, 139).filter((r) => r.deref() !== undefined).length;
    release.open();
    await Promise.all(done);
    expect(alive).toBe(0);
  });

  it('forgets the resources of finished tasks, and still orders by them across a forgetting', async () => {
    const s = new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 });
    // 120,000 distinct names in requests of 500, one key of each request left running.
    const held = gate();
    const holding = s.schedule(['held'], () => held.promise);
    for (let r = 0; r < 240; r++) {
      const names = Array.from({ length: 500 }, (_, i) => `r${r}k${i}`);
      await s.schedule(names, async () => {});
    }
    // Bounded: twice the live resources (1) plus the slack, not every name ever seen.
    expect(s.trackedResources).toBeLessThanOrEqual(2 * 1 + 20_000 + 500);
    expect(s.trackedResources).toBeGreaterThanOrEqual(1);
    // The running task's resource is remembered: a later task on it waits for it.
    const log: string[] = [];
    const after = s.schedule(['held', 'r0k0'], async () => {
      log.push('after');
    });
    await tick();
    expect(log).toEqual([]);
    held.open();
    await Promise.all([holding, after]);
    expect(log).toEqual(['after']);
  });
});
