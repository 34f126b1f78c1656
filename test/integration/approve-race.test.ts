/**
 * An approval of held rows racing the stream on the same key. A mass delete is held: the platform
 * keeps the deleted rows' groups. While an operator approves, one of the rows comes back with other
 * groups. Its insert must not be planned as if the platform held nothing for the key (it still holds
 * the held row's groups) and then leave the approval nothing to do: the platform would keep the old
 * groups beside the new ones while sync_status says `synced`.
 *
 * The moment is named through the guard: the approval tells the daemon's removal guard that the
 * keys are held no more, and right then (the test's hook) the row comes back and the stream judges
 * its insert, before the approval goes on.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RemovalGuard, type Planned } from '../../src/batching/guard.js';
import type { Holder } from '../../src/batching/coalesce.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, statusRows, waitForCatchUp } from '../helpers/pipeline.js';

const SOURCES = `
  - name: people
    table: crm.people
    mode: row
    columns: { thirdId: cust_no, groups: groups }
    match: { isMatching: false }
`;

describe('an approval of held rows while the stream changes one of them', () => {
  const fx = usePipelineFixture('approve_race', {
    per: 'file',
    schema: `
      CREATE SCHEMA crm;
      CREATE TABLE crm.people (cust_no text PRIMARY KEY, groups text);
      ALTER TABLE crm.people REPLICA IDENTITY FULL;`,
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a held row that comes back during the approval ends with its new groups only', async () => {
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      sources: SOURCES,
      extra: 'guard: { maxRemovals: 2 }',
    });
    await fx.db.query(`INSERT INTO crm.people VALUES ('k1', 'a,b'), ('k2', 'a'), ('k3', 'a'), ('k4', 'a')`);
    await waitForCatchUp(fx.db);
    await fx.db.query(`DELETE FROM crm.people WHERE cust_no IN ('k1', 'k2', 'k3')`);
    await waitForCatchUp(fx.db);
    const held = [...(await statusRows(fx.db, 'people')).values()].filter((r) => r.status === 'held');
    expect(held).toHaveLength(3);
    expect(fx.sim.groupsOf('thirdId', 'k1')).toEqual(['a', 'b']);

    // The stream's judgement of k1's return, seen by the test.
    let judged: () => void = () => {};
    const k1Judged = new Promise<void>((resolve) => (judged = resolve));
    const judge = RemovalGuard.prototype.judge;
    vi.spyOn(RemovalGuard.prototype, 'judge').mockImplementation(async function (
      this: RemovalGuard,
      source: string,
      planned: readonly Planned[],
      open: ReadonlySet<Holder>,
    ) {
      await judge.call(this, source, planned, open);
      if (planned.some((p) => p.entry.key.text === '{"cust_no":"k1"}')) judged();
    });
    // The moment: the guard is told the keys are held no more; k1 comes back and is judged.
    let hit = false;
    const release = RemovalGuard.prototype.release;
    vi.spyOn(RemovalGuard.prototype, 'release').mockImplementation(async function (
      this: RemovalGuard,
      source: string,
      keys: Iterable<string>,
    ) {
      await release.call(this, source, keys);
      if (hit) return;
      hit = true;
      await fx.db.query(`INSERT INTO crm.people VALUES ('k1', 'c')`);
      await k1Judged;
    });

    const results = await fx.running.bridge.settleHeld('approve', { source: 'people' });
    expect(hit).toBe(true);
    expect(results[0]?.rows).toBe(3);
    await waitForCatchUp(fx.db);

    // What the table holds: k1 with c only; k2 and k3 gone.
    expect(fx.sim.groupsOf('thirdId', 'k1')).toEqual(['c']);
    expect(fx.sim.groupsOf('thirdId', 'k2')).toEqual([]);
    expect(fx.sim.groupsOf('thirdId', 'k3')).toEqual([]);
    const rows = await statusRows(fx.db, 'people');
    expect(rows.get('{"cust_no":"k1"}')).toMatchObject({ op: 'add', status: 'synced' });
    expect(rows.get('{"cust_no":"k2"}')).toMatchObject({ op: 'delete', status: 'synced' });
  });
});
