/**
 * docs/design.md "Schema changes": when a relation message shows a mapped column gone, the bridge
 * stops, and nothing after that point is confirmed, so the changes it could not translate are read
 * again (and stop it again) until the operator re-syncs.
 */
import { describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import { commitReturningLsn, confirmedPast } from '../helpers/moments.js';
import { startTestBridge, statusRows, waitForCatchUp } from '../helpers/pipeline.js';

const GONE = /column "wx_openid" of crm.customer_profile is gone from the changes/;

describe('a mapped column dropped', () => {
  const fx = usePipelineFixture('claims schema', { per: 'file', stopTimeoutMs: 1000 });

  it('stops, and the slot never confirms the change before which the column disappeared', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    const first = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s1', 'a')`,
    ]);
    await waitForCatchUp(fx.db);
    expect(await confirmedPast(fx.db, fx.db.name, first)).toBe(true);

    await fx.db.query(`ALTER TABLE crm.customer_profile DROP COLUMN wx_openid`);
    // The first change after the drop carries the relation without the column.
    const gone = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s2', 'b')`,
    ]);
    // Later changes, of this source and of another one.
    const later = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('s1', 'm')`,
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s3', 'c')`,
    ]);

    // The moment: the bridge stopped on the change.
    await expect(fx.running.bridge.done).rejects.toThrow(GONE);
    await fx.running.stop(1000);
    fx.running = undefined;
    // A stop confirms its final position: still not past the change.
    expect(await confirmedPast(fx.db, fx.db.name, gone)).toBe(false);
    expect(await confirmedPast(fx.db, fx.db.name, later)).toBe(false);
    expect(fx.sim.groupsOf('thirdId', 's2')).toBeUndefined();
    expect([...(await statusRows(fx.db, 'profiles')).keys()]).toEqual(['{"cust_no":"s1"}']);
    expect((await statusRows(fx.db, 'memberships')).size).toBe(0);

    // A start refuses while the table lacks the column. Restored, the column does not make the
    // change readable: the next start reads it again and stops again; the slot stays where it was.
    await expect(startTestBridge({ db: fx.db, apiUrl: fx.sim.url })).rejects.toThrow(
      /has no column "wx_openid"/,
    );
    await fx.db.query(`ALTER TABLE crm.customer_profile ADD COLUMN wx_openid text`);
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await expect(fx.running.bridge.done).rejects.toThrow(GONE);
    await fx.running.stop(1000);
    fx.running = undefined;
    expect(await confirmedPast(fx.db, fx.db.name, gone)).toBe(false);
    expect(fx.sim.groupsOf('thirdId', 's1')).toEqual(['a']);
    expect(fx.sim.groupsOf('thirdId', 's2')).toBeUndefined();
  });
});
