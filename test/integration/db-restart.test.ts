/**
 * A sidecar must never keep its database from restarting (issue 15). PostgreSQL's fast shutdown
 * waits for every walsender's client to confirm what it was sent; the bridge cannot store outcomes
 * while the server shuts down, so it must let go of the replication connection at once, come back
 * when the server does, and lose nothing. Runs on a PostgreSQL of its own, since it restarts it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { startPostgres, type RunningPostgres } from '../../src/throwaway/postgres.js';
import { databaseAt, type TestDatabase } from '../helpers/database.js';
import {
  CRM_SCHEMA,
  eventually,
  expectedGroups,
  startTestBridge,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

describe('a PostgreSQL restart with requests in flight', () => {
  let server: RunningPostgres;
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;

  beforeAll(async () => {
    server = await startPostgres({ prefer: ['local', 'embedded'], settings: { max_connections: '50' } });
    const url = server.url;
    db = databaseAt('postgres', url);
    await db.query(CRM_SCHEMA);
    sim = await startSimulator({ token: 'test-token' });
  }, 60_000);
  afterAll(async () => {
    await running?.stop(2000).catch(() => {});
    await sim?.close();
    await server?.stop();
  });

  it('pg_ctl restart -m fast finishes within seconds; the bridge comes back and loses nothing', async () => {
    expect(server.restart, 'a server started with pg_ctl').toBeDefined();
    running = await startTestBridge({ db, apiUrl: sim.url, batching: { maxBatchSize: 10 } });
    let inflight = 0;
    running.bridge.events.on('buffer', (b) => (inflight = b.inflight));
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'a' || i, 'g' || (i % 3) FROM generate_series(1, 20) i`,
    );
    await waitForCatchUp(db);

    // Requests in flight: the platform answers slowly while a burst of changes is sent.
    sim.setFaults({ latencyMs: 1500 });
    const before = sim.stats().requests;
    await db.query(`UPDATE crm.customer_profile SET "Group Names" = 'restart,' || cust_no`);
    await db.query(
      `INSERT INTO crm.member_group (member_id, group_name) SELECT 'a' || i, 'm' || i FROM generate_series(1, 30) i`,
    );
    await eventually(() => expect(sim.stats().requests).toBeGreaterThan(before), 10_000, 10);
    // The moment: requests in flight, and the slot has not confirmed the changes.
    expect(inflight).toBeGreaterThan(0);
    const lag = await db.query<{ behind: boolean }>(
      `SELECT confirmed_flush_lsn < pg_current_wal_insert_lsn() AS behind FROM pg_replication_slots WHERE slot_name = $1`,
      [db.name],
    );
    expect(lag.rows[0]?.behind).toBe(true);

    const started = Date.now();
    await (server.restart as NonNullable<RunningPostgres['restart']>)('fast', 30);
    const tookMs = Date.now() - started;
    expect(tookMs, `pg_ctl restart -m fast took ${tookMs} ms`).toBeLessThan(10_000);
    sim.setFaults({ latencyMs: 0 });

    // Back: later changes flow, and everything before the restart arrived.
    await eventually(
      () => db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('after', 'x')`),
      20_000,
      200,
    );
    await waitForCatchUp(db, db.name, 60_000);
    const ids = [...Array.from({ length: 30 }, (_, i) => `a${i + 1}`), 'after'];
    const platform: Record<string, string[]> = {};
    for (const id of ids) {
      const g = sim.groupsOf('thirdId', id);
      if (g && g.length) platform[id] = [...g].sort();
    }
    expect(platform).toEqual(await expectedGroups(db));
    const unsettled = await db.query(
      `SELECT 1 FROM "Tuzhan Sync".sync_status WHERE status NOT IN ('synced', 'skipped')`,
    );
    expect(unsettled.rowCount).toBe(0);
  }, 120_000);
});
