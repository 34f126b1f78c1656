/**
 * The sent position after a first start on empty tables: nothing after the slot's consistent point
 * was sent, so a row inserted and deleted while the bridge was down is a fresh window on the next
 * start (SPEC section 4: nothing to send), not a maybe-sent one that has to be cleared.
 */
import { describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, statusRows, waitForCatchUp, waitForStreaming } from '../helpers/pipeline.js';

describe('sent position after a snapshot of empty tables', () => {
  const fx = usePipelineFixture('sent_position', { per: 'file' });

  it('marks every source at the consistent point, and a row that came and went while down sends nothing', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await waitForStreaming(fx.db, fx.db.name);
    const { rows: marks } = await fx.db.query<{ source: string; at: boolean; seq: string }>(
      `SELECT p.source, p.lsn = b.snapshot_lsn AS at, p.seq::text AS seq
         FROM "Tuzhan Sync".sent_position p JOIN "Tuzhan Sync".bridge_state b ON b.slot = p.slot
        WHERE p.slot = $1 ORDER BY p.source`,
      [fx.db.name],
    );
    expect(marks).toEqual([
      { source: 'memberships', at: true, seq: String(Number.MAX_SAFE_INTEGER) },
      { source: 'profiles', at: true, seq: String(Number.MAX_SAFE_INTEGER) },
    ]);
    await fx.running.stop();
    fx.running = undefined;

    // While the bridge is down: a row comes and goes, another stays.
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('gone', 'g1')`);
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'gone'`);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('kept', 'g2')`);
    fx.sim.reset();
    // One flush for the three transactions already in the WAL.
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      batching: { debounceMs: 400, maxWaitMs: 5000 },
    });
    await waitForCatchUp(fx.db);

    const status = await statusRows(fx.db, 'profiles');
    expect(status.get('{"cust_no":"gone"}')).toMatchObject({
      op: 'delete',
      status: 'skipped',
      payload: null,
    });
    expect(status.get('{"cust_no":"kept"}')).toMatchObject({ op: 'add', status: 'synced' });
    // One request: the kept row's add. The row that came and went never reached the platform.
    expect(fx.sim.stats().requests).toBe(1);
    expect(fx.sim.stats().byOptType.add.rows).toBe(1);
    expect(fx.sim.groupsOf('thirdId', 'kept')).toEqual(['g2']);
  });
});
