/**
 * The rows that still need the bridge or a person, counted per source and status, for the gauges
 * a dashboard shows and alerts watch (`tuzhan_cdc_status_rows`): a counter since the start says
 * what happened to this process, this says what the table holds now, retries and restarts included.
 * Kept apart from sql.ts, whose statements are on the write path.
 */
import type pg from 'pg';
import { quoteIdent } from '../util/sql.js';

/**
 * The statuses counted: what waits (retrying, accepted), what failed, and what a person must decide
 * (held). Synced and skipped are done.
 */
export const COUNTED_STATUSES = ['failed', 'retrying', 'accepted', 'held'] as const;
export type CountedStatus = (typeof COUNTED_STATUSES)[number];

/**
 * Reads within `sync_row_unsynced_idx` (partial, `status <> 'synced'`, on (status, source_id))
 * through the sync_status view: the planner proves `status IN (...)` implies its predicate, so the
 * cost follows these rows, not the table, whatever number of synced rows it holds.
 */
export function statusCountsSql(statusSchema: string): string {
  return `SELECT source, status, count(*)::int AS rows,
                  floor(extract(epoch FROM now() - min(synced_at)))::int AS oldest
             FROM ${quoteIdent(statusSchema)}.sync_status
            WHERE status IN ('failed', 'retrying', 'accepted', 'held') GROUP BY source, status`;
}

/**
 * Counts per source and status, and how long ago the oldest of them was stored (for held rows: since
 * when they wait for a person); a source or status without rows is absent.
 */
export async function readStatusCounts(
  db: Pick<pg.ClientBase, 'query'>,
  statusSchema: string,
): Promise<Array<{ source: string; status: CountedStatus; rows: number; oldest: number }>> {
  const res = await db.query<{ source: string; status: CountedStatus; rows: number; oldest: number }>(
    statusCountsSql(statusSchema),
  );
  return res.rows;
}
