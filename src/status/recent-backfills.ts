/**
 * The latest backfills of a slot, open ones first, as `tuzhan-cdc status` and the web console show
 * them. Empty until the backfill table exists (a schema migrated before it).
 */
import type pg from 'pg';
import { statusSql } from './sql.js';

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

export async function readRecentBackfills(
  db: Pick<pg.ClientBase, 'query'>,
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
