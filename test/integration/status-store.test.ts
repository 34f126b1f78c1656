import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/ops/logger.js';
import { migrate } from '../../src/status/migrate.js';
import { StatusStore, encodeStatusRows, type StatusRow } from '../../src/status/status-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const SCHEMA = 'Store Test';

function row(id: number, over: Partial<StatusRow> = {}): StatusRow {
  return {
    rowKey: JSON.stringify({ id: String(id) }),
    op: 'add',
    status: 'synced',
    attempts: 1,
    error: null,
    lsn: 0x1500e910n,
    committedAt: new Date('2026-11-28T10:00:00.123Z'),
    payload: { thirdId: `c-${id}`, groups: 'vip,north' },
    ...over,
  };
}

describe('encodeStatusRows', () => {
  it('points rows that share an outcome at one tuple, in first-seen order', () => {
    const t2 = new Date('2026-11-28T10:00:01Z');
    const e = encodeStatusRows([
      row(1),
      row(2, { lsn: 0x1600n, committedAt: t2 }),
      row(3),
      row(4, { status: 'failed', error: 'bad "quote" \\ and, {braces}' }),
      row(5, { payload: null }),
    ]);
    expect(e.tupleOf).toBe('{1,2,1,3,1}');
    // op and status as sync_row's one-byte codes, no error as '' (migration 011).
    expect(e.ops).toBe('{a,a,a}');
    expect(e.statuses).toBe('{s,s,f}');
    expect(e.errors).toBe('{"","","bad \\"quote\\" \\\\ and, {braces}"}');
    expect(e.lsns).toBe('{0/1500E910,0/1600,0/1500E910}');
    expect(e.committedAts).toBe(
      '{"2026-11-28T10:00:00.123Z","2026-11-28T10:00:01.000Z","2026-11-28T10:00:00.123Z"}',
    );
    expect(JSON.parse(e.keys)).toEqual([1, 2, 3, 4, 5].map((id) => ({ id: String(id) })));
    expect(JSON.parse(e.payloads)[4]).toBeNull();
  });

  it('tells an error that reads like the null marker from no error', () => {
    const e = encodeStatusRows([row(1, { error: 'N' }), row(2)]);
    expect(e.tupleOf).toBe('{1,2}');
    expect(e.errors).toBe('{"N",""}');
  });
});

