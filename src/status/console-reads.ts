/**
 * The web console's overview reads of the status schema, as typed values: rows per status, backlog
 * and requests per source, the snapshot. The statements are console-sql.ts's (each on an index);
 * `src/ops/console/` only turns these values into its API's JSON. Its searches and failure lists
 * are console-search.ts's. reads.ts re-exports both, so every reader of the status has one module.
 */
import type pg from 'pg';
import { consoleSql } from './console-sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The planner's estimate of the status rows (-1 before the first ANALYZE); undefined before the table exists. */
export async function readStatusRowEstimate(db: Queryable, schema: string): Promise<number | undefined> {
  const res = await db.query<{ rows: number }>(consoleSql(schema).tableEstimate, [schema]);
  return res.rows[0]?.rows;
}

/** `max_slot_wal_keep_size` in bytes, or null without a limit. */
export async function readWalKeepSize(db: Queryable, schema: string): Promise<number | null> {
  const res = await db.query<{ mb: string }>(consoleSql(schema).walKeepSize);
  const mb = Number(res.rows[0]?.mb ?? -1);
  return mb >= 0 ? mb * 1024 * 1024 : null;
}

/** Rows per source and status, synced excepted (exact, through the partial index). */
export async function readUnsyncedCounts(
  db: Queryable,
  schema: string,
): Promise<Array<{ source: string; status: string; rows: number }>> {
  const res = await db.query<{ source: string; status: string; n: string }>(
    consoleSql(schema).unsyncedCounts,
  );
  return res.rows.map((r) => ({ source: r.source, status: r.status, rows: Number(r.n) }));
}

/** A source's status rows, exactly (a range of the primary key). */
export async function readSourceRowCount(db: Queryable, schema: string, source: string): Promise<number> {
  const res = await db.query<{ n: string }>(consoleSql(schema).sourceRows, [source]);
  return Number(res.rows[0]?.n ?? 0);
}

/** Each source's share of the status rows as ANALYZE last saw it (no scan). */
export async function readSourceShares(
  db: Queryable,
  schema: string,
): Promise<Array<{ source: string; share: number }>> {
  const res = await db.query<{ sources: string[]; freqs: number[] }>(consoleSql(schema).sourceShares, [
    schema,
  ]);
  const s = res.rows[0];
  return s ? s.sources.map((source, i) => ({ source, share: s.freqs[i] ?? 0 })) : [];
}

/** A source's rows still being worked on (retrying, accepted), as `tuzhan-cdc status` counts them. */
export interface SourceBacklog {
  source: string;
  rows: number;
  oldestCommittedAt: Date | null;
  ageSeconds: number | null;
}

/** The backlog per source; a source without one is absent. */
export async function readSourceBacklogs(db: Queryable, schema: string): Promise<SourceBacklog[]> {
  const res = await db.query<{ source: string; n: string; oldest: Date | null; age: number | null }>(
    consoleSql(schema).backlog,
  );
  return res.rows.map((r) => ({
    source: r.source,
    rows: Number(r.n),
    oldestCommittedAt: r.oldest,
    ageSeconds: r.age,
  }));
}

/** Requests of one source and outcome in one minute (null: before the window), with their rows. */
export interface RequestGroup {
  source: string;
  /** The outcome names of the request metrics: ok, partial, accepted, rejected, auth, transient, no answer. */
  outcome: string;
  minute: Date | null;
  requests: number;
  rows: number;
  newest: Date;
}

/** The newest `window.requests` requests, grouped; those of the last `window.minutes` per minute. */
export async function readRecentRequests(
  db: Queryable,
  schema: string,
  window: { requests: number; minutes: number },
): Promise<RequestGroup[]> {
  const res = await db.query<RequestGroup>(consoleSql(schema).recentRequests, [
    window.requests,
    window.minutes,
  ]);
  return res.rows;
}

/** Per source, the requests started after `since` (at most `limit` of the newest), their rows and the earliest start. */
export async function readRequestRates(
  db: Queryable,
  schema: string,
  since: Date,
  limit: number,
): Promise<Array<{ source: string; requests: number; rows: number; oldest: Date }>> {
  const res = await db.query<{ source: string; requests: number; rows: number; oldest: Date }>(
    consoleSql(schema).requestRate,
    [since, limit],
  );
  return res.rows;
}

/** The slot's snapshot (first start or re-sync): when it ran and how many rows it read; null before one. */
export async function readSnapshotRun(
  db: Queryable,
  schema: string,
  slot: string,
): Promise<{
  startedAt: Date | null;
  doneAt: Date | null;
  rows: number | null;
  reason: string | null;
} | null> {
  const res = await db.query<{
    started: Date | null;
    done: Date | null;
    rows: string | null;
    reason: string | null;
  }>(consoleSql(schema).snapshot, [slot]);
  const r = res.rows[0];
  if (!r) return null;
  return {
    startedAt: r.started,
    doneAt: r.done,
    rows: r.rows === null ? null : Number(r.rows),
    reason: r.reason,
  };
}
