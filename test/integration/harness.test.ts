import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('test harness', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('harness');
  });
  afterAll(async () => {
    await db.drop();
  });

  it('gives each file a database with logical decoding enabled', async () => {
    const { rows } = await db.query<{ wal_level: string; db: string }>(
      `SELECT current_setting('wal_level') AS wal_level, current_database() AS db`,
    );
    expect(rows[0]).toEqual({ wal_level: 'logical', db: db.name });
  });
});
