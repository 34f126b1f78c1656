/**
 * Throughput: a backlog after an outage. The bridge's first start creates its slot (snapshot of an
 * empty table) and stops; a second slot is created for the baseline; then 200,000 rows are
 * inserted in 2,000 transactions of 100. The baseline (a bare pg-logical-replication consumer with
 * manual acknowledgement, doing nothing else) drains its slot; then the bridge restarts and
 * streams the same backlog end to end (API answered, outcomes stored, slot confirmed). The two
 * never run at once.
 */
import type pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import { parseLsn } from '../src/util/lsn.js';
import {
  TABLE_SQL,
  bridgeConfigYaml,
  connect,
  countStatus,
  cpuSplit,
  cpuTimes,
  createDatabase,
  perRowMicros,
  insertLsn,
  spawnBridge,
  statusTableBytes,
  waitConfirmed,
  type BenchContext,
  type CpuSplit,
} from './common.js';
import {
  backends,
  perRowRoles,
  pgRoleSplit,
  postmasterPid,
  slotDecoded,
  type PgCpuByRole,
  type SlotDecoded,
} from './pg-roles.js';

export interface ThroughputResult {
  rows: number;
  writeSeconds: number;
  baselineSeconds: number;
  baselineRowsPerSec: number;
  bridgeStartupSeconds: number;
  e2eSeconds: number;
  e2eRowsPerSec: number;
  ratio: number;
  bridgePeakRssMB: number;
  statusRows: number;
  /** CPU microseconds per row while the baseline drained, by process group. */
  baselineCpuUsPerRow: CpuSplit;
  /** CPU microseconds per row while the bridge streamed the backlog, by process group. */
  e2eCpuUsPerRow: CpuSplit;
  /** Size of the status table with its indexes after the backlog, per source row. */
  statusBytesPerRow: number;
  /**
   * The bridge's CPU over the bare consumer's (the harness during the baseline), and PostgreSQL's
   * during the backlog over its own during the baseline: from the CPU seconds, not from the per-row
   * figures above, whose whole microseconds are too coarse for a divisor of 2 or 3.
   */
  bridgeCpuRatio: number;
  pgCpuRatio: number;
  /**
   * The bench server's CPU per row by process role (walsender, the bridge's backends, background),
   * during the baseline drain and the backlog; other servers' processes apart (`otherServers`).
   */
  pgCpuByRole: { baseline: PgCpuByRole; backlog: PgCpuByRole };
  /** `pgCpuRatio` counting the bench server's processes only (from the CPU seconds of the roles). */
  pgServerCpuRatio: number;
  /**
   * What each walsender decoded for its output plugin (pg_stat_replication_slots): the bare drain's
   * slot, and the bridge's during the backlog. The bridge's also holds its own status writes
   * unless they are filtered before decoding (their changes are queued, then dropped at output).
   */
  slotDecoded: { baseline: SlotDecoded; backlog: SlotDecoded };
}

const TXS = 2000;
const ROWS_PER_TX = 100;
const SLOT = 'bench_e2e';
const BASE_SLOT = 'bench_base';

/**
 * Drains `slot` until a commit ends at or past `target`, acknowledging every commit (manual ack,
 * the library's timer off). Returns the inserts seen and the seconds from subscribe to the end.
 */
export async function drainBaseline(
  dbUrl: string,
  slot: string,
  publication: string,
  target: bigint,
  atEnd: () => void = () => {},
  plugin: PgoutputPlugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] }),
): Promise<{ rows: number; seconds: number }> {
  const service = new LogicalReplicationService(
    { connectionString: dbUrl },
    { acknowledge: { auto: false, timeoutSeconds: 0 } },
  );
  let rows = 0;
  const started = Date.now();
  let ended = 0;
  const done = new Promise<void>((resolve, reject) => {
    service.on('error', reject);
    service.on('data', (lsn: string, msg: { tag: string; commitEndLsn?: string }) => {
      if (msg.tag === 'insert') rows += 1;
      else if (msg.tag === 'commit') {
        void service.acknowledge(lsn).catch(() => {});
        if (msg.commitEndLsn && parseLsn(msg.commitEndLsn) >= target && !ended) {
          ended = Date.now();
          atEnd(); // before stopping: the walsender's CPU is counted while it lives
          resolve();
        }
      }
    });
  });
  const sub = service.subscribe(plugin, slot, '0/0').catch(() => {});
  await done;
  await service.stop();
  await sub;
  return { rows, seconds: (ended - started) / 1000 };
}

/**
 * Drops a slot once its walsender has let go of it: the server ends the walsender a moment after
 * the client disconnects, and dropping an active slot fails. Returns what it decoded.
 */
async function dropWhenReleased(db: pg.Client, slot: string): Promise<SlotDecoded> {
  await waitReleased(db, slot);
  const decoded = await slotDecoded(db, slot);
  await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
  return decoded;
}

