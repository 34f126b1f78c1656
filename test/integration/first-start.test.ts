/**
 * A first start fails fast (issue 11): with credentials the platform refuses, or no platform, it
 * refuses before creating anything (no schema, no publication, no slot pinning WAL).
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { checkServer } from '../../src/source/checks.js';
import { freePort } from '../../src/throwaway/postgres.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, testConfig } from '../helpers/pipeline.js';

describe('first start', () => {
  const fx = usePipelineFixture('first start', { per: 'file' });

  async function nothingCreated(): Promise<void> {
    const { rows } = await fx.db.query<{ slot: boolean; publication: boolean; schema: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS slot,
              EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AS publication,
              EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'Tuzhan Sync') AS schema`,
      [fx.db.name],
    );
    expect(rows[0]).toEqual({ slot: false, publication: false, schema: false });
  }

  it('refuses credentials the platform refuses, before creating anything', async () => {
    await expect(startTestBridge({ db: fx.db, apiUrl: fx.sim.url, token: 'wrong' })).rejects.toThrow(
      /the platform refuses the credentials \(.*\); nothing was created: fix it and start again/,
    );
    await nothingCreated();
  });

  it('refuses a platform it cannot reach, before creating anything', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    await expect(startTestBridge({ db: fx.db, apiUrl: closed })).rejects.toThrow(
      /the platform cannot be reached/,
    );
    await nothingCreated();
  });

  // A publication FOR ALL TABLES would publish the bridge's own status tables (every outcome it
  // stores would come back as a change) and every other table of the database: the bridge manages
  // the list of tables itself, so it refuses one, names it and the way out, and creates nothing.
  it('refuses a publication FOR ALL TABLES by that name, before creating anything, and check says so', async () => {
    await fx.db.query(`CREATE PUBLICATION "${fx.db.name}" FOR ALL TABLES`);
    try {
      await expect(startTestBridge({ db: fx.db, apiUrl: fx.sim.url })).rejects.toThrow(
        new RegExp(
          `^publication: publication ${fx.db.name} is FOR ALL TABLES; the bridge manages its own table list — fix: use another postgres.publication name`,
          'm',
        ),
      );
      const { rows } = await fx.db.query<{ all: boolean; slot: boolean; schema: boolean }>(
        `SELECT (SELECT puballtables FROM pg_publication WHERE pubname = $1) AS all,
                EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS slot,
                EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'Tuzhan Sync') AS schema`,
        [fx.db.name],
      );
      expect(rows[0]).toEqual({ all: true, slot: false, schema: false });
      const c = new pg.Client({ connectionString: fx.db.url });
      await c.connect();
      try {
        const findings = await checkServer(c, testConfig({ db: fx.db, apiUrl: fx.sim.url }));
        expect(findings.find((f) => f.check === 'publication')).toMatchObject({
          ok: false,
          detail: `publication ${fx.db.name} is FOR ALL TABLES; the bridge manages its own table list`,
        });
      } finally {
        await c.end();
      }
    } finally {
      await fx.db.query(`DROP PUBLICATION "${fx.db.name}"`);
    }
  });

  it('starts when the platform answers', async () => {
    const running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    try {
      const { rows } = await fx.db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1`, [
        fx.db.name,
      ]);
      expect(rows).toHaveLength(1);
    } finally {
      await running.stop();
    }
  });
});
