/**
 * A row-mode row whose groups cannot be sent for a while (a `text[]` element with a comma: the
 * platform would split it into other groups). The row fails and its customer keeps what it had, so
 * what the platform holds for the row is still the last state the bridge sent. When the row is fixed,
 * the groups of that state it no longer holds must go: otherwise the platform keeps a stale group
 * while sync_status says `synced`. Both with the default replica identity (the state before is the
 * payload stored for the key) and with REPLICA IDENTITY FULL (the WAL's old row is the unsendable
 * state, which says nothing of what the platform holds).
 */
import { describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import { eventually, startTestBridge, statusRows, waitForCatchUp } from '../helpers/pipeline.js';

const sources = (table: string): string => `
  - name: ${table}
    table: crm.${table}
    mode: row
    columns: { thirdId: cust_no, groups: groups }
    match: { isMatching: false }
`;

describe('a row-mode row whose groups could not be sent for a while', () => {
  const fx = usePipelineFixture('unsendable_groups', {
    per: 'file',
    schema: `
      CREATE SCHEMA crm;
      CREATE TABLE crm.plain (cust_no text PRIMARY KEY, groups text[], note text);
      CREATE TABLE crm.full_ri (cust_no text PRIMARY KEY, groups text[], note text);
      ALTER TABLE crm.full_ri REPLICA IDENTITY FULL;`,
  });

  const key = (id: string): string => JSON.stringify({ cust_no: id });

  /** `a` synced; then a group name with a comma (the row fails); then the row fixed to `b`. */
  async function failThenFix(table: string, id: string): Promise<void> {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, sources: sources(table) });
    await fx.db.query(`INSERT INTO crm.${table} (cust_no, groups) VALUES ($1, '{a}')`, [id]);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', id)).toEqual(['a']);

    await fx.db.query(`UPDATE crm.${table} SET groups = '{"x,y"}' WHERE cust_no = $1`, [id]);
    await waitForCatchUp(fx.db);
    const failed = (await statusRows(fx.db, table)).get(key(id));
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toMatch(/comma/);
    // The customer keeps what it had: nothing of the unsendable state was sent.
    expect(fx.sim.groupsOf('thirdId', id)).toEqual(['a']);

    await fx.db.query(`UPDATE crm.${table} SET groups = '{b}' WHERE cust_no = $1`, [id]);
    await waitForCatchUp(fx.db);
  }

  it('default replica identity: the group of the last state sent is removed once the row is fixed', async () => {
    await failThenFix('plain', 'p1');
    expect((await statusRows(fx.db, 'plain')).get(key('p1'))).toMatchObject({ status: 'synced' });
    expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual(['b']);
  });

  it('REPLICA IDENTITY FULL: the group of the last state sent is removed once the row is fixed', async () => {
    await failThenFix('full_ri', 'f1');
    expect((await statusRows(fx.db, 'full_ri')).get(key('f1'))).toMatchObject({ status: 'synced' });
    expect(fx.sim.groupsOf('thirdId', 'f1')).toEqual(['b']);
  });

  it('a change of an unmapped column while the row fails leaves it failed, and the fix still removes', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, sources: sources('plain') });
    await fx.db.query(`INSERT INTO crm.plain (cust_no, groups) VALUES ('p2', '{a,c}')`);
    await waitForCatchUp(fx.db);
    await fx.db.query(`UPDATE crm.plain SET groups = '{"x,y",c}' WHERE cust_no = 'p2'`);
    await waitForCatchUp(fx.db);
    await fx.db.query(`UPDATE crm.plain SET note = 'called' WHERE cust_no = 'p2'`);
    await waitForCatchUp(fx.db);
    expect((await statusRows(fx.db, 'plain')).get(key('p2'))?.status).toBe('failed');
    expect(fx.sim.groupsOf('thirdId', 'p2')).toEqual(['a', 'c']);
    await fx.db.query(`UPDATE crm.plain SET groups = '{c}' WHERE cust_no = 'p2'`);
    await eventually(async () =>
      expect((await statusRows(fx.db, 'plain')).get(key('p2'))?.status).toBe('synced'),
    );
    expect(fx.sim.groupsOf('thirdId', 'p2')).toEqual(['c']);
  });

  // Last: it drops the slot. A failed row's stored payload is what the platform holds when nothing
  // of the failed state was sent; a re-sync takes it as the row's state before, as it does a synced one.
  it('a re-sync after the row was fixed or deleted while nothing streamed removes the group the platform kept', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, sources: sources('plain') });
    await fx.db.query(
      `INSERT INTO crm.plain (cust_no, groups) VALUES ('p3', '{a}'), ('p4', '{a}'), ('p5', '{a}')`,
    );
    await waitForCatchUp(fx.db);
    await fx.db.query(`UPDATE crm.plain SET groups = '{"x,y"}' WHERE cust_no IN ('p3', 'p4')`);
    await waitForCatchUp(fx.db);
    expect((await statusRows(fx.db, 'plain')).get(key('p3'))?.status).toBe('failed');
    expect((await statusRows(fx.db, 'plain')).get(key('p4'))?.status).toBe('failed');
    await fx.running.stop();
    fx.running = undefined;
    await fx.db.query(`SELECT pg_drop_replication_slot($1)`, [fx.db.name]);
    await fx.db.query(`UPDATE crm.plain SET groups = '{b}' WHERE cust_no = 'p3'`);
    await fx.db.query(`DELETE FROM crm.plain WHERE cust_no = 'p4'`);

    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      sources: sources('plain'),
      resync: true,
    });
    await waitForCatchUp(fx.db);
    const rows = await statusRows(fx.db, 'plain');
    expect(rows.get(key('p3'))).toMatchObject({ status: 'synced' });
    expect(fx.sim.groupsOf('thirdId', 'p3')).toEqual(['b']);
    expect(rows.get(key('p4'))).toMatchObject({ op: 'delete', status: 'synced' });
    expect(fx.sim.groupsOf('thirdId', 'p4')).toEqual([]);
    expect(fx.sim.groupsOf('thirdId', 'p5')).toEqual(['a']);
  });
});
