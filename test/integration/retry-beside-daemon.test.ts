/**
 * `tuzhan-cdc retry-failed` beside a running daemon while the same customers keep changing (issue
 * 22). A retry that read a row and sent it on connections of its own could have its request in
 * flight together with the daemon's for the same customer, and land after the daemon's newer one:
 * the platform stale while sync_status said synced. Now the daemon runs the retry on its own lanes.
 * Asserted where it shows: at the simulator (never two requests about one customer in flight at
 * once), on the platform (the table's groups), and in sync_status (synced, with those groups).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { startCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  startTestBridge,
  statusRows,
  testConfigYaml,
  waitForCatchUp,
} from '../helpers/pipeline.js';

const SLOT = 'retry_beside_daemon';
const CUSTOMERS = 300;
const ids = Array.from({ length: CUSTOMERS }, (_, i) => `c${i + 1}`);
/** Small requests: the retry sends many, one after another, while the stream sends its own. */
const batching = { maxBatchSize: 10 };

/** Row mode with matching: a customer the platform does not know fails ("no customer matches"). */
const SOURCES = `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
`;

describe('retry-failed beside the daemon, the same customers changing', () => {
  // The simulators are the test's own: one that knows no customer, then one that knows them all.
  const fx = usePipelineFixture('retry beside daemon', { per: 'file', simulator: false });
  let unknowing: Simulator | undefined;
  let platform: Simulator | undefined;

  afterAll(async () => {
    await unknowing?.close();
    await platform?.close();
  });

  it('never has two requests about one customer in flight, and ends with the table on the platform', async () => {
    // Every row fails first: the platform does not know the customers yet.
    unknowing = await startSimulator({ token: 'test-token', registry: [] });
    fx.running = await startTestBridge({ db: fx.db, slot: SLOT, apiUrl: unknowing.url, sources: SOURCES });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names")
       SELECT 'c' || i, 'g0' FROM generate_series(1, ${CUSTOMERS}) i`,
    );
    await waitForCatchUp(fx.db, SLOT);
    await fx.running.stop();
    fx.running = undefined;
    expect(new Set([...(await statusRows(fx.db, 'profiles')).values()].map((r) => r.status))).toEqual(
      new Set(['failed']),
    );

    // Now it knows them, and answers in ~60 ms, as in the report.
    platform = await startSimulator({ token: 'test-token', registry: ids.map((thirdId) => ({ thirdId })) });
    platform.setFaults({ latencyMs: 60 });
    fx.running = await startTestBridge({
      db: fx.db,
      slot: SLOT,
      apiUrl: platform.url,
      sources: SOURCES,
      batching,
    });
    const file = writeConfigFile(
      testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: platform.url, sources: SOURCES, batching }),
    );

    // The retry starts; nothing else is sent until it does (no row changed yet). From its first
    // request on, the customers it is retrying keep changing.
    const running = startCli(['--config', file, 'retry-failed']);
    await eventually(() => expect(platform?.stats().requests).toBeGreaterThan(0), 30_000, 2);
    let changing = true;
    const changes: Array<{ at: number; id: string }> = [];
    const writer = (async () => {
      for (let n = 1; changing; n++) {
        const id = ids[Math.floor(Math.random() * ids.length)] as string;
        await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = $2 WHERE cust_no = $1`, [
          id,
          `w${n}`,
        ]);
        changes.push({ at: Date.now(), id });
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    try {
      const retry = await running.exited;
      expect(retry.stderr).toBe('');
      expect(retry.code).toBe(0);
      expect(retry.stdout).toMatch(
        /^profiles: retried \d+ failed rows \(sent (\d+ delete, )?\d+ add\): \d+ synced$/m,
      );
      // The moment: the daemon ran the retry as a job while the rows kept changing and the
      // daemon kept sending them.
      const job = await fx.db.query<{ started: Date; finished: Date; status: string }>(
        `SELECT started_at AS started, finished_at AS finished, status FROM "Tuzhan Sync".job WHERE kind = 'retry'`,
      );
      expect(job.rows).toHaveLength(1);
      const ran = job.rows[0] as { started: Date; finished: Date; status: string };
      expect(ran.status).toBe('done');
      const during = changes.filter((c) => c.at >= ran.started.getTime() && c.at <= ran.finished.getTime());
      expect(during.length).toBeGreaterThan(5);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      changing = false;
      await writer;
    }
    await waitForCatchUp(fx.db, SLOT);

    expect(platform.overlaps()).toEqual({ count: 0, customers: [] });
    // The daemon kept sending the rows' new groups (adds, and deletes of the groups they lost).
    expect(platform.stats().byOptType.add.requests).toBeGreaterThan(10);
    const table = await fx.db.query<{ cust_no: string; groups: string }>(
      `SELECT cust_no, "Group Names" AS groups FROM crm.customer_profile`,
    );
    const status = await statusRows(fx.db, 'profiles');
    const stale: string[] = [];
    for (const r of table.rows) {
      const onPlatform = platform.groupsOf('thirdId', r.cust_no) ?? [];
      if (JSON.stringify(onPlatform) !== JSON.stringify([r.groups]))
        stale.push(`${r.cust_no}: ${onPlatform}`);
      expect(status.get(JSON.stringify({ cust_no: r.cust_no }))).toMatchObject({
        status: 'synced',
        payload: { thirdId: r.cust_no, groups: r.groups },
      });
    }
    expect(stale).toEqual([]);
  });
});
