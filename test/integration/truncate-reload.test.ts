/**
 * TRUNCATE (`onTruncate: resync`, the default) followed by a reload in transactions of its own, as
 * `TRUNCATE` then `COPY` in autocommit does: the reloaded rows stream before the re-sync the
 * TRUNCATE asked for runs. Until it has, the platform still holds what the truncated rows had, so a
 * reloaded row is not new to it: a group the reload left out of the row must go, in row mode and in
 * membership mode (a serial key given again to another pair), or the platform keeps it while
 * sync_status says `synced`.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Watermarks } from '../../src/router/watermarks.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { commitReturningLsn, confirmedPast } from '../helpers/moments.js';
import {
  CRM_SCHEMA,
  eventually,
  expectedGroups,
  startTestBridge,
  statusRows,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

describe('a reload in its own transactions after a TRUNCATE', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('truncate_reload');
    await db.query(CRM_SCHEMA);
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await running?.stop();
    running = undefined;
  });

  /** The TRUNCATE re-syncs of the slot, once every one of them is done. */
  async function resyncsDone(n: number): Promise<Array<{ started_at: Date }>> {
    return eventually(async () => {
      const { rows } = await db.query<{ status: string; started_at: Date }>(
        `SELECT status, started_at FROM "Tuzhan Sync".job WHERE kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,
      );
      expect(rows).toHaveLength(n);
      expect(rows.every((r) => r.status === 'done')).toBe(true);
      return rows;
    }, 30_000);
  }
  afterAll(async () => {
    await sim.close();
    await db.drop();
  });

  it('the reloaded rows lose what the reload left out, once the re-sync ran', async () => {
    running = await startTestBridge({ db, apiUrl: sim.url });
    await db.query(`
      INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'a,b'), ('c2', 'a');
      INSERT INTO crm.member_group (id, member_id, group_name) VALUES (1, 'm1', 'old'), (2, 'm2', 'x');`);
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', 'c1')).toEqual(['a', 'b']);
    expect(sim.groupsOf('thirdId', 'm1')).toEqual(['old']);

    // Each statement its own transaction: the reload comes after the TRUNCATE's.
    await db.query(`TRUNCATE crm.customer_profile, crm.member_group`);
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'c'), ('c2', 'a')`,
    );
    await db.query(
      `INSERT INTO crm.member_group (id, member_id, group_name) VALUES (1, 'm1', 'new'), (2, 'm2', 'x')`,
    );
    const { rows: at } = await db.query<{ t: Date }>(`SELECT clock_timestamp() AS t`);
    const reloaded = (at[0] as { t: Date }).t;

    // The moment: the re-syncs ran after the reload was committed (and streamed).
    for (const r of await resyncsDone(2)) expect(r.started_at.getTime()).toBeGreaterThan(reloaded.getTime());
    await waitForCatchUp(db);

    expect(sim.groupsOf('thirdId', 'c1')).toEqual(['c']);
    expect(sim.groupsOf('thirdId', 'c2')).toEqual(['a']);
    expect(sim.groupsOf('thirdId', 'm1')).toEqual(['new']);
    expect(sim.groupsOf('thirdId', 'm2')).toEqual(['x']);
    const expected = await expectedGroups(db);
    for (const id of ['c1', 'c2', 'm1', 'm2']) expect(sim.groupsOf('thirdId', id)).toEqual(expected[id]);
    expect((await statusRows(db, 'profiles')).get('{"cust_no":"c1"}')).toMatchObject({ status: 'synced' });
  });

  it('a restart while the re-sync is still to finish: the reload streamed after it loses the same', async () => {
    // A database of its own: nothing of the first test's TRUNCATE left to replay.
    await running?.stop();
    running = undefined;
    await db.drop();
    db = await createTestDatabase('truncate_restart');
    await db.query(CRM_SCHEMA);
    running = await startTestBridge({ db, apiUrl: sim.url });
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r1', 'a,b'), ('r2', 'a')`,
    );
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', 'r1')).toEqual(['a', 'b']);

    // The re-sync's chunk never comes back from the stream: it is running when the bridge stops.
    const onMessage = Watermarks.prototype.onMessage;
    vi.spyOn(Watermarks.prototype, 'onMessage').mockImplementation(function (
      this: Watermarks,
      content: string,
      buffer: Parameters<Watermarks['onMessage']>[1],
    ) {
      if (!content.includes('"high"')) onMessage.call(this, content, buffer);
    });
    const truncated = await commitReturningLsn(db, [`TRUNCATE crm.customer_profile`]);
    // The moment: the TRUNCATE is confirmed (a restart does not read it again) and its re-sync runs.
    await eventually(async () => {
      expect(await confirmedPast(db, db.name, truncated)).toBe(true);
      const { rows } = await db.query<{ status: string }>(
        `SELECT status FROM "Tuzhan Sync".job WHERE kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,
      );
      expect(rows.map((r) => r.status)).toEqual(['running']);
    }, 30_000);
    await running.stop();
    running = undefined;
    vi.restoreAllMocks();

    // The reload, streamed by the next bridge before it can take up the re-sync (its job row is
    // locked until the reload's outcome is stored).
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r1', 'c')`);
    const lock = new pg.Client({ connectionString: db.url });
    await lock.connect();
    try {
      await lock.query('BEGIN');
      await lock.query(`SELECT 1 FROM "Tuzhan Sync".job WHERE kind = 'backfill' FOR UPDATE`);
      running = await startTestBridge({ db, apiUrl: sim.url });
      await eventually(async () =>
        expect((await statusRows(db, 'profiles')).get('{"cust_no":"r1"}')).toMatchObject({
          status: 'synced',
          payload: { groups: 'c' },
        }),
      );
      const { rows } = await db.query<{ status: string }>(
        `SELECT status FROM "Tuzhan Sync".job WHERE kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,
      );
      expect(rows.map((r) => r.status)).toEqual(['running']);
    } finally {
      await lock.query('COMMIT');
      await lock.end();
    }
    await resyncsDone(1);
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', 'r1')).toEqual(['c']);
    expect(sim.groupsOf('thirdId', 'r2')).toEqual([]);
  });
});
