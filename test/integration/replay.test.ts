/**
 * At-least-once without lies (issue 15): answers lost after the platform applied a request, a
 * dropped replication connection, a killed bridge. Whatever the platform already saw of a replayed
 * window, it must end equal to the database, and sync_status must say what was done.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnBridge, writeConfigFile, type BridgeProcess } from '../helpers/bridge-process.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  expectedGroups,
  DEFAULT_SOURCES,
  startTestBridge,
  statusRows,
  testConfigYaml,
  waitForCatchUp,
} from '../helpers/pipeline.js';

describe('replay', () => {
  const fx = usePipelineFixture('replay', { per: 'file' });

  afterEach(() => {
    fx.sim.setFaults({ applyThenFailRate: 0, errorRate: 0 });
  });

  /** Ends the walsender serving the bridge's slot, as a network cut or a proxy restart would. */
  async function dropReplicationConnection(): Promise<void> {
    const { rows } = await fx.db.query<{ ended: boolean }>(
      `SELECT pg_terminate_backend(active_pid) AS ended FROM pg_replication_slots
        WHERE slot_name = $1 AND active_pid IS NOT NULL`,
      [fx.db.name],
    );
    expect(rows[0]?.ended, 'a walsender was streaming to the bridge').toBe(true);
  }

  /** Runs a statement in a transaction; resolves with the WAL position just before its commit. */
  async function inTransaction(sql: string): Promise<string> {
    const c = new pg.Client({ connectionString: fx.db.url });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(sql);
      const { rows } = await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      await c.query('COMMIT');
      return (rows[0] as { lsn: string }).lsn;
    } finally {
      await c.end();
    }
  }

  /** Whether the slot's confirmed position is at or before `lsn`. */
  async function notPast(lsn: string): Promise<boolean> {
    const { rows } = await fx.db.query<{ ok: boolean }>(
      `SELECT confirmed_flush_lsn <= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1`,
      [fx.db.name, lsn],
    );
    return rows[0]?.ok === true;
  }

  it('row mode: an update applied with its answer lost, a dropped connection, then a delete', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('p1', 'old1')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual(['old1']);

    const lost = fx.sim.stats().appliedThenFailed;
    fx.sim.setFaults({ applyThenFailRate: 1 });
    // Groups gained only: one `add` request, which the replay of the delete must undo.
    await fx.db.query(
      `UPDATE crm.customer_profile SET "Group Names" = 'old1,new1,new2' WHERE cust_no = 'p1'`,
    );
    // The moment: the platform applied the update (twice), the bridge saw only failures.
    await eventually(() => {
      expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual(['new1', 'new2', 'old1']);
      expect(fx.sim.stats().appliedThenFailed).toBeGreaterThanOrEqual(lost + 2);
    });
    expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"p1"}')?.status).toBe('retrying');
    await dropReplicationConnection();
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'p1'`);
    fx.sim.setFaults({ applyThenFailRate: 0 });
    await waitForCatchUp(fx.db);

    expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual([]);
    expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"p1"}')).toMatchObject({
      op: 'delete',
      status: 'synced',
    });
  });

  it('membership mode: a pair moved while answers were lost, a dropped connection, then a delete', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    const {
      rows: [row],
    } = await fx.db.query<{ id: string }>(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'gA') RETURNING id::text`,
    );
    const key = JSON.stringify({ id: (row as { id: string }).id });
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'm1')).toEqual(['gA']);

    const lost = fx.sim.stats().appliedThenFailed;
    fx.sim.setFaults({ applyThenFailRate: 1 });
    await fx.db.query(`UPDATE crm.member_group SET group_name = 'gB' WHERE member_id = 'm1'`);
    await eventually(() => expect(fx.sim.stats().appliedThenFailed).toBeGreaterThanOrEqual(lost + 2));
    expect((await statusRows(fx.db, 'memberships')).get(key)?.status).toBe('retrying');
    await dropReplicationConnection();
    await fx.db.query(`DELETE FROM crm.member_group WHERE member_id = 'm1'`);
    fx.sim.setFaults({ applyThenFailRate: 0 });
    await waitForCatchUp(fx.db);

    // gB was added while the bridge drained; the replayed window removes it with gA.
    expect(fx.sim.groupsOf('thirdId', 'm1')).toEqual([]);
    expect((await statusRows(fx.db, 'memberships')).get(key)).toMatchObject({
      op: 'delete',
      status: 'synced',
    });
  });

  it('SIGKILL: an insert that reached the platform, then a delete, then a restart', async () => {
    const config = writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url }));
    let bridge: BridgeProcess = spawnBridge(config);
    try {
      await eventually(() => expect(bridge.output()).toMatch(/replication stream started/), 30_000);
      await waitForCatchUp(fx.db);

      const lost = fx.sim.stats().appliedThenFailed;
      fx.sim.setFaults({ applyThenFailRate: 1 });
      // The insert's commit record comes after `inserted`: a slot confirmed past it confirmed the insert.
      const inserted = await inTransaction(
        `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('k1', 'g1,g2')`,
      );
      await eventually(() => {
        expect(fx.sim.groupsOf('thirdId', 'k1')).toEqual(['g1', 'g2']);
        expect(fx.sim.stats().appliedThenFailed).toBeGreaterThan(lost);
      });
      await fx.db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'k1'`);
      // The moment: the insert reached the platform, and the slot has not confirmed it.
      expect(await notPast(inserted)).toBe(true);
      expect(await bridge.kill('SIGKILL')).toBe('SIGKILL');

      fx.sim.setFaults({ applyThenFailRate: 0 });
      bridge = spawnBridge(config);
      await waitForCatchUp(fx.db);
      expect(fx.sim.groupsOf('thirdId', 'k1')).toEqual([]);
      expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"k1"}')).toMatchObject({
        op: 'delete',
        status: 'synced',
      });
      expect(await bridge.kill('SIGTERM')).toBe(0);
    } finally {
      await bridge.kill('SIGKILL');
    }
  }, 90_000);

  it('hot keys under lost answers and dropped connections: the platform ends equal to the database', async () => {
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      batching: { maxBatchSize: 20, debounceMs: 10, maxWaitMs: 50, maxBufferedRows: 200 },
      // The TRUNCATE below only empties the tables for this test: nothing to re-sync.
      sources: DEFAULT_SOURCES.replace(/match:/g, 'onTruncate: ignore\n    match:'),
    });
    await fx.db.query('TRUNCATE crm.customer_profile, crm.member_group');
    await waitForCatchUp(fx.db);
    fx.sim.reset();
    const ids = new Set<string>();
    const client = new pg.Client({ connectionString: fx.db.url });
    await client.connect();
    let drops = 0;
    try {
      fx.sim.setFaults({ applyThenFailRate: 0.3 });
      const until = Date.now() + 8000;
      let nextDrop = Date.now() + 700;
      for (let i = 0; Date.now() < until; i++) {
        const p = `h${i % 15}`;
        const q = `h${(i * 7 + 3) % 15}`;
        const m = `n${i % 10}`;
        ids
          .add(p)
          .add(q)
          .add(m)
          .add(`n${(i + 4) % 10}`);
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ($1, $2)
           ON CONFLICT (cust_no) DO UPDATE SET "Group Names" = EXCLUDED."Group Names"`,
          [p, `g${i % 4},h${i % 3}`],
        );
        if (i % 3 === 0) await client.query(`DELETE FROM crm.customer_profile WHERE cust_no = $1`, [q]);
        if (i % 5 === 0)
          await client.query(
            `UPDATE crm.customer_profile SET cust_no = $2 WHERE cust_no = $1
               AND NOT EXISTS (SELECT 1 FROM crm.customer_profile WHERE cust_no = $2)`,
            [p, q],
          );
        await client.query(
          `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [m, `g${i % 3}`],
        );
        if (i % 4 === 0)
          await client.query(
            `UPDATE crm.member_group SET member_id = $2 WHERE member_id = $1 AND group_name = $3
               AND NOT EXISTS (SELECT 1 FROM crm.member_group WHERE member_id = $2 AND group_name = $3)`,
            [m, `n${(i + 4) % 10}`, `g${i % 3}`],
          );
        if (i % 6 === 0) await client.query(`DELETE FROM crm.member_group WHERE member_id = $1`, [m]);
        await client.query('COMMIT');
        if (Date.now() >= nextDrop) {
          const { rowCount } = await fx.db.query(
            `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
              WHERE slot_name = $1 AND active_pid IS NOT NULL`,
            [fx.db.name],
          );
          drops += rowCount ?? 0;
          nextDrop = Date.now() + 700;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      await client.end();
    }
    fx.sim.setFaults({ applyThenFailRate: 0 });
    await waitForCatchUp(fx.db, fx.db.name, 60_000);
    // The moments this test is about happened: answers were lost, connections dropped.
    expect(fx.sim.stats().appliedThenFailed).toBeGreaterThan(10);
    expect(drops).toBeGreaterThanOrEqual(3);

    const platform: Record<string, string[]> = {};
    for (const id of ids) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g && g.length) platform[id] = [...g].sort();
    }
    expect(platform).toEqual(await expectedGroups(fx.db));
    const unsettled = await fx.db.query(
      `SELECT 1 FROM "Tuzhan Sync".sync_status WHERE status NOT IN ('synced', 'skipped')`,
    );
    expect(unsettled.rowCount).toBe(0);
  }, 120_000);
});
