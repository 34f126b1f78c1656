/**
 * The status views as an operator reads them: `sync_summary.oldest_committed_at` is the age of what
 * still waits or failed, never of finished rows, also on a schema migrated before that was so.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listMigrations, migrate } from '../../src/status/migrate.js';
import { quoteIdent } from '../../src/util/sql.js';
import { tempDir } from '../helpers/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const ROWS = `
  (source, row_key, op, status, committed_at) VALUES
  ('s', '{"id": 1}', 'add', 'skipped', now() - interval '30 days'),
  ('s', '{"id": 2}', 'add', 'synced', now() - interval '20 days'),
  ('s', '{"id": 3}', 'add', 'failed', now() - interval '2 hours'),
  ('s', '{"id": 4}', 'add', 'retrying', now() - interval '1 minute')`;

/** sync_summary as {status: age in whole hours or null}. */
async function ages(db: TestDatabase, schema: string): Promise<Record<string, number | null>> {
  const { rows } = await db.query<{ status: string; hours: number | null }>(
    `SELECT status, floor(extract(epoch FROM now() - oldest_committed_at) / 3600)::int AS hours
       FROM ${quoteIdent(schema)}.sync_summary ORDER BY status`,
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.hours]));
}

describe('sync_summary', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('status views');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('gives the age of failed, retrying and accepted rows, not of skipped or synced ones', async () => {
    await migrate(db.url, 'views new');
    await db.query(`INSERT INTO "views new".sync_status ${ROWS}`);
    expect(await ages(db, 'views new')).toEqual({ failed: 2, retrying: 0, skipped: null, synced: null });
  });

  it('a schema migrated before 006 gets the same view from the migrations after it', async () => {
    const dir = tempDir('migrations');
    for (const m of listMigrations().filter((m) => m.id < 6))
      copyFileSync(m.path, join(dir, `${m.name}.sql`));
    await migrate(db.url, 'views old', { dir });
    await db.query(`INSERT INTO "views old".sync_status ${ROWS}`);
    // What operators saw: a skipped row from a month ago as the oldest of a "backlog".
    expect((await ages(db, 'views old')).skipped).toBe(30 * 24);
    expect(await migrate(db.url, 'views old')).toEqual({
      applied: listMigrations()
        .filter((m) => m.id >= 6)
        .map((m) => m.name),
    });
    expect(await ages(db, 'views old')).toEqual({ failed: 2, retrying: 0, skipped: null, synced: null });
  });
});
