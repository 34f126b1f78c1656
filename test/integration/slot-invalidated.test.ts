/**
 * A slot the server invalidated (`max_slot_wal_keep_size` exceeded, `wal_status = lost`) is never
 * streamed past silently: the bridge stops naming the slot and the remedy, and `run --resync`
 * recovers every change. Runs on a PostgreSQL of its own with a small `max_slot_wal_keep_size`.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkServer } from '../../src/source/checks.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { startPostgres, type RunningPostgres } from '../../src/throwaway/postgres.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { databaseAt, type TestDatabase } from '../helpers/database.js';
import {
  CRM_SCHEMA,
  eventually,
  expectedGroups,
  startTestBridge,
  testConfig,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

describe('an invalidated slot', () => {
  let server: RunningPostgres;
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;

  beforeAll(async () => {
    server = await startPostgres({
      prefer: ['local', 'embedded'],
      settings: { max_slot_wal_keep_size: '16MB', max_wal_size: '64MB', min_wal_size: '32MB' },
    });
    const url = server.url;
    db = databaseAt('postgres', url);
    await db.query(CRM_SCHEMA);
    await db.query('CREATE TABLE public.junk (v text)');
    sim = await startSimulator({ token: 'test-token' });
  }, 60_000);
  afterEach(async () => {
    sim.setFaults({ errorRate: 0 });
    await running?.stop(2000).catch(() => {});
    running = undefined;
  });
  afterAll(async () => {
    await sim?.close();
    await server?.stop();
  });

  /** Writes WAL well past max_slot_wal_keep_size and checkpoints: the server invalidates the slot. */
  async function outrunTheSlot(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      await db.query(
        `INSERT INTO public.junk SELECT repeat(md5(i::text), 32) FROM generate_series(1, 12000) i`,
      );
      await db.query('SELECT pg_switch_wal()');
    }
    await db.query('CHECKPOINT');
    await eventually(async () => {
      const { rows } = await db.query<{ wal_status: string }>(
        `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`,
        [db.name],
      );
      expect(rows[0]?.wal_status).toBe('lost');
    }, 20_000);
  }

  const IDS = ['v1', 'v2', 'v3', 'w1', 'x1', 'x2'];
  function platform(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const id of IDS) {
      const g = sim.groupsOf('thirdId', id);
      if (g && g.length) out[id] = [...g].sort();
    }
    return out;
  }

  it('found at start: refused with the remedy; run --resync recovers every change', async () => {
    running = await startTestBridge({ db, apiUrl: sim.url });
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('v1', 'a'), ('v2', 'b'), ('v3', 'c')`,
    );
    await waitForCatchUp(db);
    await running.stop();
    running = undefined;
    await db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'v1'`);
    await db.query(`UPDATE crm.customer_profile SET "Group Names" = 'bb' WHERE cust_no = 'v2'`);
    await outrunTheSlot();

    await expect(startTestBridge({ db, apiUrl: sim.url })).rejects.toThrow(
      /replication slot postgres was invalidated by the server \(wal_status lost\): .*run `tuzhan-cdc run --resync`/,
    );
    // `check` says so too, with the remedy.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const findings = await checkServer(c, testConfig({ db, apiUrl: sim.url }));
      expect(findings.find((f) => f.check === 'WAL headroom')).toMatchObject({
        ok: false,
        fix: expect.stringContaining('tuzhan-cdc run --resync'),
      });
    } finally {
      await c.end();
    }
    running = await startTestBridge({ db, apiUrl: sim.url, resync: true });
    await waitForCatchUp(db);
    expect(platform()).toEqual(await expectedGroups(db));
    expect(sim.groupsOf('thirdId', 'v1')).toEqual([]);
  }, 120_000);

  it('while streaming: the bridge stops naming the slot and the remedy; run --resync recovers', async () => {
    running = await startTestBridge({ db, apiUrl: sim.url });
    await waitForCatchUp(db);
    // The platform fails, so nothing is confirmed while the server writes WAL past the limit.
    sim.setFaults({ errorRate: 1 });
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('w1', 'late')`);
    await eventually(() => expect(sim.stats().served500).toBeGreaterThan(0));
    await outrunTheSlot();
    sim.setFaults({ errorRate: 0 });
    await expect(running.bridge.done).rejects.toThrow(
      /replication slot postgres cannot be streamed from .*run `tuzhan-cdc run --resync`/,
    );
    await running.stop();
    running = await startTestBridge({ db, apiUrl: sim.url, resync: true });
    await waitForCatchUp(db);
    expect(platform()).toEqual(await expectedGroups(db));
  }, 120_000);

  it('with onSlotLost: resync, invalidated while streaming: re-synced without a restart, a removal made meanwhile too', async () => {
    const log = captureLogger('info');
    running = await startTestBridge({ db, apiUrl: sim.url, onSlotLost: 'resync', logger: log.logger });
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('x1', 'a'), ('x2', 'b')`,
    );
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', 'x1')).toEqual(['a']);
    sim.setFaults({ errorRate: 1 });
    await db.query(`UPDATE crm.customer_profile SET "Group Names" = 'bb' WHERE cust_no = 'x2'`);
    await eventually(() => expect(sim.stats().served500).toBeGreaterThan(0));
    await outrunTheSlot();
    // Lost: its walsender is gone, and nothing written from here on can be read from the slot. This
    // delete reaches the platform only through a re-sync.
    await db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'x1'`);
    sim.setFaults({ errorRate: 0 });
    await eventually(async () => {
      const { rows } = await db.query<{ wal_status: string }>(
        `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1 AND active`,
        [db.name],
      );
      expect(rows[0]?.wal_status).not.toBe('lost');
      expect(rows).toHaveLength(1);
    }, 60_000);
    await waitForCatchUp(db, db.name, 60_000);
    expect(platform()).toEqual(await expectedGroups(db));
    expect(sim.groupsOf('thirdId', 'x1')).toEqual([]);
    expect(sim.groupsOf('thirdId', 'x2')).toEqual(['bb']);
    const msgs = log.lines().map((l) => l.msg);
    expect(msgs).toContain('the slot is lost; re-syncing every source from a new slot');
    expect(msgs).toContain('slot created; reading the snapshot');
    // Still the same bridge, streaming on.
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('x1', 'back')`);
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', 'x1')).toEqual(['back']);
  }, 120_000);
});
