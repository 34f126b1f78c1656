/**
 * Memory: one transaction of 1,000,000 rows while the simulator answers every request 50 ms late,
 * so the stream outruns the platform and backpressure (`maxBufferedRows`) must hold memory flat.
 * The bridge's RSS is sampled every 100 ms from /proc (and VmHWM read at the end). Proof that it
 * drained: 1,000,000 outcomes in sync_status and the slot confirmed past the transaction.
 */
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
} from './common.js';
import type { Simulator } from '../src/simulator/server.js';

export interface MemoryResult {
  rows: number;
  apiLatencyMs: number;
  idleRssMB: number;
  peakRssMB: number;
  insertSeconds: number;
  drainSeconds: number;
  rowsPerSec: number;
  statusRows: number;
  confirmed: boolean;
}

export async function runMemory(ctx: BenchContext, sim: Simulator, rows = 1_000_000): Promise<MemoryResult> {
  const dbUrl = await createDatabase(ctx, 'bench_memory');
  const db = await connect(dbUrl);
  const apiLatencyMs = 50;
  try {
    await db.query(TABLE_SQL);
    const bridge = spawnBridge(
      ctx,
      'memory',
      bridgeConfigYaml({ dbUrl, apiUrl: ctx.apiUrl, slot: 'bench_memory' }),
    );
    await bridge.waitForLog('replication stream started');
    await new Promise((r) => setTimeout(r, 500));
    const idleRssMB = bridge.peakRssMB();
    sim.setFaults({ latencyMs: apiLatencyMs });
    ctx.log(`memory: one transaction of ${rows} rows, API latency ${apiLatencyMs} ms`);
    const t0 = Date.now();
    await db.query(
      `INSERT INTO crm.customer SELECT g, 'm-' || g, 'vip,north' FROM generate_series(1, $1::bigint) g`,
      [rows],
    );
    const committed = Date.now();
    const target = await insertLsn(db);
    const confirmedAt = await waitConfirmed(db, 'bench_memory', target, 240_000, 100);
    const peakRssMB = bridge.peakRssMB();
    sim.setFaults({ latencyMs: 0 });
    await bridge.stop();
    const status = await countStatus(db);
    const statusRows = Object.values(status).reduce((a, b) => a + b, 0);
    if ((status.synced ?? 0) !== rows) throw new Error(`memory: sync_status ${JSON.stringify(status)}`);
    return {
      rows,
      apiLatencyMs,
      idleRssMB,
      peakRssMB,
      insertSeconds: (committed - t0) / 1000,
      drainSeconds: (confirmedAt - t0) / 1000,
      rowsPerSec: rows / ((confirmedAt - t0) / 1000),
      statusRows,
      confirmed: true,
    };
  } finally {
    sim.setFaults({ latencyMs: 0 });
    await db.end();
  }
}
