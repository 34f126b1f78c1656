/**
 * The delivery unit with a fake platform and a fake store: bisection of whole-batch rejections,
 * one outcome per key, carried failures, retry policies. Expected answers are worked out by hand
 * from the rules (docs/design.md), not by running the code.
 */
import { describe, expect, it, vi } from 'vitest';
import type { DeliveryRow, KeyChange } from '../../src/delivery/requests.js';
import type { SourceConfig } from '../../src/config/types.js';
import { createBridgeEvents } from '../../src/domain/events.js';
import { Delivery, type PlatformSender } from '../../src/delivery/delivery.js';
import { ApiAuthError, ApiRejectedError, ApiUnavailableError } from '../../src/errors.js';
import type { BatchRecord, StatusRow } from '../../src/status/status-store.js';
import type { BatchResult } from '../../src/tuzhan/client.js';
import type { ApiRow, PublicParams } from '../../src/tuzhan/types.js';
import { RETRY } from '../../src/util/retry.js';

const SOURCE = {
  name: 'profiles',
  match: { isMatching: false },
} as unknown as SourceConfig;

/** A platform that rejects a whole request carrying `bad`, and fails rows named in `failRows`. */
class FakePlatform implements PlatformSender {
  readonly requests: string[][] = [];
  transientFailures = 0;
  constructor(
    private readonly bad = new Set<string>(),
    private readonly failRows = new Set<string>(),
  ) {}

  async sendOnce(_params: PublicParams, rows: ApiRow[]): Promise<BatchResult> {
    this.requests.push(rows.map((r) => r.thirdId ?? '?'));
    if (this.transientFailures > 0) {
      this.transientFailures -= 1;
      throw new ApiUnavailableError('platform unavailable: HTTP 503', 503, undefined);
    }
    if (rows.some((r) => this.bad.has(r.thirdId ?? ''))) throw new ApiRejectedError('bad row', 400, '400');
    const outcomes = rows.map((r) =>
      this.failRows.has(r.thirdId ?? '')
        ? { status: 'failed' as const, error: 'no customer matches' }
        : { status: 'synced' as const },
    );
    const failed = outcomes.filter((o) => o.status === 'failed').length;
    return {
      httpStatus: 200,
      code: '200',
      msg: 'ok',
      apiStatus: failed ? 2 : 1,
      successNum: rows.length - failed,
      failNum: failed,
      outcomes,
      durationMs: 1,
    };
  }

  async send(
    params: PublicParams,
    rows: ApiRow[],
    o: {
      onRetry?: (i: { attempt: number; error: ApiUnavailableError; delayMs: number }) => void | Promise<void>;
    },
  ): Promise<BatchResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sendOnce(params, rows);
      } catch (err) {
        if (!(err instanceof ApiUnavailableError)) throw err;
        await o.onRetry?.({ attempt, error: err, delayMs: 0 });
      }
    }
  }
}

class FakeStore {
  readonly writes: Array<{ batch: BatchRecord | null; rows: StatusRow[] }> = [];
  async writeRequest(_source: string, batch: BatchRecord | null, rows: readonly StatusRow[]): Promise<void> {
    this.writes.push({ batch, rows: [...rows] });
  }
  /** The last stored row per key. */
  latest(): Map<string, StatusRow> {
    const out = new Map<string, StatusRow>();
    for (const w of this.writes) for (const r of w.rows) out.set(r.rowKey, r);
    return out;
  }
}

function change(id: string): KeyChange {
  return { rowKey: JSON.stringify({ id }), lsn: 100n, committedAt: new Date(0), priorAttempts: 0 };
}

function row(id: string, c = change(id)): DeliveryRow {
  return { identity: { thirdId: id }, groups: ['g'], items: [{ change: c, op: 'update', groups: ['g'] }] };
}

