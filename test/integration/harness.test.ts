import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
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

  // The version matrix (npm run test:pg-matrix) is only worth its time if each run is on its major.
  it.runIf(process.env.TUZHAN_TEST_PG_MAJOR)(
    'runs the PostgreSQL major TUZHAN_TEST_PG_MAJOR asks for',
    () => {
      expect(inject('pgMajor')).toBe(Number(process.env.TUZHAN_TEST_PG_MAJOR));
    },
  );
});
