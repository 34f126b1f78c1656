/**
 * Snapshot: the bridge's first start on a table of 500,000 existing rows creates the slot with an
 * exported snapshot and syncs every row. Rate = snapshot_rows / (snapshot_done_at -
 * snapshot_started_at) from `<statusSchema>.bridge_state` (server clock; from the slot's creation
 * until every snapshot outcome is stored).
 */
import {
  TABLE_SQL,
  bridgeConfigYaml,
  connect,
  countStatus,
  cpuSplit,
  cpuTimes,
  createDatabase,
  perRowMicros,
  spawnBridge,
  waitSnapshotDone,
  type BenchContext,
  type CpuSplit,
} from './common.js';
import { perRowRoles, startRoleMeter, type PgCpuByRole } from './pg-roles.js';

export interface SnapshotResult {
  rows: number;
  seconds: number;
  snapshotRowsPerSec: number;
  wallSecondsFromSpawn: number;
  bridgePeakRssMB: number;
  statusRows: number;
  /** CPU microseconds per row from the bridge's start until the snapshot was done, by process group. */
  cpuUsPerRow: CpuSplit;
  /** PostgreSQL's CPU per row over the same span, by process role (bench/pg-roles.ts). */
  pgCpuByRole: PgCpuByRole;
}

export async function runSnapshot(ctx: BenchContext, rows = 500_000): Promise<SnapshotResult> {
  const dbUrl = await createDatabase(ctx, 'bench_snapshot');
  const db = await connect(dbUrl);
  try {
    await db.query(TABLE_SQL);
    await db.query(
      `INSERT INTO crm.customer SELECT g, 's-' || g, 'vip,north' FROM generate_series(1, $1::bigint) g`,
      [rows],
    );
    await db.query('VACUUM ANALYZE crm.customer');
    ctx.log(`snapshot: first start on ${rows} existing rows`);
    const cpuBefore = cpuTimes();
    const roles = await startRoleMeter(db, cpuBefore);
    const spawned = Date.now();
    const bridge = spawnBridge(
      ctx,
      'snapshot',
      bridgeConfigYaml({ dbUrl, apiUrl: ctx.apiUrl, slot: 'bench_snapshot' }),
    );
    const done = await waitSnapshotDone(db, 'bench_snapshot', 240_000);
    const cpuAfter = cpuTimes();
    const cpu = cpuSplit(cpuBefore, cpuAfter, bridge.pid);
    const byRole = await roles(cpuAfter);
    const wall = (Date.now() - spawned) / 1000;
    const peak = bridge.peakRssMB();
    await bridge.waitForLog('replication stream started');
    await bridge.stop();
    const status = await countStatus(db);
    const statusRows = Object.values(status).reduce((a, b) => a + b, 0);
    if (done.rows !== rows || (status.synced ?? 0) !== rows)
      throw new Error(`snapshot: ${done.rows} rows read, sync_status ${JSON.stringify(status)}`);
    return {
      rows,
      seconds: done.seconds,
      snapshotRowsPerSec: rows / done.seconds,
      wallSecondsFromSpawn: wall,
      bridgePeakRssMB: peak,
      statusRows,
      cpuUsPerRow: perRowMicros(cpu, rows),
      pgCpuByRole: perRowRoles(byRole, rows),
    };
  } finally {
    await db.end();
  }
}
