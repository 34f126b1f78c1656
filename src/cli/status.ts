/**
 * `tuzhan-cdc status`: what an operator asks first. The `sync_summary` view per source and
 * status, the slot (active or not, its confirmed position and the WAL it holds back), the backlog
 * age, and the newest failures. Reads only.
 *
 * Lag has two measures. Bytes: `pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)`, the
 * WAL the slot pins; authoritative, and it also counts changes the bridge has read but not yet
 * sent. Age: from the oldest change that has an unfinished outcome in sync_status (`retrying` or
 * `accepted`), `now() - committed_at`; changes still buffered in a running bridge have no row yet,
 * so the age is a lower bound (the daemon's `tuzhan_cdc_slot_lag_seconds` metric is exact). Without
 * such rows the age is 0.
 */
import type { Command } from 'commander';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { readSlot } from '../source/slot.js';
import {
  readBacklog,
  readFailures,
  readRecentBackfills,
  readSnapshot,
  readSummary,
  statusSchemaExists,
} from '../status/reads.js';
import { formatLsn } from '../util/lsn.js';
import { quoteIdent } from '../util/sql.js';
import { loadConfigFromOptions, UsageError, type GlobalOptions } from './common.js';
import { formatBytes, formatCount, formatDuration, formatTable } from '../util/format.js';
import { connectDatabase, databaseLabel, printJson } from './output.js';
import { formatLearnedRate, readLearnedRate, type StatusRate } from './status-rate.js';

export interface SlotStatus {
  name: string;
  exists: boolean;
  active?: boolean;
  activePid?: number | null;
  database?: string;
  plugin?: string;
  confirmedFlushLsn?: string | null;
  /** WAL bytes between the server's current position and the slot's confirmed position. */
  lagBytes?: number | null;
  /** `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+). */
  walStatus?: string | null;
  /** Bytes the server may still write before the slot is in danger of being invalidated (null: no limit). */
  safeWalSize?: number | null;
}

