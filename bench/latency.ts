/**
 * Latency: a steady 2,000 rows/s for 30 s (20-row transactions every 10 ms, paced on the clock)
 * with `debounceMs: 50`, `maxWaitMs: 100`. Per row: from the moment its COMMIT returned to the
 * writer until the simulator (in this process) had read the request carrying it. Both clocks are
 * this process's `Date.now()`.
 */
import {
  TABLE_SQL,
  bridgeConfigYaml,
  connect,
  createDatabase,
  percentile,
  spawnBridge,
  type BenchContext,
  type RowsHook,
} from './common.js';

export interface LatencyResult {
  rows: number;
  seconds: number;
  rowsPerSec: number;
  received: number;
  p50LatencyMs: number;
  p90LatencyMs: number;
  p99LatencyMs: number;
  maxLatencyMs: number;
  bridgePeakRssMB: number;
}

export interface LatencyOptions {
  seconds?: number;
  rowsPerSec?: number;
}

const ROWS_PER_TX = 20;

export async function runLatency(
  ctx: BenchContext,
  setHook: (hook: RowsHook | undefined) => void,
  o: LatencyOptions = {},
): Promise<LatencyResult> {
  const seconds = o.seconds ?? 30;
  const rowsPerSec = o.rowsPerSec ?? 2000;
  const txPerSec = rowsPerSec / ROWS_PER_TX;
  const total = Math.round(seconds * rowsPerSec);
  const dbUrl = await createDatabase(ctx, 'bench_latency');
  const db = await connect(dbUrl);
  const committedAt = new Float64Array(total);
  const receivedAt = new Float64Array(total);
  let received = 0;
  setHook((_op, rows, at) => {
    for (const r of rows) {
      const id = r.thirdId;
      if (!id?.startsWith('lat-')) continue;
      const n = Number(id.slice(4));
      if (n < total && receivedAt[n] === 0) {
        receivedAt[n] = at;
        received += 1;
      }
    }
  });
  try {
    await db.query(TABLE_SQL);
    const bridge = spawnBridge(
      ctx,
      'latency',
      bridgeConfigYaml({ dbUrl, apiUrl: ctx.apiUrl, slot: 'bench_latency', debounceMs: 50, maxWaitMs: 100 }),
    );
    await bridge.waitForLog('replication stream started');
    ctx.log(`latency: ${rowsPerSec} rows/s for ${seconds} s`);
    const t0 = Date.now();
    for (let n = 0, tick = 0; n < total; tick++) {
      const due = t0 + (tick * 1000) / txPerSec;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const k = Math.min(ROWS_PER_TX, total - n);
      await db.query(
        `INSERT INTO crm.customer SELECT g, 'lat-' || g, 'vip' FROM generate_series($1::bigint, $2::bigint) g`,
        [n, n + k - 1],
      );
      const at = Date.now();
      for (let i = n; i < n + k; i++) committedAt[i] = at;
      n += k;
    }
    const wrote = (Date.now() - t0) / 1000;
    const deadline = Date.now() + 15_000;
    while (received < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const peak = bridge.peakRssMB();
    await bridge.stop();
    if (received < total) throw new Error(`latency: the simulator received ${received} of ${total} rows`);

    const lat: number[] = [];
    for (let i = 0; i < total; i++) lat.push((receivedAt[i] as number) - (committedAt[i] as number));
    lat.sort((a, b) => a - b);
    return {
      rows: total,
      seconds: wrote,
      rowsPerSec: total / wrote,
      received,
      p50LatencyMs: percentile(lat, 50),
      p90LatencyMs: percentile(lat, 90),
      p99LatencyMs: percentile(lat, 99),
      maxLatencyMs: lat[lat.length - 1] as number,
      bridgePeakRssMB: peak,
    };
  } finally {
    setHook(undefined);
    await db.end();
  }
}