describe('delivery', () => {
  it('halves a rejected batch until the bad row is alone; it fails, the rest are synced', async () => {
    const platform = new FakePlatform(new Set(['c5']));
    const store = new FakeStore();
    const delivery = new Delivery({ sender: platform, store });
    const ids = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'];
    const statuses = await delivery.deliver({
      source: SOURCE,
      op: 'update',
      rows: ids.map((i) => row(i)),
      policy: 'daemon',
    });
    expect(statuses).toEqual([
      'synced',
      'synced',
      'synced',
      'synced',
      'synced',
      'failed',
      'synced',
      'synced',
    ]);
    // 8 rejected -> [0..3] ok, [4..7] rejected -> [4,5] rejected, [6,7] ok -> [4] ok, [5] rejected.
    expect(platform.requests).toEqual([
      ids,
      ['c0', 'c1', 'c2', 'c3'],
      ['c4', 'c5', 'c6', 'c7'],
      ['c4', 'c5'],
      ['c4'],
      ['c5'],
      ['c6', 'c7'],
    ]);
    const latest = store.latest();
    expect(latest.get('{"id":"c5"}')).toMatchObject({
      status: 'failed',
      error: 'rejected by the platform: bad row',
    });
    expect([...latest.values()].filter((r) => r.status === 'synced')).toHaveLength(7);
    // Every request leaves a sync_batch row, in the order above: rejected (400) and answered (200).
    expect(store.writes.map((w) => w.batch?.httpStatus)).toEqual([400, 200, 400, 400, 200, 400, 200]);
  });

  it('changes of one part each (a snapshot): every outcome is stored with the request that answered it', async () => {
    const platform = new FakePlatform(new Set(['c2']), new Set(['c1']));
    const store = new FakeStore();
    const delivery = new Delivery({ sender: platform, store });
    const ids = ['c0', 'c1', 'c2', 'c3'];
    const rows = ids.map((i) => row(i, { ...change(i), partsLeft: 1 }));
    const statuses = await delivery.deliver({ source: SOURCE, op: 'update', rows, policy: 'daemon' });
    expect(statuses).toEqual(['synced', 'failed', 'failed', 'synced']);
    // 4 rejected -> [c0, c1] answered (c1 failed by the platform), [c2, c3] rejected -> c2 alone
    // rejected, c3 answered: each key stored once, by the request that answered it.
    expect(store.writes.map((w) => w.rows.map((r) => `${JSON.parse(r.rowKey).id}:${r.status}`))).toEqual([
      [],
      ['c0:synced', 'c1:failed'],
      [],
      ['c2:failed'],
      ['c3:synced'],
    ]);
    expect(store.writes[1]?.rows[0]).toMatchObject({ op: 'update', payload: { thirdId: 'c0', groups: 'g' } });
  });

  it('stores one outcome per key and request, with the payload the key contributed', async () => {
    const platform = new FakePlatform();
    const store = new FakeStore();
    const delivery = new Delivery({ sender: platform, store });
    const a = change('a');
    // Membership rows of one customer merged: one API row, two keys; and one key clearing two identities.
    const merged: DeliveryRow = {
      identity: { thirdId: 'm1' },
      groups: ['x', 'y'],
      items: [
        { change: change('k1'), op: 'add', groups: ['x'] },
        { change: change('k2'), op: 'add', groups: ['y'] },
      ],
    };
    const clears: DeliveryRow[] = [
      { identity: { thirdId: 'old1' }, groups: [], items: [{ change: a, op: 'delete', groups: [] }] },
      { identity: { thirdId: 'old2' }, groups: [], items: [{ change: a, op: 'delete', groups: [] }] },
    ];
    await delivery.deliver({ source: SOURCE, op: 'add', rows: [merged], policy: 'daemon' });
    await delivery.deliver({ source: SOURCE, op: 'delete', rows: clears, policy: 'daemon' });
    expect(platform.requests).toEqual([['m1'], ['old1', 'old2']]);
    expect(store.writes[0]?.rows.map((r) => [r.rowKey, r.payload])).toEqual([
      ['{"id":"k1"}', { thirdId: 'm1', groups: 'x' }],
      ['{"id":"k2"}', { thirdId: 'm1', groups: 'y' }],
    ]);
    expect(store.writes[1]?.rows).toHaveLength(1);
    expect(store.writes[1]?.rows[0]).toMatchObject({
      rowKey: '{"id":"a"}',
      op: 'delete',
      payload: { thirdId: 'old2' },
    });
  });

  it('a key whose part failed records failed for its later parts too; a row the platform fails carries its error', async () => {
    const platform = new FakePlatform(new Set(), new Set(['b']));
    const store = new FakeStore();
    const delivery = new Delivery({ sender: platform, store });
    const carried = { ...change('a'), failure: 'no identity value' };
    await delivery.deliver({
      source: SOURCE,
      op: 'update',
      rows: [row('a', carried), row('b')],
      policy: 'daemon',
    });
    expect(store.latest().get('{"id":"a"}')).toMatchObject({ status: 'failed', error: 'no identity value' });
    expect(store.latest().get('{"id":"b"}')).toMatchObject({
      status: 'failed',
      error: 'no customer matches',
    });
  });

  it('a change the platform refused in part sends nothing more; its key stays failed, keeping its stored state', async () => {
    // Key k moves from customer x to customer y: delete x (refused), then add y; key o adds alone.
    const platform = new FakePlatform(new Set(['x']));
    const store = new FakeStore();
    const delivery = new Delivery({ sender: platform, store });
    const k = change('k');
    const o = change('o');
    const del = {
      identity: { thirdId: 'x' },
      groups: ['g'],
      items: [{ change: k, op: 'delete' as const, groups: ['g'] }],
    };
    const add = (id: string, c: KeyChange): DeliveryRow => ({
      identity: { thirdId: id },
      groups: ['g'],
      items: [{ change: c, op: 'add', groups: ['g'] }],
    });
    expect(await delivery.deliver({ source: SOURCE, op: 'delete', rows: [del], policy: 'daemon' })).toEqual([
      'failed',
    ]);
    const statuses = await delivery.deliver({
      source: SOURCE,
      op: 'add',
      rows: [add('y', k), add('z', o)],
      policy: 'daemon',
    });
    expect(statuses).toEqual(['failed', 'synced']);
    expect(platform.requests).toEqual([['x'], ['z']]);
    // Stored without a payload and without a batch row: the store keeps the key's op and payload.
    expect(store.writes.at(-2)).toEqual({
      batch: null,
      rows: [expect.objectContaining({ rowKey: k.rowKey, status: 'failed', payload: null, attempts: 1 })],
    });
    expect(store.latest().get(k.rowKey)?.error).toMatch(/^rejected by the platform/);
    expect(store.latest().get(o.rowKey)?.status).toBe('synced');
  });

  it('daemon: retries transient failures, marking the rows retrying after the first; command: gives up', async () => {
    const events = createBridgeEvents();
    const retries: number[] = [];
    events.on('retry', (r) => retries.push(r.attempt));
    const platform = new FakePlatform();
    platform.transientFailures = 2;
    const store = new FakeStore();
    const delivery = new Delivery({ sender: platform, store, events });
    expect(
      await delivery.deliver({ source: SOURCE, op: 'update', rows: [row('a')], policy: 'daemon' }),
    ).toEqual(['synced']);
    expect(retries).toEqual([1, 2]);
    expect(store.writes.map((w) => w.rows.map((r) => [r.status, r.attempts]))).toEqual([
      [['retrying', 1]],
      [['synced', 3]],
    ]);

    // A command gives up after RETRY.command's tries (its backoff waits on fake timers here).
    platform.transientFailures = 10;
    vi.useFakeTimers();
    try {
      const given = platform.requests.length;
      const failed = delivery.deliver({ source: SOURCE, op: 'update', rows: [row('z')], policy: 'command' });
      const outcome = expect(failed).rejects.toThrow(ApiUnavailableError);
      await vi.runAllTimersAsync();
      await outcome;
      expect(platform.requests.length - given).toBe(RETRY.command.maxTries);
    } finally {
      vi.useRealTimers();
    }
  });

  it('stores a change of several parts once, with its last part; a failed part fails it', async () => {
    const platform = new FakePlatform(new Set(['old-b']));
    const store = new FakeStore();
    const delivery = new Delivery({ sender: platform, store });
    // Row mode: a lost a group (delete), then its groups are added; b's delete is rejected.
    const a: KeyChange = { ...change('a'), partsLeft: 2 };
    const b: KeyChange = { ...change('b'), partsLeft: 2 };
    const lost = (id: string, c: KeyChange): DeliveryRow => ({
      identity: { thirdId: id },
      groups: ['north'],
      items: [{ change: c, op: 'delete', groups: ['north'] }],
    });
    const added = (id: string, c: KeyChange): DeliveryRow => ({
      identity: { thirdId: id },
      groups: ['vip', 'south'],
      items: [{ change: c, op: 'add', groups: ['vip', 'south'] }],
    });
    await delivery.deliver({ source: SOURCE, op: 'delete', rows: [lost('a', a)], policy: 'daemon' });
    await delivery.deliver({ source: SOURCE, op: 'delete', rows: [lost('old-b', b)], policy: 'daemon' });
    // The dispatcher counts the answered parts down after each request.
    a.partsLeft = 1;
    b.partsLeft = 1;
    await delivery.deliver({
      source: SOURCE,
      op: 'add',
      rows: [added('a', a), added('b', b)],
      policy: 'daemon',
    });
    // Each request leaves its sync_batch row; the keys' rows are written with the last request only.
    // b's change was refused in part: its add is not sent, and b is stored failed without a payload
    // (the store keeps what the platform still holds: docs/design.md, "A change refused in part").
    expect(store.writes.map((w) => [w.batch?.httpStatus, w.rows.map((r) => r.rowKey)])).toEqual([
      [200, []],
      [400, []],
      [undefined, ['{"id":"b"}']],
      [200, ['{"id":"a"}']],
    ]);
    expect(platform.requests).toEqual([['a'], ['old-b'], ['a']]);
    expect(store.latest().get('{"id":"a"}')).toMatchObject({
      op: 'add',
      status: 'synced',
      payload: { thirdId: 'a', groups: 'vip,south' },
    });
    expect(store.latest().get('{"id":"b"}')).toMatchObject({
      status: 'failed',
      error: 'rejected by the platform: bad row',
      payload: null,
    });
  });

  it('a key whose rows a bisection splits is stored once, after its last row is answered', async () => {
    for (const partsLeft of [undefined, 2]) {
      const platform = new FakePlatform(new Set(['x3']));
      const store = new FakeStore();
      const delivery = new Delivery({ sender: platform, store });
      const a: KeyChange = { ...change('a'), partsLeft };
      const clear = (id: string): DeliveryRow => ({
        identity: { thirdId: id },
        groups: [],
        items: [{ change: a, op: 'delete', groups: [] }],
      });
      await delivery.deliver({
        source: SOURCE,
        op: 'delete',
        rows: [row('x0'), clear('old1'), clear('old2'), row('x3')],
        policy: 'daemon',
      });
      // [x0 old1 old2 x3] rejected -> [x0 old1] ok -> [old2 x3] rejected -> [old2] ok -> [x3] rejected.
      expect(platform.requests).toEqual([
        ['x0', 'old1', 'old2', 'x3'],
        ['x0', 'old1'],
        ['old2', 'x3'],
        ['old2'],
        ['x3'],
      ]);
      expect(store.writes.map((w) => w.rows.map((r) => [r.rowKey, r.status]))).toEqual([
        [],
        [['{"id":"x0"}', 'synced']],
        [],
        [['{"id":"a"}', 'synced']],
        [['{"id":"x3"}', 'failed']],
      ]);
      expect(store.latest().get('{"id":"a"}')).toMatchObject({ payload: { thirdId: 'old2' } });
    }
  });

  it('tells the metrics what each try of a request came to: retries, reachability, outcomes per key', async () => {
    const events = createBridgeEvents();
    const seen: unknown[] = [];
    for (const name of ['request', 'rows', 'retry', 'apiReachable'] as const)
      events.on(name, (e: unknown) => seen.push([name, e]));
    // A platform that answers, in turn: a network error (no HTTP answer), a refused token, a 503,
    // then the real answer (c2 failed by the platform, the rest synced).
    const platform = new FakePlatform(new Set(['c5']), new Set(['c2']));
    const failures: Error[] = [
      Object.assign(new ApiUnavailableError('connect ECONNREFUSED', undefined, undefined), { durationMs: 4 }),
      new ApiAuthError('token refused', 'tuzhan.token', true, 401),
      new ApiUnavailableError('platform unavailable: HTTP 503', 503, undefined),
    ];
    const sender: PlatformSender = {
      sendOnce: (params, rows) => platform.sendOnce(params, rows),
      async send(params, rows, o) {
        for (let attempt = 1; ; attempt++) {
          const error = failures.shift();
          if (!error) return platform.sendOnce(params, rows);
          await o.onRetry?.({ attempt, error: error as ApiUnavailableError, delayMs: 10 * attempt });
        }
      },
    };
    const store = new FakeStore();
    const delivery = new Delivery({ sender, store, events });
    // c0's key contributes two rows to the request: it counts once.
    const c0 = change('c0');
    const rows = [row('c0', c0), row('c1'), row('c2'), row('x', c0)];
    await delivery.deliver({ source: SOURCE, op: 'add', rows, policy: 'daemon' });
    const tried = (attempt: number, reason: string, reachable: boolean, httpStatus?: number, ms = 0) => [
      ['apiReachable', reachable],
      ['retry', { source: 'profiles', reason, attempt, delayMs: 10 * attempt }],
      [
        'request',
        { source: 'profiles', optType: 'add', rows: 4, outcome: reason, durationMs: ms, httpStatus },
      ],
    ];
    expect(seen).toEqual([
      ...tried(1, 'transient', false, undefined, 4),
      ...tried(2, 'auth', true, 401),
      ...tried(3, 'transient', true, 503),
      ['apiReachable', true],
      [
        'request',
        {
          source: 'profiles',
          optType: 'add',
          rows: 4,
          outcome: 'partial',
          httpStatus: 200,
          code: '200',
          durationMs: 1,
        },
      ],
      ['rows', { source: 'profiles', op: 'add', status: 'synced', count: 2 }],
      ['rows', { source: 'profiles', op: 'add', status: 'failed', count: 1 }],
    ]);
    // The stored rows: the first try's `retrying`, then each key's last row of the answer.
    expect(store.writes.map((w) => w.rows.map((r) => `${r.rowKey}:${r.status}/${r.attempts}`))).toEqual([
      ['{"id":"c0"}:retrying/1', '{"id":"c1"}:retrying/1', '{"id":"c2"}:retrying/1'],
      ['{"id":"c0"}:synced/4', '{"id":"c1"}:synced/4', '{"id":"c2"}:failed/4'],
    ]);
    expect(store.writes[1]?.rows[2]?.error).toBe('no customer matches');

    // All synced: ok. Rejected as a whole: split, the bad row alone fails, the other is synced.
    seen.length = 0;
    await delivery.deliver({ source: SOURCE, op: 'delete', rows: [row('c6')], policy: 'daemon' });
    expect(seen[1]).toEqual([
      'request',
      {
        source: 'profiles',
        optType: 'delete',
        rows: 1,
        outcome: 'ok',
        httpStatus: 200,
        code: '200',
        durationMs: 1,
      },
    ]);
    seen.length = 0;
    const rejected = await delivery.deliver({
      source: SOURCE,
      op: 'delete',
      rows: [row('c5'), row('c7')],
      policy: 'daemon',
    });
    expect(rejected).toEqual(['failed', 'synced']);
    const shape = (e: unknown) => {
      const [name, v] = e as [string, Record<string, unknown>];
      return name === 'request'
        ? `${name} ${v.rows} ${v.outcome} ${v.httpStatus} ${v.code}`
        : `${name} ${JSON.stringify(v)}`;
    };
    expect(seen.map(shape)).toEqual([
      'request 2 rejected 400 400',
      'retry {"source":"profiles","reason":"rejected-split","attempt":1,"delayMs":0}',
      'request 1 rejected 400 400',
      'rows {"source":"profiles","op":"delete","status":"failed","count":1}',
      'apiReachable true',
      'request 1 ok 200 200',
      'rows {"source":"profiles","op":"delete","status":"synced","count":1}',
    ]);
    // A rejection's duration is the time it took (the client's figure when it has one).
    for (const e of seen) {
      const [name, v] = e as [string, { outcome?: string; durationMs: number }];
      if (name === 'request' && v.outcome === 'rejected') {
        expect(v.durationMs).toBeGreaterThanOrEqual(0);
        expect(v.durationMs).toBeLessThan(60_000);
      }
    }
  });

  it('records outcomes decided without sending', async () => {
    const store = new FakeStore();
    const events = createBridgeEvents();
    const counted: unknown[] = [];
    events.on('rows', (e) => counted.push(e));
    const delivery = new Delivery({ sender: new FakePlatform(), store, events });
    await delivery.record('profiles', []);
    expect(store.writes).toEqual([]);
    await delivery.record('profiles', [
      { change: change('gone'), op: 'delete', status: 'skipped', error: 'row gone' },
    ]);
    expect(store.writes).toEqual([
      {
        batch: null,
        rows: [
          expect.objectContaining({
            rowKey: '{"id":"gone"}',
            status: 'skipped',
            error: 'row gone',
            payload: null,
          }),
        ],
      },
    ]);
    expect(counted).toEqual([{ source: 'profiles', op: 'delete', status: 'skipped', count: 1 }]);
  });
});
