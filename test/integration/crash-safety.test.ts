/**
 * SPEC section 5: a crash at any instant, then a restart, loses nothing. The bridge runs as its own
 * process and is SIGKILLed at six different moments of a stream of transactions, restarted each
 * time; at the end the simulator equals the database and every row has an outcome. Each moment is
 * asserted, mostly after the kill, when what held at the kill can no longer change (an unfinished
 * snapshot stays unfinished, an unanswered request stays unanswered by a dead process).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import { commitReturningLsn, confirmedPast, currentLsn, unanswered } from '../helpers/moments.js';
import { spawnBridge, writeConfigFile, type BridgeProcess } from '../helpers/bridge-process.js';
import { eventually, expectedGroups, testConfigYaml, waitForCatchUp } from '../helpers/pipeline.js';

describe('crash safety', () => {
  const fx = usePipelineFixture('crash', { per: 'file' });
  let configFile: string;
  let bridge: BridgeProcess | undefined;
  const ids = new Set<string>();
  let seq = 0;

  beforeAll(() => {
    configFile = writeConfigFile(
      testConfigYaml({
        db: fx.db,
        apiUrl: fx.sim.url,
        batching: { maxBatchSize: 200, debounceMs: 20, maxWaitMs: 100, maxBufferedRows: 2000 },
      }),
    );
  });
  afterAll(async () => {
    await bridge?.kill('SIGKILL');
  });

  /** A few transactions touching both sources: inserts, group changes, moves, deletes. */
  async function writeSome(n = 5): Promise<void> {
    const c = new pg.Client({ connectionString: fx.db.url });
    await c.connect();
    try {
      for (let t = 0; t < n; t++) {
        const i = seq++;
        const p = `p${i % 40}`;
        const m = `m${i % 25}`;
        ids
          .add(p)
          .add(m)
          .add(`m${(i + 7) % 25}`);
        await c.query('BEGIN');
        await c.query(
          `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ($1, $2)
           ON CONFLICT (cust_no) DO UPDATE SET "Group Names" = EXCLUDED."Group Names"`,
          [p, `g${i % 3},h${i % 5}`],
        );
        await c.query(
          `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [m, `g${i % 4}`],
        );
        if (i % 3 === 0)
          await c.query(`DELETE FROM crm.customer_profile WHERE cust_no = $1`, [`p${(i + 13) % 40}`]);
        if (i % 4 === 0) {
          await c.query(
            `UPDATE crm.member_group SET member_id = $2 WHERE member_id = $1 AND group_name = $3
               AND NOT EXISTS (SELECT 1 FROM crm.member_group WHERE member_id = $2 AND group_name = $3)`,
            [m, `m${(i + 7) % 25}`, `g${i % 4}`],
          );
        }
        if (i % 5 === 0)
          await c.query(`DELETE FROM crm.member_group WHERE member_id = $1`, [`m${(i + 3) % 25}`]);
        await c.query('COMMIT');
      }
    } finally {
      await c.end();
    }
  }

  /** Outcomes stored for changes committed after `lsn` (skipped rows need no answer: not counted). */
  async function storedSince(lsn: string): Promise<number> {
    const { rows } = await fx.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Tuzhan Sync".sync_status WHERE lsn > $1::pg_lsn AND status <> 'skipped'`,
      [lsn],
    );
    return rows[0]?.n ?? -1;
  }

  function start(): BridgeProcess {
    bridge = spawnBridge(configFile);
    return bridge;
  }

  async function crash(): Promise<void> {
    const b = bridge as BridgeProcess;
    expect(await b.kill('SIGKILL')).toBe('SIGKILL');
    bridge = undefined;
  }

  async function streaming(): Promise<void> {
    await eventually(
      () => expect((bridge as BridgeProcess).output()).toMatch(/replication stream started/),
      30_000,
    );
  }

  it('loses nothing when killed at any moment', async () => {
    // 1. During the first-start snapshot of existing rows.
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) SELECT 'm' || (i % 25), 'snap' || i FROM generate_series(1, 4000) i`,
    );
    for (let i = 0; i < 25; i++) ids.add(`m${i}`);
    // 20 requests (one per 200-row flush, merged per member), one after the other since they share
    // customers, each answered after 100 ms: two seconds at least.
    fx.sim.setFaults({ latencyMs: 100 });
    start();
    await eventually(() => expect(fx.sim.stats().requests).toBeGreaterThanOrEqual(2), 30_000, 10);
    await crash();
    fx.sim.setFaults({ latencyMs: 0 });
    // The moment (read after the kill, so it held at the kill): the slot's snapshot had begun and
    // not finished.
    const snapshot = await fx.db.query<{ started: boolean; done: boolean }>(
      `SELECT snapshot_started_at IS NOT NULL AS started, snapshot_done_at IS NOT NULL AS done
         FROM "Tuzhan Sync".bridge_state WHERE slot = $1`,
      [fx.db.name],
    );
    expect(snapshot.rows).toEqual([{ started: true, done: false }]);

    // 2. While a request is in flight (the platform is slow to answer).
    start();
    await streaming();
    fx.sim.setFaults({ latencyMs: 500 });
    // Requests of an earlier stage that never got an answer (cut off by a kill) stay counted.
    const unansweredBefore = unanswered(fx.sim.stats());
    const before = fx.sim.stats().requests;
    let stageStart = await currentLsn(fx.db);
    await writeSome();
    await eventually(() => expect(fx.sim.stats().requests).toBeGreaterThan(before), 10_000, 10);
    await crash();
    fx.sim.setFaults({ latencyMs: 0 });
    // The moment (read after the kill, when answers can only have grown): the platform had received
    // a request it had not answered, and no outcome of this stage's changes was stored.
    expect(unanswered(fx.sim.stats())).toBeGreaterThan(unansweredBefore);
    expect(await storedSince(stageStart)).toBe(0);

    // 3. Between the platform's answer and the status write: the status table is locked, so the
    //    bridge holds the answer it cannot store yet.
    start();
    await streaming();
    await waitForCatchUp(fx.db);
    const locker = new pg.Client({ connectionString: fx.db.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE "Tuzhan Sync".sync_status IN EXCLUSIVE MODE');
    const applied = fx.sim.stats().byOptType.update.requests + fx.sim.stats().byOptType.add.requests;
    stageStart = await currentLsn(fx.db);
    await writeSome(2);
    await eventually(
      () =>
        expect(
          fx.sim.stats().byOptType.update.requests + fx.sim.stats().byOptType.add.requests,
        ).toBeGreaterThan(applied),
      10_000,
      10,
    );
    // The moment: the platform applied rows of this stage, the bridge's status write waits for the
    // lock, and sync_status (readable under an EXCLUSIVE lock) has none of their outcomes.
    await eventually(async () => {
      const { rowCount } = await fx.db.query(
        `SELECT 1 FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'tuzhan-cdc' AND wait_event_type = 'Lock'`,
      );
      expect(rowCount).toBeGreaterThan(0);
    }, 10_000);
    await crash();
    expect(await storedSince(stageStart)).toBe(0);
    await locker.query('ROLLBACK');
    await locker.end();

    // 4. While retrying a failing platform. Stage 3's changes (applied, their outcomes not stored)
    //    are sent again first: the platform fails only once they are through. Failing them too
    //    would leave their requests retrying in every concurrency slot (the stream's older
    //    requests, rightly not overtaken on their keys), and this stage's rows never tried.
    start();
    await streaming();
    await waitForCatchUp(fx.db);
    fx.sim.setFaults({ errorRate: 1 });
    stageStart = await currentLsn(fx.db);
    await writeSome();
    await eventually(() => expect(fx.sim.stats().served500).toBeGreaterThanOrEqual(3), 15_000, 10);
    // The moment: sync_status shows this stage's rows as retrying.
    await eventually(async () => {
      const { rowCount } = await fx.db.query(
        `SELECT 1 FROM "Tuzhan Sync".sync_status WHERE status = 'retrying' AND lsn > $1::pg_lsn`,
        [stageStart],
      );
      expect(rowCount).toBeGreaterThan(0);
    }, 10_000);
    await crash();
    fx.sim.setFaults({ errorRate: 0 });

    // 5. In the middle of a large transaction.
    start();
    await streaming();
    // Membership rows of one customer are merged into one API row: count the groups themselves.
    const bulkOnPlatform = (): number =>
      Array.from({ length: 25 }, (_, i) => fx.sim.groupsOf('thirdId', `m${i}`) ?? [])
        .flat()
        .filter((g) => g.startsWith('bulk')).length;
    await commitReturningLsn(fx.db, [
      `INSERT INTO crm.member_group (member_id, group_name) SELECT 'm' || (i % 25), 'bulk' || i FROM generate_series(1, 20000) i`,
    ]);
    // The transaction's commit LSN, as the bridge stores it with each outcome. (The position read
    // before COMMIT is not it: other databases of the server write WAL in between, and while the
    // bridge waits for the transaction it may confirm a keepalive's position past that read, though
    // never past the commit.)
    const bulkCommit = async (): Promise<string | undefined> =>
      (
        await fx.db.query<{ lsn: string | null }>(
          `SELECT max(lsn)::text AS lsn FROM "Tuzhan Sync".sync_status
            WHERE source = 'memberships' AND payload->>'groups' LIKE 'bulk%'`,
        )
      ).rows[0]?.lsn ?? undefined;
    await eventually(
      async () => {
        expect(bulkOnPlatform()).toBeGreaterThan(1000);
        expect(await bulkCommit()).toBeDefined();
      },
      30_000,
      10,
    );
    await crash();
    // The moment: the platform had some of the transaction's rows but not all, and the slot had not
    // confirmed past its commit.
    expect(bulkOnPlatform()).toBeLessThan(20000);
    expect(await confirmedPast(fx.db, fx.db.name, (await bulkCommit()) as string)).toBe(false);

    // 6. At an arbitrary instant while transactions keep coming.
    start();
    await streaming();
    const seqBefore = seq;
    let writing = true;
    const writer = writeSome(40).finally(() => (writing = false));
    await eventually(() => expect(seq).toBeGreaterThanOrEqual(seqBefore + 10), 10_000, 5);
    // The moment: the writer is still running.
    expect(writing).toBe(true);
    await crash();
    await writer;

    // The last start: everything converges, every row has an outcome, and SIGTERM stops cleanly.
    start();
    await streaming();
    await writeSome(3);
    await waitForCatchUp(fx.db, fx.db.name, 60_000);
    const platform: Record<string, string[]> = {};
    for (const id of ids) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g && g.length) platform[id] = [...g].sort();
    }
    expect(platform).toEqual(await expectedGroups(fx.db));
    const missing = await fx.db.query(`
      SELECT m.id FROM crm.member_group m
       WHERE NOT EXISTS (SELECT 1 FROM "Tuzhan Sync".sync_status s
                          WHERE s.source = 'memberships' AND s.row_key = jsonb_build_object('id', m.id::text) AND s.status = 'synced')
      UNION ALL
      SELECT NULL FROM crm.customer_profile p
       WHERE NOT EXISTS (SELECT 1 FROM "Tuzhan Sync".sync_status s
                          WHERE s.source = 'profiles' AND s.row_key = jsonb_build_object('cust_no', p.cust_no) AND s.status = 'synced')`);
    expect(missing.rowCount).toBe(0);
    const retrying = await fx.db.query(`SELECT 1 FROM "Tuzhan Sync".sync_status WHERE status = 'retrying'`);
    expect(retrying.rowCount).toBe(0);
    expect(await (bridge as BridgeProcess).kill('SIGTERM')).toBe(0);
    bridge = undefined;
  }, 240_000);
});
