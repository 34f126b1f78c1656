/**
 * A CRM's steady state: rows the bridge already synced, then changed again.
 *
 * - noise: N synced rows, then one UPDATE of N rows in columns the source does not map (last login,
 *   a visit counter). Measured: requests the simulator received, rows inserted or updated in the
 *   status table (pg_stat_user_tables), the bridge's CPU per updated row.
 * - updates: N synced rows whose groups then change, in no particular order (transactions of 100
 *   rows picked at random, written while the bridge is stopped, then streamed as a backlog): every
 *   status write rewrites an existing row.
 *   Measured: the source transactions' WAL per row (for scale), the WAL written while the bridge
 *   streamed them (its status writes, sync_batch and sent positions) per row, and CPU per row.
 *
 * Both start with the bridge's first start on N existing rows (a snapshot) after a CHECKPOINT, so
 * no checkpoint falls inside the measurement (30 min apart here) and no page is written twice in
 * full: the WAL figures are the records themselves. After each checkpoint, the first write of each
 * page adds a full-page image on top, for the source table as for the status table. Autovacuum is
 * off on both tables (it would come at a random moment of the few seconds measured, if at all).
 */
import type pg from 'pg';
import type { Simulator } from '../src/simulator/server.js';
import { quoteIdent } from '../src/util/sql.js';
import {
  STATUS_SCHEMA,
  bridgeConfigYaml,
  connect,
  countStatus,
  cpuSplit,
  cpuTimes,
  createDatabase,
  insertLsn,
  perRowMicros,
  spawnBridge,
  waitConfirmed,
  waitSnapshotDone,
  type BenchContext,
  type BridgeProcess,
  type CpuSplit,
} from './common.js';
import { perRowRoles, startRoleMeter, type PgCpuByRole } from './pg-roles.js';

/** The customer table with columns a CRM updates for reasons of its own. */
const STEADY_TABLE_SQL = `
  CREATE SCHEMA crm;
  CREATE TABLE crm.customer (id bigint PRIMARY KEY, third_id text NOT NULL, groups text,
                             last_seen timestamptz, visits int NOT NULL DEFAULT 0)
    WITH (autovacuum_enabled = false);
  ALTER TABLE crm.customer REPLICA IDENTITY FULL;`;

export interface NoiseResult {
  rows: number;
  /** batchAdd requests the simulator received for the N updates. */
  requests: number;
  /** Rows inserted or updated in the status table (n_tup_ins + n_tup_upd). */
  statusWrites: number;
  /** Seconds from the UPDATE's start until the slot was confirmed past it. */
  seconds: number;
  cpuUsPerRow: CpuSplit;
  /** The same with one decimal: a no-op costs the bridge a few microseconds. */
  bridgeCpuUsPerRow: number;
}

export interface UpdatesResult {
  rows: number;
  /** WAL of the source transactions (the UPDATEs of the groups), per row. */
  sourceWalBytesPerRow: number;
  /** WAL written while the bridge streamed them (status writes, sync_batch, sent positions), per row. */
  statusWalBytesPerRow: number;
  /** Of the status table's updates, the share that were HOT (no index entry written). */
  hotShare: number;
  /** The bridge's WAL per row by record type (pg_walinspect, where the server has it). */
  walPerRowByRecord?: Record<string, number>;
  seconds: number;
  rowsPerSec: number;
  cpuUsPerRow: CpuSplit;
  /** PostgreSQL's CPU per row while the bridge streamed them, by process role (bench/pg-roles.ts). */
  pgCpuByRole: PgCpuByRole;
}

/** A database with N synced rows: the bridge's first start synced them; it is stopped again. */
async function syncedRows(
  ctx: BenchContext,
  name: string,
  rows: number,
): Promise<{ db: pg.Client; yaml: string; slot: string }> {
  const dbUrl = await createDatabase(ctx, `bench_${name}`);
  const db = await connect(dbUrl);
  await db.query(STEADY_TABLE_SQL);
  await db.query(
    `INSERT INTO crm.customer (id, third_id, groups) SELECT g, 'c-' || g, 'vip,north' FROM generate_series(1, $1::bigint) g`,
    [rows],
  );
  await db.query('VACUUM ANALYZE crm.customer');
  await db.query('CHECKPOINT');
  const slot = `bench_${name}`;
  const yaml = bridgeConfigYaml({ dbUrl, apiUrl: ctx.apiUrl, slot });
  ctx.log(`${name}: first start on ${rows} existing rows`);
  const first = spawnBridge(ctx, `${name}-first`, yaml);
  await waitSnapshotDone(db, slot, 240_000);
  await first.waitForLog('replication stream started');
  await first.stop();
  const status = await countStatus(db);
  if ((status.synced ?? 0) !== rows) throw new Error(`${name}: sync_status ${JSON.stringify(status)}`);
  // No autovacuum inside the few seconds measured (it would come at a random moment, if at all):
  // the source table's and the status table's WAL are then the writes' own.
  await db.query(`ALTER TABLE ${quoteIdent(STATUS_SCHEMA)}.sync_row SET (autovacuum_enabled = false)`);
  return { db, yaml, slot };
}

/** Rows inserted, updated and HOT-updated in the status table so far (flushed by backends that ended). */
async function statusTableWrites(db: pg.Client): Promise<{ ins: number; upd: number; hot: number }> {
  const r = await db.query<{ ins: number; upd: number; hot: number }>(
    `SELECT coalesce(sum(n_tup_ins), 0)::int AS ins, coalesce(sum(n_tup_upd), 0)::int AS upd,
            coalesce(sum(n_tup_hot_upd), 0)::int AS hot
       FROM pg_stat_user_tables WHERE schemaname = $1 AND relname IN ('sync_row', 'sync_status')`,
    [STATUS_SCHEMA],
  );
  return r.rows[0] ?? { ins: 0, upd: 0, hot: 0 };
}