/** Waits (up to `timeoutMs`) until no walsender holds the slot: it has reported its statistics. */
async function waitReleased(db: pg.Client, slot: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await db.query<{ active: boolean }>(
      'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    if (!r.rows[0]?.active || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function runThroughput(ctx: BenchContext): Promise<ThroughputResult> {
  const dbUrl = await createDatabase(ctx, 'bench_throughput');
  const db = await connect(dbUrl);
  try {
    await db.query(TABLE_SQL);
    const yaml = bridgeConfigYaml({ dbUrl, apiUrl: ctx.apiUrl, slot: SLOT });

    ctx.log('throughput: first start on the empty table (creates the slot), then stop');
    const first = spawnBridge(ctx, 'throughput-first', yaml);
    await first.waitForLog('replication stream started');
    await first.stop();
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [BASE_SLOT]);

    ctx.log(`throughput: writing ${TXS} transactions of ${ROWS_PER_TX} rows`);
    const w0 = Date.now();
    for (let t = 0; t < TXS; t++) {
      const from = t * ROWS_PER_TX + 1;
      await db.query(
        `INSERT INTO crm.customer SELECT g, 'c-' || g, 'vip,north' FROM generate_series($1::bigint, $2::bigint) g`,
        [from, from + ROWS_PER_TX - 1],
      );
    }
    const writeSeconds = (Date.now() - w0) / 1000;
    const target = await insertLsn(db);
    const rows = TXS * ROWS_PER_TX;

    ctx.log('throughput: baseline consumer draining its own slot');
    const baseCpu = cpuTimes();
    const postmaster = await postmasterPid(db, baseCpu);
    const baseBackends = await backends(db);
    let baseCpuEnd = baseCpu;
    const base = await drainBaseline(dbUrl, BASE_SLOT, SLOT, parseLsn(target), () => {
      baseCpuEnd = cpuTimes();
    });
    const baselineCpu = cpuSplit(baseCpu, baseCpuEnd, -1);
    const baselineRoles = pgRoleSplit(baseCpu, baseCpuEnd, postmaster, await backends(db, baseBackends));
    if (base.rows !== rows) throw new Error(`baseline saw ${base.rows} inserts, expected ${rows}`);
    const baseDecoded = await dropWhenReleased(db, BASE_SLOT);

    ctx.log('throughput: bridge restarts and streams the backlog');
    const decoded0 = await slotDecoded(db, SLOT);
    const spawned = Date.now();
    const bridge = spawnBridge(ctx, 'throughput', yaml);
    const streaming = await bridge.waitForLog('replication stream started');
    const streamCpu = cpuTimes();
    const streamBackends = await backends(db);
    const confirmedAt = await waitConfirmed(db, SLOT, target, 180_000);
    const streamCpuEnd = cpuTimes();
    const e2eCpu = cpuSplit(streamCpu, streamCpuEnd, bridge.pid);
    // Read while the bridge still holds its connections: their application names tell them apart.
    const backlogRoles = pgRoleSplit(streamCpu, streamCpuEnd, postmaster, await backends(db, streamBackends));
    const peak = bridge.peakRssMB();
    await bridge.stop();
    await waitReleased(db, SLOT);
    const decoded1 = await slotDecoded(db, SLOT);
    const status = await countStatus(db);
    const statusRows = Object.values(status).reduce((a, b) => a + b, 0);
    if ((status.synced ?? 0) !== rows) throw new Error(`sync_status: ${JSON.stringify(status)}`);
    const statusBytes = await statusTableBytes(db);

    const e2eSeconds = (confirmedAt - streaming) / 1000;
    const e2eRowsPerSec = rows / e2eSeconds;
    const baselineRowsPerSec = rows / base.seconds;
    return {
      rows,
      writeSeconds,
      baselineSeconds: base.seconds,
      baselineRowsPerSec,
      bridgeStartupSeconds: (streaming - spawned) / 1000,
      e2eSeconds,
      e2eRowsPerSec,
      ratio: e2eRowsPerSec / baselineRowsPerSec,
      bridgePeakRssMB: peak,
      statusRows,
      baselineCpuUsPerRow: perRowMicros(baselineCpu, rows),
      e2eCpuUsPerRow: perRowMicros(e2eCpu, rows),
      statusBytesPerRow: statusBytes / statusRows,
      bridgeCpuRatio: e2eCpu.bridge / baselineCpu.harness,
      pgCpuRatio: e2eCpu.postgres / baselineCpu.postgres,
      pgCpuByRole: { baseline: perRowRoles(baselineRoles, rows), backlog: perRowRoles(backlogRoles, rows) },
      pgServerCpuRatio: backlogRoles.server / baselineRoles.server,
      slotDecoded: {
        baseline: baseDecoded,
        backlog: {
          txns: decoded1.txns - decoded0.txns,
          bytes: decoded1.bytes - decoded0.bytes,
          spillBytes: decoded1.spillBytes - decoded0.spillBytes,
        },
      },
    };
  } finally {
    await db.end();
  }
}
