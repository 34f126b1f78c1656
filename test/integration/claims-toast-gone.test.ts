/**
 * docs/design.md "What the WAL does not carry": an unchanged TOAST value is read from the current
 * row at flush time, and "if the row is gone by then, it is treated as gone (its identity
 * cleared): its delete is on its way". Never are the groups sent as empty.
 *
 * The read is made to come after the delete: within the update's debounce, the delete's transaction
 * takes an ACCESS EXCLUSIVE lock on the table, and commits only once the bridge's read of the row
 * waits for it.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ApiRow, OptType } from '../../src/tuzhan/types.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { CRM_SCHEMA, eventually, startTestBridge, statusRows, waitForCatchUp } from '../helpers/pipeline.js';

describe('an unchanged TOAST value whose row is gone', () => {
  const fx = usePipelineFixture('claims toast gone', {
    schema: [
      CRM_SCHEMA,
      `ALTER TABLE crm.customer_profile REPLICA IDENTITY DEFAULT`,
      // Out of line and uncompressed: an UPDATE that leaves it alone logs it as "unchanged toast".
      `ALTER TABLE crm.customer_profile ALTER COLUMN "Group Names" SET STORAGE EXTERNAL`,
    ],
  });
  /** What the platform was sent for t1, row by row. */
  const sent = (): Array<{ optType: OptType; row: ApiRow }> =>
    fx.requests.flatMap(({ optType, rows }) =>
      rows.filter((row) => row.thirdId === 't1').map((row) => ({ optType, row })),
    );

  /**
   * Inserts t1 with 400 groups, then updates another column (the groups arrive as "unchanged toast")
   * and deletes the row before the update's flush reads it. Returns what the platform was sent for
   * t1 (`all` standing for the 400 groups, `<empty>` for "") and, with `watch`, every status sync_status showed for it
   * after the delete (the platform then answers slowly, so that a status between flushes shows).
   */
  async function goneBeforeTheRead(
    lookup: boolean,
    watch = false,
  ): Promise<{ shown: string[]; statuses: string[] }> {
    const groups = Array.from({ length: 400 }, (_, i) => `g${i}-${Math.random().toString(36).slice(2, 12)}`);
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      batching: { debounceMs: 300, maxWaitMs: 1000 },
      sources: `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    ${lookup ? 'deleteLookup: state' : ''}
    match: { isMatching: false }`,
    });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', $1)`, [
      groups.join(','),
    ]);
    await waitForCatchUp(fx.db);

    const deleter = new pg.Client({ connectionString: fx.db.url });
    await deleter.connect();
    try {
      // The groups arrive as "unchanged toast". Before the update's flush (the debounce is long), the
      // row is deleted and the table locked; the bridge's read of the row at flush time waits.
      await fx.db.query(`UPDATE crm.customer_profile SET note = 'touched' WHERE cust_no = 't1'`);
      await deleter.query('BEGIN');
      await deleter.query(`LOCK TABLE crm.customer_profile IN ACCESS EXCLUSIVE MODE`);
      await deleter.query(`DELETE FROM crm.customer_profile WHERE cust_no = 't1'`);
      await eventually(async () => {
        const { rows } = await fx.db.query<{ query: string }>(
          `SELECT query FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'tuzhan-cdc' AND wait_event_type = 'Lock'`,
        );
        // The moment: the bridge's read of the row waits for the delete's transaction.
        expect(rows.map((r) => r.query)).toEqual([expect.stringMatching(/^SELECT .*customer_profile/)]);
      }, 10_000);
      if (watch) fx.sim.setFaults({ latencyMs: 500 });
      await deleter.query('COMMIT');
    } finally {
      await deleter.end();
    }
    const statuses: string[] = [];
    const caughtUp = waitForCatchUp(fx.db).finally(() => (watching = false));
    let watching = true;
    while (watching) {
      const row = (await statusRows(fx.db, 'profiles')).get('{"cust_no":"t1"}');
      const seen = `${row?.op}/${row?.status}${row?.error ? `: ${row.error}` : ''}`;
      if (statuses[statuses.length - 1] !== seen) statuses.push(seen);
      await new Promise((r) => setTimeout(r, 20));
    }
    await caughtUp;
    const all = groups.join(',');
    const shown = sent().map(({ optType, row }) =>
      row.groups === undefined
        ? `${optType}:`
        : `${optType}:${row.groups === all ? 'all' : row.groups === '' ? '<empty>' : row.groups}`,
    );
    return { shown, statuses };
  }

  it.each([{ lookup: false }, { lookup: true }])(
    'ends deleted and never sends the groups as empty (deleteLookup: state $lookup)',
    async ({ lookup }) => {
      const { shown } = await goneBeforeTheRead(lookup);
      expect(shown[0]).toBe('add:all');
      // Every request carries the 400 groups, never fewer and never none (a delete without groups
      // would remove what other writers put on the customer); the last one removes them.
      expect(shown.filter((s) => !s.endsWith(':all'))).toEqual([]);
      expect(shown[shown.length - 1]).toBe('delete:all');
      expect(fx.sim.groupsOf('thirdId', 't1')).toEqual([]);
      const row = (await statusRows(fx.db, 'profiles')).get('{"cust_no":"t1"}');
      expect(row).toMatchObject({ op: 'delete', status: 'synced', error: null });
    },
  );

  // Without deleteLookup (REPLICA IDENTITY DEFAULT), a row-mode update's before is what the bridge
  // last recorded as sent; a row gone at the read is treated as gone, so no false "cannot be
  // translated" failure is stored while its delete is on its way (docs/design.md, "What the WAL
  // does not carry").
  it('records no failure for the row while its delete is on its way (no deleteLookup)', async () => {
    const { statuses } = await goneBeforeTheRead(false, true);
    expect(statuses.filter((s) => s.includes('failed'))).toEqual([]);
  });
});
