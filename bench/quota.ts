/**
 * quota: a platform that takes Q requests a second and answers 429 (Retry-After) past them (the
 * simulator's `rateLimit`), and a backlog of 20,000 rows in 50-row requests (400 requests): how
 * much of the quota the bridge uses, and how many of its requests are refused, with nothing
 * configured (tuzhan.ratePerSecond 0: the bridge learns the quota).
 *
 * - quotaShare: requests the platform took a second, over the quota. The 400 requests are timed
 *   from the first the simulator took to the last, plus one request's share of a second (1/Q): a
 *   client sending exactly Q evenly spaced requests a second scores 1.0.
 * - quotaRefusedShare: requests refused (429) over all the requests the bridge sent.
 * - syncedSeconds: from the INSERT's COMMIT until the slot is confirmed past it (every outcome
 *   stored); a client sending exactly the quota needs requests / Q seconds.
 */
import type { Simulator } from '../src/simulator/server.js';
import {
  TABLE_SQL,
  bridgeConfigYaml,
  connect,
  countStatus,
  createDatabase,
  insertLsn,
  spawnBridge,
  waitConfirmed,
  type BenchContext,
  type RowsHook,
} from './common.js';

export interface QuotaResult {
  /** The platform's quota, requests a second. */
  quota: number;
  rows: number;
  /** Requests the platform took, and refused. */
  requests: number;
  refused: number;
  /** Seconds from the first request taken to the last. */
  seconds: number;
  /** Seconds from the INSERT's COMMIT until the slot is confirmed past it. */
  syncedSeconds: number;
  quotaShare: number;
  quotaRefusedShare: number;
}

const ROWS = 20_000;
const BATCH = 50;

/** One run at a quota of `quota` requests a second. */
export async function runQuota(
  ctx: BenchContext,
  sim: Simulator,
  setHook: (h: RowsHook | undefined) => void,
  quota: number,
): Promise<QuotaResult> {
  const name = `quota_${String(quota).replace('.', '_')}`;
  const dbUrl = await createDatabase(ctx, `bench_${name}`);
  const db = await connect(dbUrl);
  try {
    await db.query(TABLE_SQL);
    const slot = `bench_${name}`;
    const yaml = bridgeConfigYaml({ dbUrl, apiUrl: ctx.apiUrl, slot, maxBatchSize: BATCH });
    const bridge = spawnBridge(ctx, name, yaml);
    await bridge.waitForLog('replication stream started', 60_000);
    sim.setFaults({ rateLimit: quota });
    const taken: number[] = [];
    setHook((_op, _rows, at) => void taken.push(at));
    const before = sim.stats();
    ctx.log(`quota: ${ROWS} rows in ${BATCH}-row requests against a quota of ${quota} a second`);
    await db.query(
      `INSERT INTO crm.customer (id, third_id, groups) SELECT g, 'q-' || g, 'vip' FROM generate_series(1, $1::bigint) g`,
      [ROWS],
    );
    const committedAt = Date.now();
    const target = await insertLsn(db);
    const confirmedAt = await waitConfirmed(db, slot, target, ((ROWS / BATCH / quota) * 3 + 60) * 1000, 100);
    setHook(undefined);
    const after = sim.stats();
    await bridge.stop();
    sim.setFaults({ rateLimit: 0 });
    const status = await countStatus(db);
    if ((status.synced ?? 0) !== ROWS) throw new Error(`quota: sync_status ${JSON.stringify(status)}`);
    const requests = after.byOptType.add.requests - before.byOptType.add.requests;
    const refused = after.quotaRefused - before.quotaRefused;
    const seconds = ((taken[taken.length - 1] as number) - (taken[0] as number)) / 1000;
    return {
      quota,
      rows: ROWS,
      requests,
      refused,
      seconds,
      syncedSeconds: (confirmedAt - committedAt) / 1000,
      quotaShare: requests / (seconds + 1 / quota) / quota,
      quotaRefusedShare: refused / (requests + refused),
    };
  } finally {
    await db.end();
  }
}
