/**
 * A first start fails fast (issue 11): with credentials the platform refuses, or no platform, it
 * refuses before creating anything (no schema, no publication, no slot pinning WAL).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { freePort } from '../../src/throwaway/postgres.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { CRM_SCHEMA, startTestBridge } from '../helpers/pipeline.js';

describe('first start', () => {
  let db: TestDatabase;
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('first start');
    await db.query(CRM_SCHEMA);
  });
  afterAll(async () => {
    await sim.close();
    await db.drop();
  });

  async function nothingCreated(): Promise<void> {
    const { rows } = await db.query<{ slot: boolean; publication: boolean; schema: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS slot,
              EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AS publication,
              EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'Tuzhan Sync') AS schema`,
      [db.name],
    );
    expect(rows[0]).toEqual({ slot: false, publication: false, schema: false });
  }

  it('refuses credentials the platform refuses, before creating anything', async () => {
    await expect(startTestBridge({ db, apiUrl: sim.url, token: 'wrong' })).rejects.toThrow(
      /the platform refuses the credentials \(.*\); nothing was created: fix it and start again/,
    );
    await nothingCreated();
  });

  it('refuses a platform it cannot reach, before creating anything', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    await expect(startTestBridge({ db, apiUrl: closed })).rejects.toThrow(/the platform cannot be reached/);
    await nothingCreated();
  });

  it('starts when the platform answers', async () => {
    const running = await startTestBridge({ db, apiUrl: sim.url });
    try {
      const { rows } = await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1`, [db.name]);
      expect(rows).toHaveLength(1);
    } finally {
      await running.stop();
    }
  });
});
