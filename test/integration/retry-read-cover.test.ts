/**
 * A retry sends a failed row's CURRENT state, which can be newer than anything the stream has seen:
 * a change committed after the retry began and before it read the row. That change may have
 * reached the platform, and must count so. When it counted as never sent, the stream's next flush of
 * the key (g0 -> w1 -> w2 in one window) coalesced w1 away as a state the platform never saw, and
 * the platform kept w1 beside w2 while sync_status said synced w2 (seen in
 * retry-beside-daemon.test.ts about one run in seven: `c98: w188,w27`).
 *
 * Deterministic: the retry is held at its lanes (after everything it does before them) while w1 is
 * committed, then reads and sends w1; w2 is committed; the daemon starts and reads both updates in
 * one flush.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Lanes } from '../../src/batching/lanes.js';
import { OrderedScheduler, type Resources } from '../../src/batching/scheduler.js';
import { Delivery } from '../../src/delivery/delivery.js';
import { silentLogger } from '../../src/ops/logger.js';
import { retrySource } from '../../src/pipeline/retry-failed.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { SentMark } from '../../src/status/sent-mark.js';
import { StatusStore } from '../../src/status/status-store.js';
import { TuzhanClient } from '../../src/tuzhan/client.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, statusRows, testConfig, waitForCatchUp } from '../helpers/pipeline.js';

const SLOT = 'retry_read_cover';
const SOURCES = `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
`;
const KEY = JSON.stringify({ cust_no: 'c1' });

/** The daemon's lanes, with a gate every reservation waits at before its task runs. */
class GatedLanes extends Lanes {
  reached: Promise<void>;
  private reach: () => void = () => {};
  private readonly gate: Promise<void>;
  open: () => void = () => {};

  constructor(scheduler: OrderedScheduler, delivery: Delivery) {
    super(scheduler, delivery);
    this.reached = new Promise((resolve) => (this.reach = resolve));
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  override reserve<T>(resources: Resources, task: () => Promise<T>): Promise<T> {
    this.reach();
    return super.reserve(resources, async () => {
      await this.gate;
      return task();
    });
  }
}

describe('a retry that reads a change the stream has not seen yet', () => {
  // The simulators are the test's own: one that knows no customer, then one that knows c1.
  const fx = usePipelineFixture('retry read cover', { per: 'file', simulator: false });
  let unknowing: Simulator | undefined;
  let platform: Simulator | undefined;
  let pool: pg.Pool | undefined;
  let client: TuzhanClient | undefined;

  afterAll(async () => {
    await client?.close();
    await pool?.end();
    await unknowing?.close();
    await platform?.close();
  });

  it('counts it as maybe sent: the stream later removes it, and the platform holds the table', async () => {
    // c1 fails first: the platform does not know it yet.
    unknowing = await startSimulator({ token: 'test-token', registry: [] });
    fx.running = await startTestBridge({ db: fx.db, slot: SLOT, apiUrl: unknowing.url, sources: SOURCES });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'g0')`);
    await waitForCatchUp(fx.db, SLOT);
    await fx.running.stop();
    fx.running = undefined;
    expect((await statusRows(fx.db, 'profiles')).get(KEY)?.status).toBe('failed');

    // Now it knows c1. Every request about c1, in the order the platform applied them.
    const applied: string[] = [];
    platform = await startSimulator({
      token: 'test-token',
      registry: [{ thirdId: 'c1' }],
      onRows: (op, rows) => {
        for (const r of rows) if (r.thirdId === 'c1') applied.push(`${op} ${r.groups ?? ''}`);
      },
    });

    // The retry, as `retry-failed` runs it with no daemon: its own lanes, client and marks.
    const config = testConfig({ db: fx.db, slot: SLOT, apiUrl: platform.url, sources: SOURCES });
    pool = new pg.Pool({ connectionString: fx.db.url, max: 2 });
    const store = new StatusStore(pool, config.postgres.statusSchema, silentLogger());
    client = new TuzhanClient(config.tuzhan, { logger: silentLogger() });
    const lanes = new GatedLanes(
      new OrderedScheduler({ concurrency: 4, ratePerSecond: 0 }),
      new Delivery({ sender: client, store }),
    );
    const sent = new SentMark(pool, config.postgres.statusSchema, SLOT, (_what, fn) => fn());
    const source = config.sources[0];
    if (!source) throw new Error('no source');
    const retrying = retrySource({ config, pool, store, sent, lanes }, source);

    // The moment: the retry has begun (it waits at c1's lanes) when w1 is committed.
    await lanes.reached;
    expect(applied).toEqual([]);
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'w1' WHERE cust_no = 'c1'`);
    lanes.open();
    const result = await retrying;
    expect(result.outcomes).toEqual({ synced: 1 });
    // It read and sent w1, which the stream has not seen.
    expect(applied).toEqual(['delete g0', 'add w1']);
    store.close();

    // w2, then the daemon: both updates come in one flush, a window g0 -> w1 -> w2.
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'w2' WHERE cust_no = 'c1'`);
    fx.running = await startTestBridge({
      db: fx.db,
      slot: SLOT,
      apiUrl: platform.url,
      sources: SOURCES,
      batching: { debounceMs: 400, maxWaitMs: 5000 },
    });
    await waitForCatchUp(fx.db, SLOT);

    // One flush (the stream never added w1 itself), which removed w1 as a state that may be there.
    const stream = applied.slice(2);
    expect(stream).not.toContain('add w1');
    expect(stream).toEqual(['delete g0,w1', 'add w2']);
    expect(platform.groupsOf('thirdId', 'c1')).toEqual(['w2']);
    expect((await statusRows(fx.db, 'profiles')).get(KEY)).toMatchObject({
      status: 'synced',
      payload: { thirdId: 'c1', groups: 'w2' },
    });
  });
});