export interface StatusReport {
  database: string;
  slot: SlotStatus;
  statusSchema: { name: string; exists: boolean };
  summary: Array<{
    source: string;
    status: string;
    rows: number;
    oldestCommittedAt: string | null;
    lastSyncedAt: string | null;
  }>;
  /** Rows retrying or accepted: sent or being sent, without a final outcome. */
  backlog: { rows: number; oldestCommittedAt: string | null; ageSeconds: number };
  /** The slot's snapshot: null before the first start. */
  snapshot: { done: boolean; rows: number; reason: string | null } | null;
  /** Running backfills first, then the latest finished ones. */
  backfills: Array<{
    id: string;
    source: string;
    reason: string;
    status: string;
    done: number;
    total: number | null;
    error: string | null;
  }>;
  /** What the running bridge learned of the platform's quota (asked of its HTTP endpoint). */
  requestRate?: StatusRate;
  failures: {
    total: number;
    newest: Array<{
      source: string;
      rowKey: unknown;
      op: string;
      error: string | null;
      attempts: number;
      syncedAt: string;
    }>;
  };
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

async function slotStatus(db: pg.Client, slot: string): Promise<SlotStatus> {
  const s = await readSlot(db, slot);
  if (!s) return { name: slot, exists: false };
  return {
    name: slot,
    exists: true,
    active: s.active,
    activePid: s.activePid,
    database: s.database,
    plugin: s.plugin,
    confirmedFlushLsn: s.confirmedFlushLsn === null ? null : formatLsn(s.confirmedFlushLsn),
    lagBytes: s.lagBytes,
    walStatus: s.walStatus,
    safeWalSize: s.safeWalSize,
  };
}

/** Reads the whole status report. */
export async function readStatus(
  db: pg.Client,
  config: Config,
  options: { failures: number; source?: string },
): Promise<StatusReport> {
  const schemaName = config.postgres.statusSchema;
  const report: StatusReport = {
    database: databaseLabel(config),
    slot: await slotStatus(db, config.postgres.slot),
    statusSchema: { name: schemaName, exists: false },
    summary: [],
    backlog: { rows: 0, oldestCommittedAt: null, ageSeconds: 0 },
    snapshot: null,
    backfills: [],
    failures: { total: 0, newest: [] },
  };
  if (!(await statusSchemaExists(db, schemaName))) return report;
  report.statusSchema.exists = true;
  const source = options.source ?? null;
  report.summary = (await readSummary(db, schemaName, source)).map((r) => ({
    ...r,
    oldestCommittedAt: iso(r.oldestCommittedAt),
    lastSyncedAt: iso(r.lastSyncedAt),
  }));
  report.failures.total = report.summary.filter((s) => s.status === 'failed').reduce((n, s) => n + s.rows, 0);
  const backlog = await readBacklog(db, schemaName, source);
  report.backlog = { ...backlog, oldestCommittedAt: iso(backlog.oldestCommittedAt) };
  if (options.failures > 0) {
    report.failures.newest = (await readFailures(db, schemaName, source, options.failures)).map((f) => ({
      ...f,
      syncedAt: f.syncedAt.toISOString(),
    }));
  }
  report.snapshot = await readSnapshot(db, schemaName, config.postgres.slot);
  const backfills = await readRecentBackfills(db, schemaName, config.postgres.slot, 5);
  report.backfills = backfills.map((b) => ({
    id: b.id,
    source: b.source,
    reason: b.reason,
    status: b.status,
    done: b.done,
    total: b.total,
    error: b.error,
  }));
  return report;
}

/** What the slot's WAL headroom means, with the remedy. */
function walLine(s: SlotStatus): string | undefined {
  if (s.walStatus === 'lost')
    return 'wal       LOST: the server removed WAL this slot needs; run `tuzhan-cdc run --resync`';
  const room =
    s.safeWalSize === null || s.safeWalSize === undefined
      ? 'no max_slot_wal_keep_size (no limit)'
      : `${formatBytes(s.safeWalSize)} before the server invalidates the slot`;
  const risk =
    s.walStatus === 'unreserved' || s.walStatus === 'extended'
      ? `; wal_status ${s.walStatus}: keep the bridge streaming, or raise max_slot_wal_keep_size`
      : '';
  return `wal       headroom ${room}${risk}`;
}

/** The report as text for a terminal. */
export function formatStatus(r: StatusReport): string {
  const out: string[] = [`database  ${r.database}`];
  const s = r.slot;
  if (!s.exists) {
    out.push(`slot      ${s.name}: does not exist (the bridge creates it at its first start)`);
  } else {
    const state = s.active
      ? `active (pid ${s.activePid ?? '?'})`
      : 'INACTIVE (no bridge is streaming from it)';
    const lag = s.lagBytes === null || s.lagBytes === undefined ? 'unknown' : formatBytes(s.lagBytes);
    const wal = s.walStatus && s.walStatus !== 'reserved' ? `, wal_status ${s.walStatus}` : '';
    out.push(
      `slot      ${s.name}: ${state}, confirmed ${s.confirmedFlushLsn ?? 'none'}, lag ${lag}${wal}` +
        (s.database ? `, database ${s.database}` : ''),
    );
    const w = walLine(s);
    if (w) out.push(w);
  }
  if (!r.statusSchema.exists) {
    out.push(
      `status    schema ${quoteIdent(r.statusSchema.name)} does not exist yet (the bridge has not run)`,
    );
    return `${out.join('\n')}\n`;
  }
  if (r.snapshot && !r.snapshot.done)
    out.push(
      `snapshot  in progress (${r.snapshot.reason ?? 'first start'}): ${formatCount(r.snapshot.rows)} rows so far`,
    );
  for (const b of r.backfills) {
    const total = b.total === null ? '' : ` of ~${formatCount(Math.max(b.total, b.done))}`;
    out.push(
      `backfill  #${b.id} ${b.source} (${b.reason}): ${b.status}, ${formatCount(b.done)}${total} rows${b.error ? `: ${b.error}` : ''}`,
    );
  }
  if (r.requestRate) out.push(formatLearnedRate(r.requestRate));
  out.push(
    r.backlog.rows === 0
      ? 'backlog   none (no row retrying or awaiting the platform)'
      : `backlog   ${r.backlog.rows} rows retrying or accepted, oldest committed ${formatDuration(r.backlog.ageSeconds)} ago`,
  );
  out.push('');
  if (r.summary.length === 0) {
    out.push('no outcomes recorded yet');
  } else {
    out.push(
      formatTable(
        ['source', 'status', 'rows', 'oldest unsynced change', 'last outcome'],
        r.summary.map((x) => [
          x.source,
          x.status,
          String(x.rows),
          x.oldestCommittedAt ?? '',
          x.lastSyncedAt ?? '',
        ]),
      ).trimEnd(),
    );
  }
  if (r.failures.total > 0) {
    out.push(
      '',
      `failed rows: ${r.failures.total}${r.failures.newest.length ? `; newest ${r.failures.newest.length}:` : ''}`,
    );
    if (r.failures.newest.length) {
      out.push(
        formatTable(
          ['source', 'row_key', 'op', 'attempts', 'at', 'error'],
          r.failures.newest.map((f) => [
            f.source,
            JSON.stringify(f.rowKey),
            f.op,
            String(f.attempts),
            f.syncedAt,
            f.error ?? '',
          ]),
        ).trimEnd(),
      );
      out.push('(tuzhan-cdc retry-failed sends them again)');
    }
  }
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('show sync_summary per source and status, slot lag (bytes and age) and the newest failures')
    .option('--source <name>', 'only this source')
    .option('--failures <n>', 'how many of the newest failures to list', '5')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
Lag: bytes are the WAL the slot holds back (pg_wal_lsn_diff(pg_current_wal_lsn(),
confirmed_flush_lsn)); the age is that of the oldest change still retrying or awaiting the
platform in sync_status (changes buffered in a running bridge have no row yet: a lower bound).

Examples:
  tuzhan-cdc status
  tuzhan-cdc status --source memberships --failures 20
  tuzhan-cdc status --json | jq .slot.lagBytes`,
    )
    .action(async (opts: { source?: string; failures: string; json?: boolean }, cmd: Command) => {
      const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>());
      const failures = Number(opts.failures);
      if (!Number.isInteger(failures) || failures < 0) {
        throw new UsageError(`--failures must be a whole number >= 0, got '${opts.failures}'`);
      }
      if (opts.source !== undefined && !config.sources.some((s) => s.name === opts.source)) {
        throw new UsageError(
          `unknown source '${opts.source}' (sources: ${config.sources.map((s) => s.name).join(', ')})`,
        );
      }
      const db = await connectDatabase(config, 'tuzhan-cdc status');
      try {
        const [report, requestRate] = await Promise.all([
          readStatus(db, config, { failures, source: opts.source }),
          readLearnedRate(config),
        ]);
        report.requestRate = requestRate;
        if (opts.json) printJson(report);
        else process.stdout.write(formatStatus(report));
      } finally {
        await db.end().catch(() => {});
      }
    });
}
