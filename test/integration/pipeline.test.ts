import { describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  expectedGroups,
  statusRows,
  startTestBridge,
  waitForCatchUp,
} from '../helpers/pipeline.js';

describe('pipeline: replication -> batchAdd -> sync_status', () => {
  const fx = usePipelineFixture('pipeline');

  async function startBridge(): Promise<void> {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
  }

  async function platformState(): Promise<Record<string, string[]>> {
    const expected = await expectedGroups(fx.db);
    const ids = new Set([...Object.keys(expected), 'c1', 'c2', 'c3', 'c4', 'm1', 'm2', 'm3']);
    const out: Record<string, string[]> = {};
    for (const id of ids) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g && g.length) out[id] = [...g].sort();
    }
    return out;
  }

  it('syncs existing rows, then inserts, updates and deletes of both source shapes', async () => {
    await fx.db.query(`
      INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES ('c1', '13800000001', 'vip,north'), ('c2', NULL, 'south');
      INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'gold'), ('m1', 'silver'), ('m2', 'gold');
    `);
    await startBridge();
    await waitForCatchUp(fx.db);
    expect(await platformState()).toEqual(await expectedGroups(fx.db));
    expect([...(await statusRows(fx.db, 'profiles')).values()].map((r) => r.status)).toEqual([
      'synced',
      'synced',
    ]);

    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c3', 'east')`);
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'vip' WHERE cust_no = 'c1'`);
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'c2'`);
    await fx.db.query(`DELETE FROM crm.member_group WHERE member_id = 'm1' AND group_name = 'silver'`);
    await fx.db.query(`UPDATE crm.member_group SET member_id = 'm3' WHERE member_id = 'm2'`);
    await fx.db.query(`INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'bronze')`);
    await waitForCatchUp(fx.db);
    if (process.env.TEST_LOG)
      console.log(
        JSON.stringify([...(await statusRows(fx.db, 'memberships')).entries()]),
        JSON.stringify(fx.sim.stats()),
      );
    expect(await platformState()).toEqual(await expectedGroups(fx.db));
    const profiles = await statusRows(fx.db, 'profiles');
    expect(profiles.get('{"cust_no":"c2"}')).toMatchObject({ op: 'delete', status: 'synced' });
    // c1 lost north and kept vip: north deleted, then vip added (row mode never replaces the set).
    expect(profiles.get('{"cust_no":"c1"}')).toMatchObject({
      op: 'add',
      status: 'synced',
      payload: { thirdId: 'c1', phone: '13800000001', groups: 'vip' },
    });
  });

  it('never sends rolled-back work', async () => {
    await startBridge();
    await fx.db.query(
      `BEGIN; INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c4', 'ghost'); ROLLBACK;`,
    );
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'real')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'c4')).toBeUndefined();
    expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual(['real']);
  });

  it('confirms quiet WAL: writes outside the publication advance the slot', async () => {
    await startBridge();
    await waitForCatchUp(fx.db);
    const before = await fx.db.query<{ lsn: string }>(
      `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`,
      [fx.db.name],
    );
    const confirmedBefore = before.rows[0]?.lsn;
    expect(confirmedBefore).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const requestsBefore = fx.sim.stats().requests;
    await fx.db.query(`INSERT INTO crm.unrelated (v) SELECT 'x' FROM generate_series(1, 100)`);
    // The insert position once the commit returned: at or past the end of its commit record.
    const { rows } = await fx.db.query<{ lsn: string; ahead: boolean }>(
      `SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_current_wal_insert_lsn() > $1::pg_lsn AS ahead`,
      [confirmedBefore],
    );
    const committed = rows[0]?.lsn;
    expect(rows[0]?.ahead, `the insert at ${committed} is past ${confirmedBefore}`).toBe(true);
    // No row of the publication changed, yet the slot moves past the commit: the bridge confirmed
    // the keepalives' position, so the server may recycle that WAL.
    await eventually(async () => {
      const r = await fx.db.query<{ lsn: string; covers: boolean; moved: boolean }>(
        `SELECT confirmed_flush_lsn::text AS lsn, confirmed_flush_lsn >= $1::pg_lsn AS covers,
                confirmed_flush_lsn > $2::pg_lsn AS moved
           FROM pg_replication_slots WHERE slot_name = $3`,
        [committed, confirmedBefore, fx.db.name],
      );
      expect(r.rows[0], `confirmed ${r.rows[0]?.lsn}; commit at ${committed}`).toMatchObject({
        covers: true,
        moved: true,
      });
    });
    expect(fx.sim.stats().requests).toBe(requestsBefore);
  });
});
