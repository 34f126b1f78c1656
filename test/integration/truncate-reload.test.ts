/**
 * TRUNCATE (`onTruncate: resync`, the default) followed by a reload in transactions of its own, as
 * `TRUNCATE` then `COPY` in autocommit does: the reloaded rows stream before the re-sync the
 * TRUNCATE asked for runs. Until it has, the platform still holds what the truncated rows had, so a
 * reloaded row is not new to it: a group the reload left out of the row must go, in row mode and in
 * membership mode (a serial key given again to another pair), or the platform keeps it while
 * sync_status says `synced`.
 */
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Watermarks } from '../../src/router/watermarks.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { commitReturningLsn, confirmedPast } from '../helpers/moments.js';
import {
  eventually,
  expectedGroups,
  startTestBridge,
  statusRows,
  waitForCatchUp,
} from '../helpers/pipeline.js';

describe('a reload in its own transactions after a TRUNCATE', () => {
  // A database per test: nothing of one test's TRUNCATE left for the next to replay.
  const fx = usePipelineFixture('truncate_reload');

  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** The TRUNCATE re-syncs of the slot, once every one of them is done. */
  async function resyncsDone(n: number): Promise<Array<{ started_at: Date }>> {
    return eventually(async () => {
      const { rows } = await fx.db.query<{ status: string; started_at: Date }>(
        `SELECT status, started_at FROM "Tuzhan Sync".job WHERE kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,
      );
      expect(rows).toHaveLength(n);
      expect(rows.every((r) => r.status === 'done')).toBe(true);
      return rows;
    }, 30_000);
  }

  it('the reloaded rows lose what the reload left out, once the re-sync ran', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await fx.db.query(`
      INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'a,b'), ('c2', 'a');
      INSERT INTO crm.member_group (id, member_id, group_name) VALUES (1, 'm1', 'old'), (2, 'm2', 'x');`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual(['a', 'b']);
    expect(fx.sim.groupsOf('thirdId', 'm1')).toEqual(['old']);

    // Each statement its own transaction: the reload comes after the TRUNCATE's.
    await fx.db.query(`TRUNCATE crm.customer_profile, crm.member_group`);
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'c'), ('c2', 'a')`,
    );
    await fx.db.query(
      `INSERT INTO crm.member_group (id, member_id, group_name) VALUES (1, 'm1', 'new'), (2, 'm2', 'x')`,
    );
    const { rows: at } = await fx.db.query<{ t: Date }>(`SELECT clock_timestamp() AS t`);
    const reloaded = (at[0] as { t: Date }).t;

    // The moment: the re-syncs ran after the reload was committed (and streamed).
    for (const r of await resyncsDone(2)) expect(r.started_at.getTime()).toBeGreaterThan(reloaded.getTime());
    await waitForCatchUp(fx.db);

    expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual(['c']);
    expect(fx.sim.groupsOf('thirdId', 'c2')).toEqual(['a']);
    expect(fx.sim.groupsOf('thirdId', 'm1')).toEqual(['new']);
    expect(fx.sim.groupsOf('thirdId', 'm2')).toEqual(['x']);
    const expected = await expectedGroups(fx.db);
    for (const id of ['c1', 'c2', 'm1', 'm2']) expect(fx.sim.groupsOf('thirdId', id)).toEqual(expected[id]);
    expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"c1"}')).toMatchObject({ status: 'synced' });
  });

  it('a restart while the re-sync is still to finish: the reload streamed after it loses the same', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r1', 'a,b'), ('r2', 'a')`,
    );
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'r1')).toEqual(['a', 'b']);

    // The re-sync's chunk never comes back from the stream: it is running when the bridge stops.
    const onMessage = Watermarks.prototype.onMessage;
    vi.spyOn(Watermarks.prototype, 'onMessage').mockImplementation(function (
      this: Watermarks,
      content: string,
      buffer: Parameters<Watermarks['onMessage']>[1],
    ) {
      if (!content.includes('"high"')) onMessage.call(this, content, buffer);
    });
    const truncated = await commitReturningLsn(fx.db, [`TRUNCATE crm.customer_profile`]);
    // The moment: the TRUNCATE is confirmed (a restart does not read it again) and its re-sync runs.
    await eventually(async () => {
      expect(await confirmedPast(fx.db, fx.db.name, truncated)).toBe(true);
      const { rows } = await fx.db.query<{ status: string }>(
        `SELECT status FROM "Tuzhan Sync".job WHERE kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,
      );
      expect(rows.map((r) => r.status)).toEqual(['running']);
    }, 30_000);
    await fx.running.stop();
    fx.running = undefined;
    vi.restoreAllMocks();

    // The reload, streamed by the next bridge before it can take up the re-sync (its job row is
    // locked until the reload's outcome is stored).
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r1', 'c')`);
    const lock = new pg.Client({ connectionString: fx.db.url });
    await lock.connect();
    try {
      await lock.query('BEGIN');
      await lock.query(`SELECT 1 FROM "Tuzhan Sync".job WHERE kind = 'backfill' FOR UPDATE`);
      fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
      await eventually(async () =>
        expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"r1"}')).toMatchObject({
          status: 'synced',
          payload: { groups: 'c' },
        }),
      );
      const { rows } = await fx.db.query<{ status: string }>(
        `SELECT status FROM "Tuzhan Sync".job WHERE kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,
      );
      expect(rows.map((r) => r.status)).toEqual(['running']);
    } finally {
      await lock.query('COMMIT');
      await lock.end();
    }
    await resyncsDone(1);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'r1')).toEqual(['c']);
    expect(fx.sim.groupsOf('thirdId', 'r2')).toEqual([]);
  });
});
