/**
 * The status write's plain INSERT for requests of new keys (src/status/write-shapes.ts), on a real
 * PostgreSQL: taken after a run of writes of new keys only; when a request holds a key the table
 * already has, it fails as a whole and the request is written as an upsert, with the same outcome
 * an upsert alone would have stored (an older outcome never replaces a newer one) and one
 * sync_batch row.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/ops/logger.js';
import { migrate } from '../../src/status/migrate.js';
import { StatusStore, type BatchRecord, type StatusRow } from '../../src/status/status-store.js';
import { STREAK } from '../../src/status/write-shapes.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const SCHEMA = 'new_keys';

function row(id: number, lsn: bigint, groups = 'vip'): StatusRow {
  return {
    rowKey: JSON.stringify({ id: String(id) }),
    op: 'add',
    status: 'synced',
    attempts: 1,
    error: null,
    lsn,
    committedAt: new Date('2026-12-05T01:00:00Z'),
    payload: { thirdId: `c-${id}`, groups },
  };
}

function batch(rows: number): BatchRecord {
  return {
    optType: 'add',
    rows,
    httpStatus: 200,
    code: '0',
    msg: 'ok',
    apiStatus: 0,
    successNum: rows,
    failNum: 0,
    startedAt: new Date('2026-12-05T01:00:01Z'),
    durationMs: 12,
  };
}

/** What each status write sent: with or without ON CONFLICT, and the SQLSTATE it failed with. */
interface Sent {
  upsert: boolean;
  failed?: string;
}

describe('status writes of new keys', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let store: StatusStore;
  const sent: Sent[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('status_new_keys');
    await migrate(db.url, SCHEMA);
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    // Watch the pool's statements: which shape each status write was sent as, and how it ended.
    type Query = (...args: unknown[]) => Promise<unknown>;
    const query = pool.query.bind(pool) as Query;
    (pool as unknown as { query: Query }).query = async (...args: unknown[]) => {
      const q = args[0];
      const text = typeof q === 'object' && q !== null ? (q as { text?: string }).text : undefined;
      if (!text?.includes('sync_row') || !text.startsWith('WITH')) return query(...args);
      const s: Sent = { upsert: text.includes('ON CONFLICT') };
      sent.push(s);
      try {
        return await query(...args);
      } catch (err) {
        s.failed = (err as { code?: string }).code;
        throw err;
      }
    };
    store = new StatusStore(pool, SCHEMA, silentLogger());
  });
  afterAll(async () => {
    store?.close();
    await pool?.end();
    await db?.drop();
  });

  async function stored(): Promise<Map<number, { lsn: string; groups: string }>> {
    const { rows } = await db.query<{ id: string; lsn: string; groups: string }>(
      `SELECT row_key->>'id' AS id, lsn::text AS lsn, payload->>'groups' AS groups FROM new_keys.sync_status`,
    );
    return new Map(rows.map((r) => [Number(r.id), { lsn: r.lsn, groups: r.groups }]));
  }

  it('takes the plain INSERT after a run of new keys, and falls back to the upsert on a known key', async () => {
    // STREAK + 1 requests of 10 new keys each: upserts first, then the plain INSERT.
    for (let r = 0; r <= STREAK; r++) {
      const rows = Array.from({ length: 10 }, (_, i) => row(r * 10 + i + 1, 0x100n));
      await store.writeRequest('customers', batch(rows.length), rows);
    }
    expect(sent.map((s) => s.upsert)).toEqual([...new Array<boolean>(STREAK).fill(true), false]);
    expect(sent.every((s) => s.failed === undefined)).toBe(true);
    const first = await stored();
    expect(first.size).toBe((STREAK + 1) * 10);
    expect(first.get(STREAK * 10 + 1)).toEqual({ lsn: '0/100', groups: 'vip' });

    // A request of new keys, one known key with a later change and one with an earlier one
    // (a replay): sent as the plain INSERT, refused, then written as an upsert.
    sent.length = 0;
    const mixed = [row(1000, 0x200n), row(3, 0x200n, 'north'), row(4, 0x80n, 'south'), row(1001, 0x200n)];
    await store.writeRequest('customers', batch(mixed.length), mixed);
    expect(sent).toEqual([{ upsert: false, failed: '23505' }, { upsert: true }]);
    const after = await stored();
    expect(after.size).toBe((STREAK + 1) * 10 + 2);
    expect(after.get(1000)).toEqual({ lsn: '0/200', groups: 'vip' });
    expect(after.get(1001)).toEqual({ lsn: '0/200', groups: 'vip' });
    expect(after.get(3)).toEqual({ lsn: '0/200', groups: 'north' });
    expect(after.get(4)).toEqual({ lsn: '0/100', groups: 'vip' }); // the older outcome did not replace it
    // One sync_batch row per request: the refused statement wrote none.
    const batches = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM new_keys.sync_batch`);
    expect(batches.rows[0]?.n).toBe(STREAK + 2);

    // The next request is an upsert again, though its keys are all new.
    sent.length = 0;
    await store.writeRequest('customers', batch(1), [row(2000, 0x300n)]);
    expect(sent).toEqual([{ upsert: true }]);
  });
});
