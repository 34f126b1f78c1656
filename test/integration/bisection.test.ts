/**
 * SPEC section 6 over real HTTP: a batch the platform rejects as a whole (HTTP 400) is split in halves
 * until the bad rows are isolated; those fail with the reason, the rest go through. The daemon and
 * `retry-failed` share the delivery unit that does it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { retryFailed } from '../../src/cli/retry-failed.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, statusRows, testConfig, waitForCatchUp } from '../helpers/pipeline.js';

const MEMBERSHIPS = `
  - name: memberships
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
`;

describe('bisection of a rejected batch', () => {
  // Each test starts the simulator it needs.
  const fx = usePipelineFixture('bisection', { per: 'file', simulator: false });
  let sim: Simulator | undefined;

  afterAll(async () => {
    await sim?.close();
  });

  async function batches(): Promise<Array<{ rows: number; http: number | null }>> {
    const { rows } = await fx.db.query<{ rows: number; http: number | null }>(
      `SELECT rows, http_status AS http FROM "Tuzhan Sync".sync_batch WHERE opt_type <> 'truncate' ORDER BY id`,
    );
    return rows;
  }

  it('the daemon isolates the row the platform rejects; the others are synced', async () => {
    sim = await startSimulator({ token: 'test-token' });
    sim.setFaults({ rejectRequestsWith: 'bad1' });
    fx.running = await startTestBridge({ db: fx.db, apiUrl: sim.url });
    const ids = ['p1', 'p2', 'p3', 'bad1', 'p5', 'p6'];
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT id, 'g' FROM unnest($1::text[]) id`,
      [ids],
    );
    await waitForCatchUp(fx.db);
    const status = await statusRows(fx.db, 'profiles');
    expect(status.get('{"cust_no":"bad1"}')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^rejected by the platform: .*HTTP 400/),
    });
    for (const id of ids.filter((i) => i !== 'bad1')) {
      expect(status.get(`{"cust_no":"${id}"}`)?.status, id).toBe('synced');
      expect(sim.groupsOf('thirdId', id)).toEqual(['g']);
    }
    expect(sim.groupsOf('thirdId', 'bad1')).toBeUndefined();
    // [p1 p2 p3 bad1 p5 p6] rejected -> [p1 p2 p3] ok, [bad1 p5 p6] rejected -> [bad1 p5] rejected,
    // [p6] ok -> [bad1] rejected, [p5] ok.
    const b = await batches();
    expect(b[0]).toEqual({ rows: 6, http: 400 });
    expect(
      b.filter((x) => x.http === 400).every((x, i, all) => i === 0 || x.rows <= (all[i - 1]?.rows ?? 0)),
    ).toBe(true);
    expect(b.filter((x) => x.http === 400).at(-1)).toEqual({ rows: 1, http: 400 });
    expect(b.filter((x) => x.http === 200).reduce((n, x) => n + x.rows, 0)).toBe(5);
    await fx.running.stop();
    fx.running = undefined;
    await sim.close();
  });

  it('retry-failed isolates it the same way', async () => {
    // At first the platform knows no member: with matching on, every membership fails.
    sim = await startSimulator({ token: 'test-token', registry: [] });
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: sim.url,
      sources: MEMBERSHIPS,
      slot: `${fx.db.name}_m`,
    });
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'x'), ('m2', 'x'), ('m3', 'x'), ('m4', 'x')`,
    );
    await waitForCatchUp(fx.db, `${fx.db.name}_m`);
    await fx.running.stop();
    fx.running = undefined;
    await sim.close();
    expect([...(await statusRows(fx.db, 'memberships')).values()].map((r) => r.status)).toEqual(
      Array(4).fill('failed'),
    );

    // Now the platform knows them, but rejects any request carrying m3 whole.
    sim = await startSimulator({
      token: 'test-token',
      registry: ['m1', 'm2', 'm3', 'm4'].map((thirdId) => ({ thirdId })),
    });
    sim.setFaults({ rejectRequestsWith: 'm3' });
    const config = testConfig({ db: fx.db, apiUrl: sim.url, sources: MEMBERSHIPS, slot: `${fx.db.name}_m` });
    const [result] = await retryFailed(config, {});
    expect(result).toMatchObject({ source: 'memberships', rows: 4, outcomes: { synced: 3, failed: 1 } });
    const status = await statusRows(fx.db, 'memberships');
    const byMember = new Map(
      [...status.values()].map((r) => [(r.payload as { thirdId: string }).thirdId, r]),
    );
    expect(byMember.get('m3')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^rejected by the platform/),
    });
    for (const m of ['m1', 'm2', 'm4']) expect(sim.groupsOf('thirdId', m)).toEqual(['x']);
    expect(sim.stats().rejected).toBeGreaterThanOrEqual(2);
  });
});
