/**
 * Migration 007 (sync_status as a view over sync_row): a deployment's existing outcomes convert
 * with their keys found again by the bridge, `sync_key` in SQL agrees with the bridge's
 * canonicalJson for any key, and what operators did with the old table still works.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/mapping/source-mapper.js';
import { listMigrations, migrate } from '../../src/status/migrate.js';
import { StatusStore } from '../../src/status/status-store.js';
import { tempDir } from '../helpers/cleanup.js';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/database.js';

const SCHEMA = 'Tuzhan Sync';
const Q = '"Tuzhan Sync"';

describe('status storage (migration 007)', () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase('status_storage');
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
    // Roles are the server's, not the database's.
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    await admin.query('DROP ROLE IF EXISTS tz_reader').finally(() => admin.end());
  });

  it('converts an existing deployment: rows, keys the bridge finds again, views and grants', async () => {
    // A deployment as it stood before 007.
    const before = tempDir('migrations-006');
    for (const m of listMigrations().filter((x) => x.id < 7)) {
      copyFileSync(m.path, join(before, `${m.name}.sql`));
    }
    await migrate(db.url, SCHEMA, { dir: before });
    expect(await relkind('sync_status')).toBe('r');
    await db.query('DROP ROLE IF EXISTS tz_reader');
    await db.query('CREATE ROLE tz_reader');
    await db.query(`GRANT USAGE ON SCHEMA ${Q} TO tz_reader; GRANT SELECT ON ${Q}.sync_status TO tz_reader`);
    // Keys as the bridge wrote them: jsonb from its canonical text (numbers, text with escapes,
    // several columns of different name lengths).
    const keys: Array<Record<string, unknown>> = [
      { id: 1 },
      { id: '2' },
      { cust_no: 'a"b\\c\n\u0001é' },
      { region: 'north', id: 7, ab: null },
    ];
    for (const [i, k] of keys.entries()) {
      await db.query(
        `INSERT INTO ${Q}.sync_status (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
         VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7::pg_lsn, '2025-01-01 10:00Z', '2025-01-01 10:00:01Z', $8)`,
        [
          i % 2 ? 'members' : 'customers',
          canonicalJson(k),
          i === 3 ? 'delete' : 'add',
          i === 2 ? 'failed' : 'synced',
          i + 1,
          i === 2 ? 'no match' : null,
          `0/${(i + 1) * 16}`,
          i === 3 ? null : JSON.stringify({ thirdId: `t${i}`, groups: 'a,b' }),
        ],
      );
    }
    const old = await db.query(`SELECT * FROM ${Q}.sync_status ORDER BY lsn`);
    const oldSummary = await db.query(`SELECT * FROM ${Q}.sync_summary ORDER BY source, status`);
    const oldFailures = await db.query(`SELECT * FROM ${Q}.sync_failures`);

    expect(await migrate(db.url, SCHEMA)).toEqual({
      applied: listMigrations()
        .filter((m) => m.id >= 7)
        .map((m) => m.name),
    });
    expect(await relkind('sync_status')).toBe('v');

    // The same rows through the view, every column (row_key and payload jsonb again), plus key.
    const now = await db.query(`SELECT * FROM ${Q}.sync_status ORDER BY lsn`);
    expect(now.rows.map(({ key: _key, ...r }: Record<string, unknown>) => r)).toEqual(old.rows);
    expect(now.rows.map((r) => (r as { key: string }).key)).toEqual(keys.map((k) => canonicalJson(k)));
    expect((await db.query(`SELECT * FROM ${Q}.sync_summary ORDER BY source, status`)).rows).toEqual(
      oldSummary.rows,
    );
    expect((await db.query(`SELECT * FROM ${Q}.sync_failures`)).rows).toEqual(oldFailures.rows);

    // The bridge finds each converted key by the text it builds.
    const store = new StatusStore(pool, SCHEMA, pino({ level: 'silent' }));
    const found = await store.lastSent(
      'customers',
      [keys[0], keys[2]].map((k) => canonicalJson(k ?? {})),
    );
    expect([...found.keys()].sort()).toEqual(
      [canonicalJson({ id: 1 }), canonicalJson(keys[2] as Record<string, unknown>)].sort(),
    );
    expect(found.get(canonicalJson({ id: 1 }))).toEqual({
      op: 'add',
      status: 'synced',
      payload: { thirdId: 't0', groups: 'a,b' },
    });

    // Whoever could read the old table reads the view and the views over it.
    const reader = await pool.connect();
    try {
      await reader.query('SET ROLE tz_reader');
      const n = await reader.query(`SELECT count(*)::int AS n FROM ${Q}.sync_status`);
      expect(n.rows[0]).toEqual({ n: keys.length });
      await reader.query(`SELECT * FROM ${Q}.sync_failures`);
      await reader.query('RESET ROLE');
    } finally {
      reader.release();
    }
  });

  it('looks a row up by source and key through the primary key', async () => {
    // As a deployment's table is: many keys per source, and known to the planner. (Migration 011
    // rewrites the table, which leaves true statistics: on the four rows above, which plan is
    // cheaper is a coin toss.)
    await db.query(
      `INSERT INTO ${Q}.sync_status (source, row_key, op, status)
       SELECT 'other', jsonb_build_object('id', g), 'add', 'synced' FROM generate_series(1, 2000) g;
       ANALYZE ${Q}.sync_row; ANALYZE ${Q}.sync_source`,
    );
    const { rows } = await db.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT * FROM ${Q}.sync_status WHERE source = 'customers' AND key = ${Q}.sync_key('{"id": 1}')`,
    );
    await db.query(
      `DELETE FROM ${Q}.sync_row WHERE source_id = (SELECT id FROM ${Q}.sync_source WHERE name = 'other')`,
    );
    expect(rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(
      /Index Scan using sync_row_pkey on sync_row[\s\S]*Index Cond: \(\(source_id = s\.id\) AND \(key = '\{"id":1\}'::text\)\)/,
    );
  });

  it('finds the rows not synced through sync_row_unsynced_idx, after 40,000 rows written through the view', async () => {
    // More rows through the view than a smallint sequence has numbers: the trigger must not take
    // one per row. Then a table of mostly synced rows, as a deployment's is, analyzed.
    await db.query(
      `INSERT INTO ${Q}.sync_status (source, row_key, op, status, error)
       SELECT 'many', jsonb_build_object('id', g), 'add', CASE WHEN g % 1000 = 0 THEN 'failed' ELSE 'synced' END,
              CASE WHEN g % 1000 = 0 THEN 'boom' END
         FROM generate_series(1, 40000) g;
       ANALYZE ${Q}.sync_row; ANALYZE ${Q}.sync_source`,
    );
    try {
      const counts = await db.query<{ status: string; error: string | null; n: number }>(
        `SELECT status, error, count(*)::int AS n FROM ${Q}.sync_status WHERE source = 'many'
          GROUP BY status, error ORDER BY status`,
      );
      expect(counts.rows).toEqual([
        { status: 'failed', error: 'boom', n: 40 },
        { status: 'synced', error: null, n: 39960 },
      ]);
      // The planner knows how few rows are not synced (statistics of the status as text: 40 here,
      // ~39,800 if it guessed), so it stays on the index however large the table grows.
      const estimate = await db.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(
        `EXPLAIN (FORMAT JSON) SELECT * FROM ${Q}.sync_status WHERE status <> 'synced'`,
      );
      expect(estimate.rows[0]?.['QUERY PLAN'][0]?.Plan['Plan Rows']).toBeLessThan(4000);
      for (const filter of [`status <> 'synced'`, `status = 'failed'`]) {
        const { rows } = await db.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN SELECT * FROM ${Q}.sync_status WHERE ${filter}`,
        );
        expect(rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(
          /Index Scan (on|using) sync_row_unsynced_idx/,
        );
      }
    } finally {
      await db.query(
        `DELETE FROM ${Q}.sync_row WHERE source_id = (SELECT id FROM ${Q}.sync_source WHERE name = 'many')`,
      );
    }
  });

  it('takes INSERT, UPDATE and DELETE through the view, whatever the search_path', async () => {
    await db.query('SET search_path TO public');
    await db.query(
      `INSERT INTO ${Q}.sync_status (source, row_key, op, status, error) VALUES ('seeded', '{"id": 5}', 'add', 'failed', 'x')`,
    );
    await db.query(
      `UPDATE ${Q}.sync_status SET status = 'synced', error = NULL WHERE source = 'seeded' AND row_key ->> 'id' = '5'`,
    );
    const { rows } = await db.query(
      `SELECT source, key, op, status, attempts, error FROM ${Q}.sync_status WHERE source = 'seeded'`,
    );
    expect(rows).toEqual([
      { source: 'seeded', key: '{"id":5}', op: 'add', status: 'synced', attempts: 0, error: null },
    ]);
    await db.query(`DELETE FROM ${Q}.sync_status WHERE source = 'seeded'`);
    const left = await db.query(`SELECT count(*)::int AS n FROM ${Q}.sync_row r
      JOIN ${Q}.sync_source s ON s.id = r.source_id WHERE s.name = 'seeded'`);
    expect(left.rows[0]).toEqual({ n: 0 });
  });

  it('sync_key in SQL equals the bridge canonical text for any key object', async () => {
    const name = fc.oneof(
      fc.constantFrom('id', 'ab', 'cust_no', 'é', 'Region Id'),
      fc.string({ minLength: 1 }),
    );
    const value = fc.oneof(
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: 'binary-ascii' }),
    );
    // PostgreSQL text cannot hold NUL.
    const key = fc
      .dictionary(name, value, { minKeys: 1, maxKeys: 4 })
      .filter((k) => !JSON.stringify(k).includes('\\u0000'));
    await fc.assert(
      fc.asyncProperty(fc.array(key, { minLength: 1, maxLength: 50 }), async (ks) => {
        const texts = ks.map((k) => canonicalJson(k));
        const { rows } = await db.query<{ k: string }>(
          `SELECT ${Q}.sync_key(j::jsonb) AS k FROM unnest($1::text[]) WITH ORDINALITY AS u(j, n) ORDER BY n`,
          [texts],
        );
        expect(rows.map((r) => r.k)).toEqual(texts);
      }),
      // The counterexample fast-check once found: JavaScript put the integer-like name first.
      {
        numRuns: 40,
        examples: [
          [
            [
              { '0': false, ' ': '' },
              { '10': 1, a: 2 },
            ],
          ],
        ],
      },
    );
  });

  async function relkind(name: string): Promise<string | undefined> {
    const { rows } = await db.query<{ k: string }>(
      `SELECT relkind::text AS k FROM pg_class WHERE oid = to_regclass($1)`,
      [`${Q}.${name}`],
    );
    return rows[0]?.k;
  }
});
