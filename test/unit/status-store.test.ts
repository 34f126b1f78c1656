/**
 * The status store (src/status/status-store.ts) against a fake pool: which statement it sends and
 * with which parameters, how it picks the shape of the status write from what a source writes, how
 * it retries, pages and maps what it reads. What the statements do runs against PostgreSQL in
 * test/integration/status-store.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/ops/logger.js';
import { statusSql } from '../../src/status/sql.js';
import { StatusStore, type BatchRecord, type StatusRow } from '../../src/status/status-store.js';

const SQL = statusSql('S');

type Answer = { rows: Array<Record<string, unknown>>; rowCount?: number } | Error;

/** A pool that logs each query and answers from a queue (then `{ rows: [] }`). */
function fakePool(answers: Answer[] = []) {
  const calls: Array<{ name?: string; text: string; values?: unknown[] }> = [];
  return {
    calls,
    answers,
    async query(q: string | { name?: string; text: string; values?: unknown[] }, values?: unknown[]) {
      calls.push(typeof q === 'string' ? { text: q, values } : q);
      const a = answers.shift() ?? { rows: [] };
      if (a instanceof Error) throw a;
      return { rowCount: a.rows.length, ...a };
    },
  };
}

const row = (id: number, over: Partial<StatusRow> = {}): StatusRow => ({
  rowKey: JSON.stringify({ id: String(id) }),
  op: 'add',
  status: 'synced',
  attempts: 1,
  error: null,
  lsn: 0x10n,
  committedAt: new Date('2026-01-01T00:00:00Z'),
  payload: { thirdId: `c${id}` },
  ...over,
});

const BATCH: BatchRecord = {
  optType: 'add',
  rows: 2,
  httpStatus: 200,
  code: '200',
  msg: 'ok',
  apiStatus: 1,
  successNum: 2,
  failNum: 0,
  startedAt: new Date('2026-01-01T00:00:01Z'),
  durationMs: 7,
};

const written = (w: number, i: number): Answer => ({ rows: [{ written: w, inserted: i }] });
const isUpdateShape = (c: { name?: string; text: string }) => c.name === undefined && /UPDATE/.test(c.text);

