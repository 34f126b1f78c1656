/**
 * The status schema's read side: the one module through which `tuzhan-cdc status`, `backfill`,
 * `retry-failed`, `held`, the demo, the status gauges and the web console read the outcomes,
 * failures, held rows, snapshot and backfills, as typed values. The statements are sql.ts's and
 * held.ts's; the console's own lookups (on sync_row's indexes) are console-sql.ts's, read by
 * console-reads.ts (the overview) and console-search.ts (searches and failure lists), re-exported
 * here. The pipeline's reads on its way (held keys, stale keys) stay with their stores.
 */
import type pg from 'pg';
import { HeldStore, heldSql, type HeldGroup } from './held.js';
import { statusSql } from './sql.js';

export * from './console-reads.js';
export * from './console-search.js';
export { SEARCHED_IDENTITIES, type SearchedIdentity } from './console-sql.js';
export { COUNTED_STATUSES, readStatusCounts, type CountedStatus } from './status-counts.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Whether the status schema exists yet (the bridge creates it at its first start). */
export async function statusSchemaExists(db: Queryable, schema: string): Promise<boolean> {
  const res = await db.query<{ ok: boolean }>(statusSql(schema).exists, [schema]);
  return res.rows[0]?.ok === true;
}

/** What is held for a person, per source and reason, oldest first; none before migration 010. */
export async function readHeld(db: Queryable, schema: string, source: string | null): Promise<HeldGroup[]> {
  const ready = await db.query<{ ok: boolean }>(heldSql(schema).exists, [schema]);
  if (!ready.rows[0]?.ok) return [];
  return new HeldStore(db, schema).summary(source ?? undefined);
}

/** One row of the sync_summary view. */
export interface SummaryRow {
  source: string;
  status: string;
  rows: number;
  oldestCommittedAt: Date | null;
  lastSyncedAt: Date | null;
}

/** sync_summary, of one source or all. */
export async function readSummary(
  db: Queryable,
  schema: string,
  source: string | null,
): Promise<SummaryRow[]> {
  const res = await db.query<{
    source: string;
    status: string;
    rows: string;
    oldest_committed_at: Date | null;
    last_synced_at: Date | null;
  }>(statusSql(schema).summary, [source]);
  return res.rows.map((r) => ({
    source: r.source,
    status: r.status,
    rows: Number(r.rows),
    oldestCommittedAt: r.oldest_committed_at,
    lastSyncedAt: r.last_synced_at,
  }));
}

/** Rows still being worked on (retrying, accepted), and how old the oldest change among them is. */
export async function readBacklog(
  db: Queryable,
  schema: string,
  source: string | null,
): Promise<{ rows: number; oldestCommittedAt: Date | null; ageSeconds: number }> {
  const res = await db.query<{ rows: string; oldest: Date | null; age: string | null }>(
    statusSql(schema).backlog,
    [source],
  );
  const b = res.rows[0];
  return {
    rows: Number(b?.rows ?? 0),
    oldestCommittedAt: b?.oldest ?? null,
    ageSeconds: Math.max(0, Math.round(Number(b?.age ?? 0))),
  };
}

/** A failed row as the sync_failures view shows it. */
export interface Failure {
  source: string;
  rowKey: unknown;
  op: string;
  error: string | null;
  attempts: number;
  syncedAt: Date;
}

/** The newest failures (of one source or all), at most `limit`. */
export async function readFailures(
  db: Queryable,
  schema: string,
  source: string | null,
  limit: number,
): Promise<Failure[]> {
  const res = await db.query<{
    source: string;
    row_key: unknown;
    op: string;
    error: string | null;
    attempts: number;
    synced_at: Date;
  }>(statusSql(schema).failures, [source, limit]);
  return res.rows.map((r) => ({
    source: r.source,
    rowKey: r.row_key,
    op: r.op,
    error: r.error,
    attempts: r.attempts,
    syncedAt: r.synced_at,
  }));
}

/** A few failures, newest first, at most two per source and error; and how many there are in all. */
export async function readFailureSample(
  db: Queryable,
  schema: string,
  limit: number,
): Promise<{
  total: number;
  rows: Array<{ source: string; rowKey: string; op: string; error: string | null }>;
}> {
  const sql = statusSql(schema);
  const res = await db.query<{ source: string; row_key: string; op: string; error: string | null }>(
    sql.failureSample,
    [limit],
  );
  const total = Number((await db.query<{ n: string }>(sql.failureCount)).rows[0]?.n ?? 0);
  return {
    total,
    rows: res.rows.map((r) => ({ source: r.source, rowKey: r.row_key, op: r.op, error: r.error })),
  };
}

/** Rows per status, all sources. */
export async function readCountsByStatus(db: Queryable, schema: string): Promise<Map<string, number>> {
  const res = await db.query<{ status: string; n: string }>(statusSql(schema).countsByStatus);
  return new Map(res.rows.map((r) => [r.status, Number(r.n)]));
}

/** The slot's snapshot (first start or re-sync), or null before there was one. */
export async function readSnapshot(
  db: Queryable,
  schema: string,
  slot: string,
): Promise<{ done: boolean; rows: number; reason: string | null } | null> {
  const res = await db.query<{ done: boolean; rows: string | null; reason: string | null }>(
    statusSql(schema).snapshotReport,
    [slot],
  );
  const r = res.rows[0];
  return r ? { done: r.done, rows: Number(r.rows ?? 0), reason: r.reason } : null;
}

/** One backfill's progress, or undefined when it is gone. */
export async function readBackfill(
  db: Queryable,
  schema: string,
  id: string,
): Promise<{ status: string; done: number; total: number | null; error: string | null } | undefined> {
  const res = await db.query<{ status: string; done: string; total: string | null; error: string | null }>(
    statusSql(schema).backfill,
    [id],
  );
  const r = res.rows[0];
  if (!r) return undefined;
  return {
    status: r.status,
    done: Number(r.done),
    total: r.total === null ? null : Number(r.total),
    error: r.error,
  };
}

export interface BackfillSummary {
  id: string;
  source: string;
  reason: string;
  status: string;
  done: number;
  /** Rows to go through when known (counted at the start), else null. */
  total: number | null;
  error: string | null;
  requestedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** The latest backfills of a slot, open ones first; none before the backfill table exists. */
export async function readRecentBackfills(
  db: Queryable,
  statusSchema: string,
  slot: string,
  limit: number,
): Promise<BackfillSummary[]> {
  const sql = statusSql(statusSchema);
  const exists = await db.query<{ ok: boolean }>(sql.backfillExists, [statusSchema]);
  if (!exists.rows[0]?.ok) return [];
  const res = await db.query<{
    id: string;
    source: string;
    reason: string;
    status: string;
    done: string;
    total: string | null;
    error: string | null;
    requested_at: Date;
    started_at: Date | null;
    finished_at: Date | null;
  }>(sql.recentBackfills, [slot, limit]);
  return res.rows.map((r) => ({
    id: r.id,
    source: r.source,
    reason: r.reason,
    status: r.status,
    done: Number(r.done),
    total: r.total === null ? null : Number(r.total),
    error: r.error,
    requestedAt: r.requested_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  }));
}