describe('StatusStore.writeRequest', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let store: StatusStore;

  beforeAll(async () => {
    db = await createTestDatabase('status_store');
    await migrate(db.url, SCHEMA);
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    store = new StatusStore(pool, SCHEMA, silentLogger());
  });
  afterAll(async () => {
    store?.close();
    await pool?.end();
    await db?.drop();
  });

  async function stored(source: string) {
    const { rows } = await pool.query(
      `SELECT row_key, op, status, attempts, error, lsn::text AS lsn, committed_at, payload
         FROM "Store Test".sync_status WHERE source = $1 ORDER BY (row_key->>'id')::int`,
      [source],
    );
    return rows;
  }

  it('stores every row with its own outcome, and errors byte for byte', async () => {
    const nasty = 'rejected: "x" \\ {a,b} NULL\nline two, 兔展 \u00e9';
    const t2 = new Date('2026-11-28T10:00:01.5Z');
    await store.writeRequest('s1', null, [
      row(1),
      row(2, { op: 'delete', status: 'failed', attempts: 3, error: nasty, lsn: 0x2a00n, committedAt: t2 }),
      row(3, { status: 'skipped', attempts: 0, error: 'NULL', payload: null }),
      row(4, { rowKey: '{"a":"x\\"y","id":"4"}' }),
    ]);
    const rows = await stored('s1');
    expect(rows).toEqual([
      {
        row_key: { id: '1' },
        op: 'add',
        status: 'synced',
        attempts: 1,
        error: null,
        lsn: '0/1500E910',
        committed_at: new Date('2026-11-28T10:00:00.123Z'),
        payload: { thirdId: 'c-1', groups: 'vip,north' },
      },
      {
        row_key: { id: '2' },
        op: 'delete',
        status: 'failed',
        attempts: 3,
        error: nasty,
        lsn: '0/2A00',
        committed_at: t2,
        payload: { thirdId: 'c-2', groups: 'vip,north' },
      },
      {
        row_key: { id: '3' },
        op: 'add',
        status: 'skipped',
        attempts: 0,
        error: 'NULL',
        lsn: '0/1500E910',
        committed_at: new Date('2026-11-28T10:00:00.123Z'),
        payload: null,
      },
      {
        row_key: { a: 'x"y', id: '4' },
        op: 'add',
        status: 'synced',
        attempts: 1,
        error: null,
        lsn: '0/1500E910',
        committed_at: new Date('2026-11-28T10:00:00.123Z'),
        payload: { thirdId: 'c-4', groups: 'vip,north' },
      },
    ]);
  });

  it('replaces a key’s earlier outcome and records the request in sync_batch', async () => {
    await store.writeRequest('s2', null, [row(1, { status: 'retrying', error: 'timeout' }), row(2)]);
    const startedAt = new Date('2026-11-28T10:00:02Z');
    await store.writeRequest(
      's2',
      {
        optType: 'update',
        rows: 1,
        httpStatus: 200,
        code: '200',
        msg: 'ok',
        apiStatus: 1,
        successNum: 1,
        failNum: 0,
        startedAt,
        durationMs: 12,
      },
      [row(1, { op: 'update', attempts: 2 })],
    );
    const rows = await stored('s2');
    expect(rows.map((r) => [r.row_key.id, r.op, r.status, r.attempts, r.error])).toEqual([
      ['1', 'update', 'synced', 2, null],
      ['2', 'add', 'synced', 1, null],
    ]);
    const batches = await pool.query(
      `SELECT opt_type, rows, http_status, code, success_num, started_at FROM "Store Test".sync_batch WHERE source = 's2'`,
    );
    expect(batches.rows).toEqual([
      { opt_type: 'update', rows: 1, http_status: 200, code: '200', success_num: 1, started_at: startedAt },
    ]);
  });

  it('records a request with no rows (a TRUNCATE) in sync_batch only', async () => {
    await store.writeRequest(
      's3',
      {
        optType: 'truncate' as never,
        rows: 0,
        httpStatus: null,
        code: null,
        msg: 'TRUNCATE',
        apiStatus: null,
        successNum: null,
        failNum: null,
        startedAt: new Date(),
        durationMs: 0,
      },
      [],
    );
    expect(await stored('s3')).toEqual([]);
    const n = await pool.query(`SELECT count(*)::int AS n FROM "Store Test".sync_batch WHERE source = 's3'`);
    expect(n.rows[0].n).toBe(1);
  });

  /** Runs `fn` and returns which shape of the status write each of its writes used. */
  async function shapes(fn: () => Promise<void>): Promise<string[]> {
    const sent: string[] = [];
    const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    pool.query = ((q: unknown, ...rest: unknown[]) => {
      if (typeof q === 'object' && q !== null && 'text' in q) {
        const { name, text } = q as { name?: string; text: string };
        if (/sync_row/.test(text)) sent.push(name ? 'insert' : /UPDATE/.test(text) ? 'update' : '?');
      }
      return query(q, ...rest);
    }) as typeof pool.query;
    try {
      await fn();
    } finally {
      pool.query = query as typeof pool.query;
    }
    return sent;
  }

  // A replay cut into flushes differently, or a bridge that lost its lock finishing a request the
  // new leader has overtaken, can store an outcome after that of a later change of the same key:
  // the later change's outcome stays. The same change's later outcome (accepted, then synced)
  // replaces it. Both shapes of the write, each chosen as the store chooses it.
  it.each([
    ['insert', 0],
    ['update', 3],
  ])(
    'never lets an outcome replace that of a later change of the key (%s shape)',
    async (shape, rewrites) => {
      const source = `later-${shape}`;
      const ids = Array.from({ length: 8 }, (_, i) => i + 1);
      await store.writeRequest(
        source,
        null,
        ids.map((id) => row(id, { lsn: 0x3000n, status: 'accepted' })),
      );
      // Rewriting the keys it holds makes the store pick the update shape.
      for (let i = 0; i < rewrites; i++)
        await store.writeRequest(
          source,
          null,
          ids.map((id) => row(id, { lsn: 0x3000n, status: 'accepted' })),
        );
      const sent = await shapes(() =>
        store.writeRequest(source, null, [
          // Older changes of keys 1 and 2, a later one of 3, the same change of 4, a new key 9.
          row(1, { lsn: 0x2000n, op: 'delete', status: 'failed', error: 'older', payload: null }),
          row(2, { lsn: 0x2fffn, status: 'synced' }),
          row(3, { lsn: 0x4000n, op: 'update', status: 'synced', attempts: 2 }),
          row(4, { lsn: 0x3000n, status: 'synced', attempts: 2 }),
          row(9, { lsn: 0x1000n }),
        ]),
      );
      expect(sent).toEqual([shape]);
      const rows = await stored(source);
      expect(rows.map((r) => [r.row_key.id, r.op, r.status, r.attempts, r.error, r.lsn])).toEqual([
        ['1', 'add', 'accepted', 1, null, '0/3000'],
        ['2', 'add', 'accepted', 1, null, '0/3000'],
        ['3', 'update', 'synced', 2, null, '0/4000'],
        ['4', 'add', 'synced', 2, null, '0/3000'],
        ['5', 'add', 'accepted', 1, null, '0/3000'],
        ['6', 'add', 'accepted', 1, null, '0/3000'],
        ['7', 'add', 'accepted', 1, null, '0/3000'],
        ['8', 'add', 'accepted', 1, null, '0/3000'],
        ['9', 'add', 'synced', 1, null, '0/1000'],
      ]);
      expect(rows[0].payload).toEqual({ thirdId: 'c-1', groups: 'vip,north' });
    },
  );

  // A first failed try says `retrying` and keeps what the platform held before the change (op and
  // payload): a restart replays the change from that state. A key not stored before takes the
  // request's. The change's own outcome then replaces everything; an older change's never does.
  it('a retrying outcome keeps the op and payload stored for the key', async () => {
    const before = { thirdId: 'c-1', groups: 'a,b' };
    await store.writeRequest('s5', null, [row(1, { lsn: 0x1000n, payload: before })]);
    await store.writeRequest('s5', null, [
      row(1, {
        lsn: 0x2000n,
        op: 'delete',
        status: 'retrying',
        error: 'timeout',
        payload: { thirdId: 'c-1', groups: 'a' },
      }),
      row(2, { lsn: 0x2000n, status: 'retrying', error: 'timeout' }),
    ]);
    let rows = await stored('s5');
    expect(rows.map((r) => [r.row_key.id, r.op, r.status, r.error, r.lsn, r.payload])).toEqual([
      ['1', 'add', 'retrying', 'timeout', '0/2000', before],
      ['2', 'add', 'retrying', 'timeout', '0/2000', { thirdId: 'c-2', groups: 'vip,north' }],
    ]);
    await store.writeRequest('s5', null, [
      row(1, { lsn: 0x2000n, op: 'delete', payload: { thirdId: 'c-1', groups: 'a' } }),
    ]);
    await store.writeRequest('s5', null, [row(1, { lsn: 0x1800n, status: 'retrying', error: 'older' })]);
    rows = await stored('s5');
    expect([rows[0].op, rows[0].status, rows[0].lsn, rows[0].payload]).toEqual([
      'delete',
      'synced',
      '0/2000',
      { thirdId: 'c-1', groups: 'a' },
    ]);
  });

  it('once it mostly rewrites keys it holds, updates them first: same outcomes, older ones never win', async () => {
    // Which statement the store sends: the `update` shape goes unnamed, with an UPDATE first.
    const sent: string[] = [];
    const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    const spy = ((q: unknown, ...rest: unknown[]) => {
      if (typeof q === 'object' && q !== null && 'text' in q) {
        const { name, text } = q as { name?: string; text: string };
        if (/sync_row/.test(text)) sent.push(name ? 'insert' : /UPDATE/.test(text) ? 'update' : '?');
      }
      return query(q, ...rest);
    }) as typeof pool.query;
    pool.query = spy;
    try {
      const ids = Array.from({ length: 10 }, (_, i) => i + 1);
      await store.writeRequest(
        's4',
        null,
        ids.map((id) => row(id, { lsn: 0x1000n })),
      );
      await store.writeRequest(
        's4',
        null,
        ids.map((id) => row(id, { lsn: 0x2000n, status: 'accepted' })),
      );
      // Key 5's outcome at 0x5000 is newer than what the next request carries for it.
      await store.writeRequest('s4', null, [row(5, { lsn: 0x5000n, op: 'delete', payload: null })]);
      await store.writeRequest(
        's4',
        {
          optType: 'update',
          rows: 12,
          httpStatus: 200,
          code: '200',
          msg: 'ok',
          apiStatus: 1,
          successNum: 12,
          failNum: 0,
          startedAt: new Date(),
          durationMs: 5,
        },
        [...ids, 11, 12].map((id) => row(id, { lsn: 0x3000n, op: 'update', attempts: 2 })),
      );
      // Half of the writes new keys, then none: the share of new keys falls under half.
      expect(sent).toEqual(['insert', 'insert', 'insert', 'update']);
    } finally {
      pool.query = query as typeof pool.query;
    }
    const expected = [...Array.from({ length: 12 }, (_, i) => i + 1)].map((id) =>
      id === 5
        ? [String(id), 'delete', 'synced', 1, '0/5000']
        : [String(id), 'update', 'synced', 2, '0/3000'],
    );
    const rows = await stored('s4');
    expect(rows.map((r) => [r.row_key.id, r.op, r.status, r.attempts, r.lsn])).toEqual(expected);
    expect(rows[4].payload).toBeNull();
    expect(rows[10].payload).toEqual({ thirdId: 'c-11', groups: 'vip,north' });
    const batches = await pool.query(`SELECT rows FROM "Store Test".sync_batch WHERE source = 's4'`);
    expect(batches.rows).toEqual([{ rows: 12 }]);
  });

  it('a new row keeps room for its next version, which its rewrite gives back, in either shape (migration 012)', async () => {
    const shapes: string[] = [];
    const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    pool.query = ((q: unknown, ...rest: unknown[]) => {
      const text = typeof q === 'object' && q !== null && 'text' in q ? (q as { text: string }).text : '';
      if (/sync_row/.test(text))
        shapes.push(/UPDATE "Store Test"\.sync_row/.test(text) ? 'update' : 'insert');
      return query(q, ...rest);
    }) as typeof pool.query;
    const room = async () =>
      (
        await pool.query<{ n: number }>(
          `SELECT length(r.room) AS n FROM "Store Test".sync_row r JOIN "Store Test".sync_source s ON s.id = r.source_id
            WHERE s.name = 's6' ORDER BY r.key::jsonb->>'id'`,
        )
      ).rows.map((r) => r.n);
    try {
      // Keys 1-4 new: each holds 24 spaces of room.
      await store.writeRequest(
        's6',
        null,
        [1, 2, 3, 4].map((id) => row(id, { lsn: 0x1000n })),
      );
      expect(await room()).toEqual([24, 24, 24, 24]);
      // Rewritten while most writes are new keys (INSERT ... ON CONFLICT): key 1 gives its room back.
      await store.writeRequest('s6', null, [row(1, { lsn: 0x2000n })]);
      expect(await room()).toEqual([0, 24, 24, 24]);
      // An older outcome is not written, so key 2 keeps its room.
      await store.writeRequest('s6', null, [row(2, { lsn: 0x0800n })]);
      // Then rewrites only: the UPDATE first gives keys 3 and 4 theirs back.
      await store.writeRequest('s6', null, [row(1, { lsn: 0x3000n })]);
      await store.writeRequest(
        's6',
        null,
        [3, 4].map((id) => row(id, { lsn: 0x3000n })),
      );
      expect(await room()).toEqual([0, 24, 0, 0]);
      expect(shapes[0]).toBe('insert');
      expect(shapes.at(-1)).toBe('update');
    } finally {
      pool.query = query as typeof pool.query;
    }
    // The views show the outcomes as before: no room among sync_status's columns.
    const r = await pool.query(`SELECT * FROM "Store Test".sync_status WHERE source = 's6' LIMIT 1`);
    expect(r.fields.map((f) => f.name)).not.toContain('room');
  });
});