describe('StatusStore.writeRequest', () => {
  it('writes nothing for nothing; numbers a source once, then sends the named insert shape', async () => {
    const pool = fakePool([{ rows: [] }, written(2, 2), written(1, 1)]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    await store.writeRequest('src', null, []);
    expect(pool.calls).toEqual([]);
    await store.writeRequest('src', BATCH, [row(1), row(2)]);
    await store.writeRequest('src', null, [row(3)]);
    expect(pool.calls.map((c) => c.text)).toEqual([
      SQL.ensureSource,
      SQL.writeRequest(true, 'insert'),
      SQL.writeRequest(false, 'insert'),
    ]);
    expect(pool.calls[0]?.values).toEqual(['src']);
    // Named, by a hash of the text: another schema's statement has another name.
    expect(pool.calls[1]?.name).toMatch(/^tuzhan_write_[0-9a-f]{16}$/);
    expect(pool.calls[2]?.name).toMatch(/^tuzhan_write_[0-9a-f]{16}$/);
    expect(pool.calls[1]?.name).not.toBe(pool.calls[2]?.name);
    const other = fakePool([{ rows: [] }, written(1, 1)]);
    await new StatusStore(other as never, 'T', silentLogger()).writeRequest('src', BATCH, [row(1)]);
    expect(other.calls[1]?.name).not.toBe(pool.calls[1]?.name);
    // The batch's columns follow the ten of the rows, in sync_batch's order.
    expect(pool.calls[1]?.values?.slice(0, 2)).toEqual(['src', '[{"id":"1"},{"id":"2"}]']);
    expect(pool.calls[1]?.values?.slice(10)).toEqual([
      'add',
      2,
      200,
      '200',
      'ok',
      1,
      2,
      0,
      BATCH.startedAt,
      7,
    ]);
    expect(pool.calls[2]?.values).toHaveLength(10);
  });

  it("a first failed try (rows retrying, no batch) keeps the keys' stored op and payload", async () => {
    const pool = fakePool([{ rows: [] }]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    const retrying = { status: 'retrying' as const, error: 'HTTP 503' };
    await store.writeRequest('src', null, [row(1, retrying), row(2, retrying)]);
    // A request whose answer came (a batch row): the ordinary write.
    await store.writeRequest('src', BATCH, [row(3, retrying)]);
    // Without a batch row, the retrying rows keep their stored state and the others are written.
    await store.writeRequest('src', null, [row(4, retrying), row(5)]);
    expect(pool.calls.map((c) => c.text)).toEqual([
      SQL.ensureSource,
      SQL.writeRetrying,
      SQL.writeRequest(true, 'insert'),
      SQL.writeRetrying,
      SQL.writeRequest(false, 'insert'),
    ]);
    expect(pool.calls[1]?.values).toHaveLength(10);
    expect(pool.calls[1]?.values?.slice(0, 2)).toEqual(['src', '[{"id":"1"},{"id":"2"}]']);
    expect(pool.calls[3]?.values?.slice(0, 2)).toEqual(['src', '[{"id":"4"}]']);
    expect(pool.calls[4]?.values?.slice(0, 2)).toEqual(['src', '[{"id":"5"}]']);
    // The statement leaves op and payload of a stored key alone; it only inserts them for a new key.
    const onConflict = SQL.writeRetrying.slice(SQL.writeRetrying.indexOf('ON CONFLICT'));
    expect(onConflict).not.toMatch(/\bop =|payload =/);
    expect(onConflict).toMatch(/WHERE t\.lsn IS NULL OR t\.lsn <= EXCLUDED\.lsn/);
  });

  it("a delete the platform refused keeps the key's stored op and payload, beside its batch row", async () => {
    const pool = fakePool([{ rows: [] }]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    const refused = { op: 'delete' as const, status: 'failed' as const, error: 'rejected' };
    // A refused add (its payload: groups the customer never took) is written as usual.
    await store.writeRequest('src', BATCH, [
      row(1, refused),
      row(2, { status: 'failed', error: 'x' }),
      row(3),
    ]);
    expect(pool.calls.map((c) => c.text)).toEqual([
      SQL.ensureSource,
      SQL.writeRetrying,
      SQL.writeRequest(true, 'insert'),
    ]);
    expect(pool.calls[1]?.values?.slice(0, 2)).toEqual(['src', '[{"id":"1"}]']);
    expect(pool.calls[2]?.values?.slice(0, 2)).toEqual(['src', '[{"id":"2"},{"id":"3"}]']);
  });

  it('knows the keys whose last outcome may be failed or retrying: stored ones read once, then its own', async () => {
    const pool = fakePool([{ rows: [] }, { rows: [] }, { rows: [{ k: '{"id":"9"}' }] }]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    await store.writeRequest('src', null, [row(1, { status: 'retrying', error: 'HTTP 503' })]);
    expect([...(await store.unsettledKeys('src'))].sort()).toEqual(['{"id":"1"}', '{"id":"9"}']);
    await store.writeRequest('src', BATCH, [row(2, { status: 'failed', error: 'x' }), row(3)]);
    expect([...(await store.unsettledKeys('src'))].sort()).toEqual([
      '{"id":"1"}',
      '{"id":"2"}',
      '{"id":"9"}',
    ]);
    expect(pool.calls.filter((c) => c.text === SQL.unsettledKeys)).toHaveLength(1);
    // A new session reads them again.
    store.forgetUnsettled();
    expect([...(await store.unsettledKeys('src'))]).toEqual([]);
    expect(pool.calls.filter((c) => c.text === SQL.unsettledKeys)).toHaveLength(2);
  });

  it('records a TRUNCATE (no rows, a batch) too', async () => {
    const pool = fakePool([{ rows: [] }, written(0, 0)]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    await store.writeRequest('src', BATCH, []);
    expect(pool.calls.map((c) => c.text)).toEqual([SQL.ensureSource, SQL.writeRequest(true, 'insert')]);
  });

  it('switches to the update shape once under half of what a source writes is new keys, and back', async () => {
    // The share of new keys starts at 1 and moves halfway to each write's share: 1 -> 0.5 -> 0.25.
    const pool = fakePool([
      { rows: [] },
      written(4, 0),
      written(4, 0),
      written(4, 4),
      written(0, 0),
      written(4, 4),
    ]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    const shapes: string[] = [];
    for (let i = 0; i < 5; i++) {
      await store.writeRequest('src', i === 2 ? BATCH : null, [row(i)]);
      const c = pool.calls.at(-1) as { name?: string; text: string };
      shapes.push(isUpdateShape(c) ? 'update' : 'insert');
    }
    // 1 (insert) -> 0.5 (insert) -> 0.25 (update, with the batch) -> 0.625 (insert) -> no rows
    // written: unchanged (insert).
    expect(shapes).toEqual(['insert', 'insert', 'update', 'insert', 'insert']);
    expect(pool.calls[3]?.text).toBe(SQL.writeRequest(true, 'update'));
    // A source's share is its own.
    const other = fakePool([{ rows: [] }, written(1, 1)]);
    const s2 = new StatusStore(other as never, 'S', silentLogger());
    await s2.writeRequest('src', null, [row(1)]);
    expect(other.calls[1]?.text).toBe(SQL.writeRequest(false, 'insert'));
  });

  it('retries a write that failed for the connection, telling of the loss; other failures are thrown', async () => {
    const lost = Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    });
    const pool = fakePool([{ rows: [] }, lost, written(1, 1)]);
    const losses: unknown[] = [];
    const store = new StatusStore(pool as never, 'S', silentLogger(), (err) => losses.push(err));
    await store.writeRequest('src', null, [row(1)]);
    expect(losses).toEqual([lost]);
    expect(pool.calls.map((c) => c.text)).toEqual([
      SQL.ensureSource,
      SQL.writeRequest(false, 'insert'),
      SQL.writeRequest(false, 'insert'),
    ]);

    const bad = Object.assign(new Error('syntax error'), { code: '42601' });
    const pool2 = fakePool([{ rows: [] }, bad]);
    const store2 = new StatusStore(pool2 as never, 'S', silentLogger());
    await expect(store2.writeRequest('src', null, [row(1)])).rejects.toBe(bad);

    // Closed: a connection failure is not retried any more (the bridge is stopping).
    const pool3 = fakePool([{ rows: [] }, lost]);
    const store3 = new StatusStore(pool3 as never, 'S', silentLogger());
    store3.close();
    await expect(store3.writeRequest('src', null, [row(1)])).rejects.toBe(lost);
  });
});

describe('StatusStore reads', () => {
  it('lastSent asks only for keys it is given, and maps what the table says', async () => {
    const pool = fakePool([
      { rows: [{ k: '{"id":"1"}', op: 'add', status: 'synced', payload: { thirdId: 'c1' } }] },
    ]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    expect((await store.lastSent('src', [])).size).toBe(0);
    expect(pool.calls).toEqual([]);
    const got = await store.lastSent('src', ['{"id":"1"}', '{"id":"2"}']);
    expect(pool.calls[0]).toEqual({ text: SQL.lastSent, values: ['src', ['{"id":"1"}', '{"id":"2"}']] });
    expect([...got]).toEqual([['{"id":"1"}', { op: 'add', status: 'synced', payload: { thirdId: 'c1' } }]]);
  });

  it('hasRows and recordTruncate', async () => {
    const pool = fakePool([{ rows: [] }, { rows: [{ '?column?': 1 }] }, { rows: [] }]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    expect(await store.hasRows('a')).toBe(false);
    expect(await store.hasRows('b')).toBe(true);
    await store.recordTruncate('a', 'TRUNCATE crm.t');
    expect(pool.calls.map((c) => [c.text, c.values])).toEqual([
      [SQL.hasRows, ['a']],
      [SQL.hasRows, ['b']],
      [SQL.recordTruncate, ['a', 'TRUNCATE crm.t']],
    ]);
  });

  it('pages failed rows by key until a short page, and maps their positions', async () => {
    const failed = (k: string, lsn: string | null) => ({
      k,
      attempts: 3,
      lsn,
      committed_at: lsn ? new Date('2026-01-01T00:00:00Z') : null,
      payload: null,
    });
    const pool = fakePool([
      { rows: [failed('a', '0/1F'), failed('b', null)] },
      { rows: [failed('c', '1/0')] },
    ]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    const pages = [];
    for await (const page of store.failedRows('src', 2)) pages.push(page);
    expect(pool.calls.map((c) => [c.text, c.values])).toEqual([
      [SQL.failedRows, ['src', null, 2]],
      [SQL.failedRows, ['src', 'b', 2]],
    ]);
    expect(pages.map((p) => p.map((r) => [r.rowKey, r.attempts, r.lsn]))).toEqual([
      [
        ['a', 3, 0x1fn],
        ['b', 3, 0n],
      ],
      [['c', 3, 0x100000000n]],
    ]);
    expect(pages[0]?.[0]?.committedAt).toEqual(new Date('2026-01-01T00:00:00Z'));
    expect(pages[0]?.[1]?.committedAt).toBeInstanceOf(Date);

    // With an error to match, its statement and the error as the last parameter; an empty first
    // page ends at once.
    const pool2 = fakePool([{ rows: [] }]);
    const s2 = new StatusStore(pool2 as never, 'S', silentLogger());
    for await (const _ of s2.failedRows('src', 10, 'boom')) throw new Error('no page expected');
    expect(pool2.calls).toEqual([{ text: SQL.failedRowsWithError, values: ['src', null, 10, 'boom'] }]);
  });

  it('failedRowsByKey, syncedKeys and failedCounts', async () => {
    const pool = fakePool([
      { rows: [{ k: 'a', attempts: 1, lsn: '0/2', committed_at: null, payload: { thirdId: 'x' } }] },
      { rows: [{ k: 'a', payload: { thirdId: 'x' } }] },
      { rows: [{ ok: false }] },
      { rows: [{ ok: true }] },
      { rows: [{ source: 'src', n: '7' }] },
    ]);
    const store = new StatusStore(pool as never, 'S', silentLogger());
    expect(await store.failedRowsByKey('src', [])).toEqual([]);
    expect((await store.failedRowsByKey('src', ['a'])).map((r) => [r.rowKey, r.lsn, r.payload])).toEqual([
      ['a', 2n, { thirdId: 'x' }],
    ]);
    const synced = [];
    for await (const page of store.syncedKeys('src', 5)) synced.push(...page);
    expect(synced).toEqual([{ rowKey: 'a', payload: { thirdId: 'x' } }]);
    expect((await store.failedCounts('S')).size).toBe(0);
    expect([...(await store.failedCounts('S'))]).toEqual([['src', 7]]);
    expect(pool.calls.map((c) => [c.text, c.values])).toEqual([
      [SQL.failedRowsByKey, ['src', ['a']]],
      [SQL.syncedKeys, ['src', null, 5]],
      [SQL.exists, ['S']],
      [SQL.exists, ['S']],
      [SQL.failedCounts, undefined],
    ]);
  });
});
