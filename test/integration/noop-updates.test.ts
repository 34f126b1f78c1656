/**
 * Changes that change nothing the platform sees cost nothing downstream: an UPDATE of columns the
 * sources do not map sends no request and writes nothing to the status table, and every key's last
 * outcome stays as it was (a failed row stays failed). "Nothing written" is read from the status
 * rows' xmin and ctid (any insert or update, HOT or not, changes them); "the bridge saw them" from
 * the metric that counts them (tuzhan_cdc_unchanged_changes_total) and the slot confirmed past the
 * update.
 */
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/ops/metrics.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  CRM_SCHEMA,
  startTestBridge,
  statusRows,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const SOURCES = `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, phone: mobile, groups: "Group Names" }
    match: { isMatching: false }
  - name: memberships
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
`;

describe('no-op updates', () => {
  const fx = usePipelineFixture('noop updates', {
    // Members m1..m100 are platform customers; "ghost" is not, so its rows fail (errorData).
    simulator: { registry: Array.from({ length: 100 }, (_, i) => ({ thirdId: `m${i + 1}` })) },
    schema: [CRM_SCHEMA, `ALTER TABLE crm.member_group ADD COLUMN seen_at timestamptz`],
  });

  /** Every status row's physical version: any write of it, HOT or not, changes xmin and ctid. */
  async function versions(): Promise<Map<string, string>> {
    const { rows } = await fx.db.query<{ k: string; v: string }>(
      `SELECT source_id || ' ' || key AS k, xmin::text || ' ' || ctid::text AS v FROM "Tuzhan Sync".sync_row`,
    );
    return new Map(rows.map((r) => [r.k, r.v]));
  }

  /** tuzhan_cdc_unchanged_changes_total per source, counted from now on (changes that changed nothing). */
  function countUnchanged(bridge: TestBridge): () => Promise<Record<string, number>> {
    const metrics = new Metrics(bridge.bridge.events, { processMetrics: false });
    return async () => {
      const { values } = await metrics.unchanged.get();
      return Object.fromEntries(values.map((v) => [String(v.labels.source), v.value]));
    };
  }

  it('an UPDATE of 1,000 synced rows in an unmapped column sends nothing and writes nothing', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, sources: SOURCES });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names", note)
       SELECT 'c' || i, '138' || lpad(i::text, 8, '0'), 'g' || (i % 7) || ',vip', 'new' FROM generate_series(1, 1000) i`,
    );
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name)
       SELECT 'm' || i, 'club' FROM generate_series(1, 100) i UNION ALL SELECT 'ghost', 'club'`,
    );
    await waitForCatchUp(fx.db);
    const profiles = await statusRows(fx.db, 'profiles');
    expect([...profiles.values()].filter((r) => r.status === 'synced')).toHaveLength(1000);
    const members = await statusRows(fx.db, 'memberships');
    expect([...members.values()].filter((r) => r.status === 'failed')).toHaveLength(1);
    const requests = fx.sim.stats().requests;
    const before = await versions();
    expect(before.size).toBe(1101);
    const unchanged = countUnchanged(fx.running);

    await fx.db.query(`UPDATE crm.customer_profile SET note = 'seen today'`);
    // Groups written in another order are the same set; the phone is written as it was.
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'vip,g' || substr(cust_no, 2)::int % 7,
                      mobile = mobile WHERE cust_no IN ('c1', 'c2', 'c3')`);
    await fx.db.query(`UPDATE crm.member_group SET seen_at = now()`);
    await waitForCatchUp(fx.db);

    // The moment: the bridge read every one of those changes and found them unchanged.
    expect(await unchanged()).toEqual({ profiles: 1003, memberships: 101 });
    expect(fx.sim.stats().requests).toBe(requests);
    expect(await versions()).toEqual(before);
    // The last outcomes still tell the truth: synced stays synced, the ghost stays failed.
    expect(await statusRows(fx.db, 'profiles')).toEqual(profiles);
    expect(await statusRows(fx.db, 'memberships')).toEqual(members);

    // A change that does change something is still sent and recorded: the old groups deleted,
    // the new one added.
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'moved' WHERE cust_no = 'c9'`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.stats().requests).toBe(requests + 2);
    expect(fx.sim.groupsOf('thirdId', 'c9')).toEqual(['moved']);
    expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"c9"}')).toMatchObject({
      op: 'add',
      status: 'synced',
    });
  });

  it('without the old row in the WAL (REPLICA IDENTITY DEFAULT), compares with the last stored payload', async () => {
    // The identity is the key, so the startup check accepts DEFAULT; an UPDATE that keeps the key
    // then carries no old row at all.
    await fx.db.query(`ALTER TABLE crm.customer_profile REPLICA IDENTITY DEFAULT`);
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      sources: `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    match: { isMatching: false }`,
    });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'd' || i, 'a,b' FROM generate_series(1, 200) i`,
    );
    await waitForCatchUp(fx.db);
    const requests = fx.sim.stats().requests;
    const before = await versions();
    expect(before.size).toBe(200);
    const unchanged = countUnchanged(fx.running);

    // 200 no-ops, and two rows whose groups do change in the same transaction: one request deletes
    // what they lost (b, known from the stored payload), one adds what they hold.
    await fx.db.query(`UPDATE crm.customer_profile SET note = 'x',
                      "Group Names" = CASE WHEN cust_no IN ('d1', 'd2') THEN 'a' ELSE "Group Names" END`);
    await waitForCatchUp(fx.db);

    expect(await unchanged()).toEqual({ profiles: 198 });
    expect(fx.sim.stats().requests).toBe(requests + 2);
    expect(fx.sim.groupsOf('thirdId', 'd1')).toEqual(['a']);
    expect(fx.sim.groupsOf('thirdId', 'd3')).toEqual(['a', 'b']);
    const after = await versions();
    const rewritten = [...after].filter(([k, v]) => before.get(k) !== v).map(([k]) => k.split(' ')[1]);
    expect(rewritten.sort()).toEqual(['{"cust_no":"d1"}', '{"cust_no":"d2"}']);
  });
});
