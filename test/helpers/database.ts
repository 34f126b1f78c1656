/**
 * Per-test-file databases on the harness's PostgreSQL. Each file gets a fresh database named from
 * the file (plus a random suffix), dropped (with its slots) when the file is done.
 */
import { inject } from 'vitest';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { quoteIdent } from '../../src/util/sql.js';

export interface TestDatabase {
  name: string;
  url: string;
  /** Runs SQL on the test database with a short-lived client. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('pgAdminUrl');
}

/** Replaces the database name in a postgres:// URL. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/**
 * A database the test owns otherwise (on a server of its own, stopped with it): `query` as in
 * createTestDatabase, `drop` a no-op.
 */
export function databaseAt(name: string, url: string): TestDatabase {
  return {
    name,
    url,
    async query(sql, params) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return await c.query(sql, params);
      } finally {
        await c.end();
      }
    },
    async drop() {},
  };
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `t_${label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 40)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl(), name);
  return {
    ...databaseAt(name, url),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl() });
      await c.connect();
      try {
        // Slots pin the database: end their walsenders and drop them first.
        await c.query(
          `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
          [name],
        );
        await c.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
          [name],
        );
        for (let i = 0; i < 50; i++) {
          const { rows } = await c.query<{ slot_name: string; active: boolean }>(
            `SELECT slot_name, active FROM pg_replication_slots WHERE database = $1`,
            [name],
          );
          if (rows.length === 0) break;
          for (const r of rows) {
            if (!r.active)
              await c.query(`SELECT pg_drop_replication_slot($1)`, [r.slot_name]).catch(() => {});
          }
          await new Promise((res) => setTimeout(res, 100));
        }
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
