/**
 * A change sent in parts whose removal the platform refuses. An identity change X -> Y is a
 * `delete` of X's groups and an `add` of Y's; when the delete is rejected, X keeps its groups, so
 * the key must not end `synced` (nor be marked synced later) until X has lost them: neither by
 * `retry-failed` nor by the key's next streamed change, with or without the old row in the WAL, in
 * row mode and in membership mode.
 *
 * The expected platform is computed from the tables alone (each live row's customer holds the row's
 * groups; every customer a row left holds nothing), independent of what the bridge stored.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { retryFailed } from '../../src/cli/retry-failed.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, statusRows, waitForCatchUp, type TestBridge } from '../helpers/pipeline.js';

const SOURCES = `
  - name: full
    table: crm.full_profile
    mode: row
    columns: { phone: mobile, groups: groups }
    match: { isMatching: false }
  - name: plain
    table: crm.plain_profile
    mode: row
    columns: { phone: mobile, groups: groups }
    match: { isMatching: false }
  - name: members
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: false }
`;

type RowTable = 'full_profile' | 'plain_profile';
const SOURCE_OF: Record<RowTable, string> = { full_profile: 'full', plain_profile: 'plain' };

describe('a change whose delete part the platform rejects', () => {
  const fx = usePipelineFixture('partly_failed', {
    per: 'file',
    schema: `
      CREATE SCHEMA crm;
      CREATE TABLE crm.full_profile (cust_no text PRIMARY KEY, mobile text, groups text);
      ALTER TABLE crm.full_profile REPLICA IDENTITY FULL;
      CREATE TABLE crm.plain_profile (cust_no text PRIMARY KEY, mobile text, groups text);
      CREATE TABLE crm.member_group (id int PRIMARY KEY, member_id text NOT NULL, group_name text NOT NULL);
      ALTER TABLE crm.member_group REPLICA IDENTITY FULL;`,
  });
  let running: TestBridge;
  /** The phones and member ids the current test used (a customer a row left must hold nothing). */
  const used = { phone: new Set<string>(), thirdId: new Set<string>() };

  beforeAll(async () => {
    running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, sources: SOURCES });
  });
  beforeEach(() => {
    used.phone.clear();
    used.thirdId.clear();
  });
  afterEach(() => fx.sim.setFaults({ rejectRequestsWith: '' }));
  afterAll(async () => {
    await running?.stop();
  });

  /** Groups per customer as the tables say (the independent model), for every identity used. */
  async function expected(): Promise<Record<string, string[]>> {
    const out: Record<string, Set<string>> = {};
    for (const p of used.phone) out[`phone:${p}`] = new Set();
    for (const m of used.thirdId) out[`thirdId:${m}`] = new Set();
    for (const t of ['full_profile', 'plain_profile']) {
      const { rows } = await fx.db.query<{ mobile: string; groups: string }>(
        `SELECT mobile, groups FROM crm.${t}`,
      );
      for (const r of rows) for (const g of r.groups.split(',')) out[`phone:${r.mobile}`]?.add(g);
    }
    const { rows } = await fx.db.query<{ member_id: string; group_name: string }>(
      `SELECT member_id, group_name FROM crm.member_group`,
    );
    for (const r of rows) out[`thirdId:${r.member_id}`]?.add(r.group_name);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
  }

  function platform(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const p of used.phone) out[`phone:${p}`] = fx.sim.groupsOf('phone', p) ?? [];
    for (const m of used.thirdId) out[`thirdId:${m}`] = fx.sim.groupsOf('thirdId', m) ?? [];
    return out;
  }

  async function statusOf(source: string, key: Record<string, unknown>) {
    return (await statusRows(fx.db, source)).get(JSON.stringify(key));
  }

  /** Row mode: a row synced as x:a, then moved to y while the platform rejects every request naming x. */
  async function moveRejected(table: RowTable, id: string, x: string, y: string): Promise<void> {
    used.phone.add(x).add(y);
    await fx.db.query(`INSERT INTO crm.${table} (cust_no, mobile, groups) VALUES ($1, $2, 'a')`, [id, x]);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('phone', x)).toEqual(['a']);
    expect((await statusOf(SOURCE_OF[table], { cust_no: id }))?.status).toBe('synced');

    fx.sim.setFaults({ rejectRequestsWith: x });
    await fx.db.query(`UPDATE crm.${table} SET mobile = $2 WHERE cust_no = $1`, [id, y]);
    await waitForCatchUp(fx.db);
    // The delete of x was refused: x keeps `a`, and the key says it failed, with why.
    expect(fx.sim.groupsOf('phone', x)).toEqual(['a']);
    expect(await statusOf(SOURCE_OF[table], { cust_no: id })).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^rejected by the platform/),
    });
    fx.sim.setFaults({ rejectRequestsWith: '' });
  }

  for (const table of ['full_profile', 'plain_profile'] as const) {
    const tag = table === 'full_profile' ? 'F' : 'P';
    it(`row mode (${table}): retry-failed removes the old identity's groups`, async () => {
      await moveRejected(table, `${tag}1`, `${tag}x1`, `${tag}y1`);
      await retryFailed(running.config, { source: SOURCE_OF[table] });
      expect(platform()).toEqual(await expected());
      expect((await statusOf(SOURCE_OF[table], { cust_no: `${tag}1` }))?.status).toBe('synced');
    });

    it(`row mode (${table}): the key's next streamed change removes them`, async () => {
      await moveRejected(table, `${tag}2`, `${tag}x2`, `${tag}y2`);
      await fx.db.query(`UPDATE crm.${table} SET groups = 'b' WHERE cust_no = $1`, [`${tag}2`]);
      await waitForCatchUp(fx.db);
      expect(platform()).toEqual(await expected());
      expect((await statusOf(SOURCE_OF[table], { cust_no: `${tag}2` }))?.status).toBe('synced');
    });

    it(`row mode (${table}): another identity change before the retry leaves nothing behind`, async () => {
      await moveRejected(table, `${tag}3`, `${tag}x3`, `${tag}y3`);
      used.phone.add(`${tag}z3`);
      await fx.db.query(`UPDATE crm.${table} SET mobile = $2 WHERE cust_no = $1`, [`${tag}3`, `${tag}z3`]);
      await waitForCatchUp(fx.db);
      await retryFailed(running.config, { source: SOURCE_OF[table] });
      expect(platform()).toEqual(await expected());
      expect((await statusOf(SOURCE_OF[table], { cust_no: `${tag}3` }))?.status).toBe('synced');
    });
  }

  /** Membership mode: a pair synced as (x, g), then moved to y while requests naming x are rejected. */
  async function moveMemberRejected(id: number, x: string, y: string): Promise<void> {
    used.thirdId.add(x).add(y);
    await fx.db.query(`INSERT INTO crm.member_group (id, member_id, group_name) VALUES ($1, $2, 'g')`, [
      id,
      x,
    ]);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', x)).toEqual(['g']);
    fx.sim.setFaults({ rejectRequestsWith: x });
    await fx.db.query(`UPDATE crm.member_group SET member_id = $2 WHERE id = $1`, [id, y]);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', x)).toEqual(['g']);
    expect((await statusOf('members', { id }))?.status).toBe('failed');
    fx.sim.setFaults({ rejectRequestsWith: '' });
  }

  it('membership mode: retry-failed removes the old pair', async () => {
    await moveMemberRejected(1, 'mx1', 'my1');
    await retryFailed(running.config, { source: 'members' });
    expect(platform()).toEqual(await expected());
    expect((await statusOf('members', { id: 1 }))?.status).toBe('synced');
  });

  it("membership mode: the pair's next streamed change removes it", async () => {
    await moveMemberRejected(2, 'mx2', 'my2');
    await fx.db.query(`UPDATE crm.member_group SET group_name = 'h' WHERE id = 2`);
    await waitForCatchUp(fx.db);
    expect(platform()).toEqual(await expected());
    expect((await statusOf('members', { id: 2 }))?.status).toBe('synced');
  });
});
