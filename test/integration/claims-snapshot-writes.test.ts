/**
 * SPEC section 8: the first-start snapshot is the one the slot's creation exported, "so no change
 * is missed or sent twice between the snapshot and the stream". Rows inside the snapshot are
 * updated and deleted, and new rows inserted, updated and deleted, while the snapshot is being
 * read and sent; at the end the platform equals the table, no state was sent twice, and no key's
 * older state reached the platform after a newer one.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { OptType } from '../../src/tuzhan/types.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { eventually, startTestBridge, waitForCatchUp, type TestBridge } from '../helpers/pipeline.js';

const ROWS = 30_000;
const NEW_ROWS = 50;

describe('writes during the first-start snapshot', () => {
  /** Every row the platform accepted, in order: key, operation and groups. */
  const sent: Array<{ key: string; optType: OptType; groups: string }> = [];
  const fx = usePipelineFixture('claims snapshot', {
    per: 'file',
    simulator: {
      onRows: (optType, rows) => {
        for (const r of rows) sent.push({ key: r.thirdId ?? '?', optType, groups: r.groups ?? '' });
      },
    },
  });
  let running: Promise<TestBridge> | undefined;

  afterAll(async () => {
    await (await running?.catch(() => undefined))?.stop();
  });

  /**
   * The version a sent row carries: `vN` in its groups. A delete removes the groups of version N
   * (a row that moved on, or was deleted): it comes after N was set and before anything newer.
   */
  function version(s: { optType: OptType; groups: string }): number {
    const m = /(?:^|,)v(\d+)(?:,|$)/.exec(s.groups);
    const n = m ? Number(m[1]) : -1;
    return s.optType === 'delete' ? n + 0.5 : n;
  }

  it('are neither missed nor sent twice', async () => {
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names")
       SELECT 'p' || i, 'v0,g' || (i % 5) FROM generate_series(1, ${ROWS}) i`,
    );
    // A slow platform while the writes are made, so the snapshot is still being sent.
    fx.sim.setFaults({ latencyMs: 1000 });
    running = startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    running.catch(() => {});
    // The slot exists (its snapshot is exported) and the snapshot's first requests are out.
    await eventually(
      async () => {
        const { rowCount } = await fx.db.query(
          `SELECT 1 FROM "Tuzhan Sync".bridge_state WHERE slot = $1 AND snapshot_started_at IS NOT NULL`,
          [fx.db.name],
        );
        expect(rowCount).toBe(1);
        expect(fx.sim.stats().requests).toBeGreaterThan(0);
      },
      30_000,
      20,
    );

    // Rows inside the snapshot: updated once, updated twice, deleted; spread over its chunks.
    await fx.db.query(
      `UPDATE crm.customer_profile SET "Group Names" = 'v1,u' || cust_no WHERE substr(cust_no, 2)::int % 1000 IN (7, 21)`,
    );
    await fx.db.query(
      `UPDATE crm.customer_profile SET "Group Names" = 'v2,w' || cust_no WHERE substr(cust_no, 2)::int % 1000 = 21`,
    );
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE substr(cust_no, 2)::int % 1000 = 13`);
    // Rows outside it: inserted, some then updated, some deleted.
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names")
       SELECT 'n' || i, 'v1,new' FROM generate_series(1, ${NEW_ROWS}) i`,
    );
    await fx.db.query(
      `UPDATE crm.customer_profile SET "Group Names" = 'v2,newer' WHERE cust_no IN (SELECT 'n' || i FROM generate_series(1, 10) i)`,
    );
    await fx.db.query(
      `DELETE FROM crm.customer_profile WHERE cust_no IN (SELECT 'n' || i FROM generate_series(11, 20) i)`,
    );
    // The moment: every write above committed while the snapshot was unfinished.
    const state = await fx.db.query<{ done: boolean }>(
      `SELECT snapshot_done_at IS NOT NULL AS done FROM "Tuzhan Sync".bridge_state WHERE slot = $1`,
      [fx.db.name],
    );
    expect(state.rows).toEqual([{ done: false }]);
    fx.sim.setFaults({ latencyMs: 0 });

    await running;
    await waitForCatchUp(fx.db, fx.db.name, 60_000);

    // Nothing missed: the platform equals the table, for every key ever written.
    const { rows } = await fx.db.query<{ cust_no: string; groups: string }>(
      `SELECT cust_no, "Group Names" AS groups FROM crm.customer_profile`,
    );
    const table = new Map(rows.map((r) => [r.cust_no, r.groups.split(',').sort()]));
    const keys = [
      ...Array.from({ length: ROWS }, (_, i) => `p${i + 1}`),
      ...Array.from({ length: NEW_ROWS }, (_, i) => `n${i + 1}`),
    ];
    const wrong = keys.filter(
      (k) => JSON.stringify(fx.sim.groupsOf('thirdId', k) ?? []) !== JSON.stringify(table.get(k) ?? []),
    );
    expect(wrong).toEqual([]);
    expect(table.size).toBe(ROWS - 30 + NEW_ROWS - 10);

    // Nothing sent twice, and never an older state after a newer one.
    const byKey = new Map<string, Array<{ optType: OptType; groups: string }>>();
    for (const s of sent) {
      let list = byKey.get(s.key);
      if (!list) byKey.set(s.key, (list = []));
      list.push(s);
    }
    const twice: string[] = [];
    const backwards: string[] = [];
    for (const [key, list] of byKey) {
      const seen = new Set<string>();
      let newest = -Infinity;
      for (const s of list) {
        const text = `${s.optType}:${s.groups}`;
        if (seen.has(text)) twice.push(`${key} ${text}`);
        seen.add(text);
        if (version(s) < newest)
          backwards.push(`${key}: ${list.map((x) => `${x.optType}:${x.groups}`).join(' ')}`);
        newest = Math.max(newest, version(s));
      }
    }
    expect(twice).toEqual([]);
    expect(backwards).toEqual([]);
    // The changed rows' histories as the platform saw them: the snapshot's state, then the stream's.
    const history = (k: string): string[] => (byKey.get(k) ?? []).map((s) => `${s.optType}:${s.groups}`);
    // (A row's groups are added, the groups it lost deleted: never a replaced set, never "all".)
    expect(history('p7')).toEqual(['add:v0,g2', 'delete:v0,g2', 'add:v1,up7']);
    expect(history('p21')).toEqual(['add:v0,g1', 'delete:v0,g1', 'add:v2,wp21']);
    expect(history('p13')).toEqual(['add:v0,g3', 'delete:v0,g3']);
    expect(history('n30')).toEqual(['add:v1,new']);
    expect(history('n1')).toEqual(['add:v2,newer']);
    // Inserted and deleted: skipped when both fall into one flush, else added then removed.
    expect([[], ['add:v1,new', 'delete:v1,new']]).toContainEqual(history('n11'));
  });
});
