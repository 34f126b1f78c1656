/**
 * What docs/design.md says of a flush's requests, seen from the platform: membership rows of one
 * customer and operation merged into one API row; deletes before adds; and a request
 * that shares a key or a customer with an earlier one starts only once that one was answered.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ApiRow, OptType } from '../../src/tuzhan/types.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, waitForCatchUp, type TestBridge } from '../helpers/pipeline.js';

interface Seen {
  op: OptType;
  rows: ApiRow[];
  at: number;
}

describe('how a flush reaches the platform', () => {
  const seen: Seen[] = [];
  const fx = usePipelineFixture('dispatch order', {
    per: 'file',
    simulator: { onRows: (op, rows, at) => seen.push({ op, rows: [...rows], at }) },
  });
  let running: TestBridge | undefined;

  beforeAll(async () => {
    // One flush per transaction below: a long debounce, a generous wait.
    running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      batching: { debounceMs: 300, maxWaitMs: 2000 },
    });
  });
  afterEach(() => {
    fx.sim.setFaults({ latencyMs: 0 });
  });
  afterAll(async () => {
    await running?.stop();
  });

  async function inOneTransaction(sql: string): Promise<Seen[]> {
    await waitForCatchUp(fx.db);
    const from = seen.length;
    await fx.db.query(`BEGIN; ${sql}; COMMIT;`);
    await waitForCatchUp(fx.db);
    return seen.slice(from);
  }

  it("merges one customer's membership rows of one operation into one API row", async () => {
    const got = await inOneTransaction(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('mm1', 'a'), ('mm1', 'b'), ('mm2', 'a')`,
    );
    expect(got.map((s) => s.op)).toEqual(['add']);
    expect(got[0]?.rows).toEqual([
      { thirdId: 'mm1', groups: 'a,b' },
      { thirdId: 'mm2', groups: 'a' },
    ]);
  });

  it('a request sharing a key or a customer with an earlier one waits for its answer (deletes first)', async () => {
    await inOneTransaction(`INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES
      ('o1', '1301', 'a'), ('o2', '1302', 'b')`);
    fx.sim.setFaults({ latencyMs: 300 });
    // o1 moves to a new phone (its old identity cleared, the new one set: same key), o2 is deleted,
    // o3 is new, and the membership pair (mo, x) leaves one row for another (same customer).
    await fx.db.query(`INSERT INTO crm.member_group (member_id, group_name) VALUES ('mo', 'x')`);
    const got = await inOneTransaction(`
      UPDATE crm.customer_profile SET mobile = '1399' WHERE cust_no = 'o1';
      DELETE FROM crm.customer_profile WHERE cust_no = 'o2';
      INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES ('o3', '1303', 'c');
      DELETE FROM crm.member_group WHERE member_id = 'mo';
      INSERT INTO crm.member_group (member_id, group_name) VALUES ('mo', 'x')`);
    const profiles = got.filter((s) => s.rows.some((r) => r.thirdId?.startsWith('o')));
    const members = got.filter((s) => s.rows.some((r) => r.thirdId === 'mo'));
    // One request per operation: what o1's old identity and o2 held is deleted, o1's new identity
    // and o3 added (row mode removes the groups a row held, never all of a customer's).
    expect(profiles.map((s) => s.op).sort()).toEqual(['add', 'delete']);
    const del = profiles.find((s) => s.op === 'delete') as Seen;
    const add = profiles.find((s) => s.op === 'add') as Seen;
    expect(del.rows).toEqual(
      expect.arrayContaining([
        { thirdId: 'o1', phone: '1301', groups: 'a' },
        { thirdId: 'o2', phone: '1302', groups: 'b' },
      ]),
    );
    expect(add.rows).toEqual(
      expect.arrayContaining([
        { thirdId: 'o1', phone: '1399', groups: 'a' },
        { thirdId: 'o3', phone: '1303', groups: 'c' },
      ]),
    );
    // o1's add shares its key with the delete: it was sent only after the delete was answered.
    expect(add.at - del.at).toBeGreaterThanOrEqual(300);
    // The pair left by one row and taken by another: deleted, then added once the delete was answered.
    expect(members.map((s) => s.op)).toEqual(['delete', 'add']);
    expect((members[1] as Seen).at - (members[0] as Seen).at).toBeGreaterThanOrEqual(300);
    expect(fx.sim.groupsOf('thirdId', 'mo')).toEqual(['x']);
    expect(fx.sim.groupsOf('thirdId', 'o1')).toEqual(['a']);
  });
});
