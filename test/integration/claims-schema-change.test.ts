/**
 * docs/design.md "Schema changes": when a relation message shows a mapped column gone, the bridge
 * stops, and nothing after that point is confirmed, so the changes it could not translate are read
 * again (and stop it again) until the operator re-syncs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { commitReturningLsn, confirmedPast } from '../helpers/moments.js';
import {
  CRM_SCHEMA,
  startTestBridge,
  statusRows,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const GONE = /column "wx_openid" of crm.customer_profile is gone from the changes/;

describe('a mapped column dropped', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('claims schema');
    await db.query(CRM_SCHEMA);
  });
  afterEach(async () => {
    await running?.stop(1000);
    running = undefined;
  });
  afterAll(async () => {
    await sim.close();
    await db.drop();
  });

  it('stops, and the slot never confirms the change before which the column disappeared', async () => {
    running = await startTestBridge({ db, apiUrl: sim.url });
    const first = await commitReturningLsn(db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s1', 'a')`,
    ]);
    await waitForCatchUp(db);
    expect(await confirmedPast(db, db.name, first)).toBe(true);

    await db.query(`ALTER TABLE crm.customer_profile DROP COLUMN wx_openid`);
    // The first change after the drop carries the relation without the column.
    const gone = await commitReturningLsn(db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s2', 'b')`,
    ]);
    // Later changes, of this source and of another one.
    const later = await commitReturningLsn(db, [
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('s1', 'm')`,
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s3', 'c')`,
    ]);

    // The moment: the bridge stopped on the change.
    await expect(running.bridge.done).rejects.toThrow(GONE);
    await running.stop(1000);
    running = undefined;
    // A stop confirms its final position: still not past the change.
    expect(await confirmedPast(db, db.name, gone)).toBe(false);
    expect(await confirmedPast(db, db.name, later)).toBe(false);
    expect(sim.groupsOf('thirdId', 's2')).toBeUndefined();
    expect([...(await statusRows(db, 'profiles')).keys()]).toEqual(['{"cust_no":"s1"}']);
    expect((await statusRows(db, 'memberships')).size).toBe(0);

    // A start refuses while the table lacks the column. Restored, the column does not make the
    // change readable: the next start reads it again and stops again; the slot stays where it was.
    await expect(startTestBridge({ db, apiUrl: sim.url })).rejects.toThrow(/has no column "wx_openid"/);
    await db.query(`ALTER TABLE crm.customer_profile ADD COLUMN wx_openid text`);
    running = await startTestBridge({ db, apiUrl: sim.url });
    await expect(running.bridge.done).rejects.toThrow(GONE);
    await running.stop(1000);
    running = undefined;
    expect(await confirmedPast(db, db.name, gone)).toBe(false);
    expect(sim.groupsOf('thirdId', 's1')).toEqual(['a']);
    expect(sim.groupsOf('thirdId', 's2')).toBeUndefined();
  });
});