/** 1..n in an order that looks random and is the same on every run. */
function shuffled(n: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i + 1);
  let seed = 20;
  for (let i = n - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j] as number, out[i] as number];
  }
  return out;
}

function walBytes(from: string, to: string): number {
  const n = (lsn: string): number => {
    const [hi, lo] = lsn.split('/') as [string, string];
    return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
  };
  return n(to) - n(from);
}

async function restart(ctx: BenchContext, name: string, yaml: string): Promise<BridgeProcess> {
  const bridge = spawnBridge(ctx, name, yaml);
  await bridge.waitForLog('replication stream started');
  return bridge;
}

export async function runNoise(ctx: BenchContext, sim: Simulator, rows = 100_000): Promise<NoiseResult> {
  const { db, yaml, slot } = await syncedRows(ctx, 'noise', rows);
  try {
    // Backends flush their table statistics when they end: read them with the bridge stopped.
    const writes0 = await statusTableWrites(db);
    const bridge = await restart(ctx, 'noise', yaml);
    const requests0 = sim.stats().requests;
    ctx.log(`noise: one UPDATE of ${rows} rows in unmapped columns`);
    const cpu0 = cpuTimes();
    const t0 = Date.now();
    await db.query(`UPDATE crm.customer SET last_seen = now(), visits = visits + 1`);
    const target = await insertLsn(db);
    const confirmedAt = await waitConfirmed(db, slot, target, 240_000);
    const cpu = cpuSplit(cpu0, cpuTimes(), bridge.pid);
    const requests = sim.stats().requests - requests0;
    await bridge.stop();
    const writes1 = await statusTableWrites(db);
    return {
      rows,
      requests,
      statusWrites: writes1.ins + writes1.upd - writes0.ins - writes0.upd,
      seconds: (confirmedAt - t0) / 1000,
      cpuUsPerRow: perRowMicros(cpu, rows),
      bridgeCpuUsPerRow: Math.round((cpu.bridge * 1e7) / rows) / 10,
    };
  } finally {
    await db.end();
  }
}

export async function runUpdates(ctx: BenchContext, rows = 100_000): Promise<UpdatesResult> {
  const { db, yaml, slot } = await syncedRows(ctx, 'updates', rows);
  try {
    const writes0 = await statusTableWrites(db);
    ctx.log(`updates: the groups of ${rows} synced rows change, 100 random rows a transaction`);
    const order = shuffled(rows);
    const wal0 = await insertLsn(db);
    for (let from = 0; from < rows; from += 100) {
      await db.query(`UPDATE crm.customer SET groups = 'vip,south' WHERE id = ANY($1::bigint[])`, [
        order.slice(from, from + 100),
      ]);
    }
    const wal1 = await insertLsn(db);
    ctx.log('updates: the bridge streams them');
    const bridge = spawnBridge(ctx, 'updates', yaml);
    const streaming = await bridge.waitForLog('replication stream started');
    const cpu0 = cpuTimes();
    const roles = await startRoleMeter(db, cpu0);
    const confirmedAt = await waitConfirmed(db, slot, wal1, 240_000);
    const cpu1 = cpuTimes();
    const cpu = cpuSplit(cpu0, cpu1, bridge.pid);
    const byRole = await roles(cpu1);
    const wal2 = await insertLsn(db);
    await bridge.stop();
    const writes1 = await statusTableWrites(db);
    const status = await countStatus(db);
    if ((status.synced ?? 0) !== rows) throw new Error(`updates: sync_status ${JSON.stringify(status)}`);
    const upd = writes1.upd - writes0.upd;
    const groups = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${quoteIdent(STATUS_SCHEMA)}.sync_status WHERE payload->>'groups' = 'vip,south'`,
    );
    if (groups.rows[0]?.n !== rows) throw new Error(`updates: ${groups.rows[0]?.n} payloads updated`);
    const seconds = (confirmedAt - streaming) / 1000;
    const walPerRowByRecord = await walByRecord(db, wal1, wal2, rows);
    return {
      rows,
      sourceWalBytesPerRow: Math.round(walBytes(wal0, wal1) / rows),
      statusWalBytesPerRow: Math.round(walBytes(wal1, wal2) / rows),
      hotShare: upd ? Math.round(((writes1.hot - writes0.hot) / upd) * 100) / 100 : 0,
      seconds,
      rowsPerSec: rows / seconds,
      cpuUsPerRow: perRowMicros(cpu, rows),
      pgCpuByRole: perRowRoles(byRole, rows),
      ...(walPerRowByRecord ? { walPerRowByRecord } : {}),
    };
  } finally {
    await db.end();
  }
}

/** WAL bytes per row by record type between two positions, where pg_walinspect (15+) is installed. */
async function walByRecord(
  db: pg.Client,
  from: string,
  to: string,
  rows: number,
): Promise<Record<string, number> | undefined> {
  try {
    await db.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
    const r = await db.query<{ t: string; b: string }>(
      `SELECT "resource_manager/record_type" AS t, combined_size::text AS b
         FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true) WHERE count > 0 ORDER BY combined_size DESC`,
      [from, to],
    );
    return Object.fromEntries(r.rows.map((x) => [x.t, Math.round((Number(x.b) / rows) * 10) / 10]));
  } catch {
    return undefined; // not installed here: the total stands alone
  }
}
