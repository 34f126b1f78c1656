/**
 * The sent position after a first start on empty tables: nothing after the slot's consistent point
 * was sent, so a row inserted and deleted while the bridge was down is a fresh window on the next
 * start (SPEC section 4: nothing to send), not a maybe-sent one that has to be cleared.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  CRM_SCHEMA,
  startTestBridge,
  statusRows,
  waitForCatchUp,
  waitForStreaming,
  type TestBridge,
} from '../helpers/pipeline.js';

describe('sent position after a snapshot of empty tables', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('sent_position');
    await db.query(CRM_SCHEMA);
  });
  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });
  afterAll(async () => {
    await sim.close();
    await db.drop();
  });

  it('marks every source at the consistent point, and a row that came and went while down sends nothing', async () => {
    running = await startTestBridge({ db, apiUrl: sim.url });
    await waitForStreaming(db, db.name);
    const { rows: marks } = await db.query<{ source: string; at: boolean; seq: string }>(
      `SELECT p.source, p.lsn = b.snapshot_lsn AS at, p.seq::text AS seq
         FROM "Tuzhan Sync".sent_position p JOIN "Tuzhan Sync".bridge_state b ON b.slot = p.slot
        WHERE p.slot = $1 ORDER BY p.source`,
      [db.name],
    );
    expect(marks).toEqual([
      { source: 'memberships', at: true, seq: String(Number.MAX_SAFE_INTEGER) },
      { source: 'profiles', at: true, seq: String(Number.MAX_SAFE_INTEGER) },
    ]);
    await running.stop();
    running = undefined;

    // While the bridge is down: a row comes and goes, another stays.
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('gone', 'g1')`);
    await db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'gone'`);
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('kept', 'g2')`);
    sim.reset();
    // One flush for the three transactions already in the WAL.
    running = await startTestBridge({ db, apiUrl: sim.url, batching: { debounceMs: 400, maxWaitMs: 5000 } });
    await waitForCatchUp(db);

    const status = await statusRows(db, 'profiles');
    expect(status.get('{"cust_no":"gone"}')).toMatchObject({
      op: 'delete',
      status: 'skipped',
      payload: null,
    });
    expect(status.get('{"cust_no":"kept"}')).toMatchObject({ op: 'add', status: 'synced' });
    // One request: the kept row's add. The row that came and went never reached the platform.
    expect(sim.stats().requests).toBe(1);
    expect(sim.stats().byOptType.add.rows).toBe(1);
    expect(sim.groupsOf('thirdId', 'kept')).toEqual(['g2']);
  });
});
