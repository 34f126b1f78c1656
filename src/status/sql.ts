/**
 * Every statement on the status schema, as pure functions of the schema name (pg-boss's `plans.ts`):
 * the rest of the code runs them by name with parameters, so what the bridge does to the customer's
 * database reads in one place. The schema name is quoted here; values are always parameters.
 */
import { quoteIdent, quoteTable } from '../util/sql.js';
import { ON_PLATFORM_SQL, opCode, outcomeRows, statusCode } from './codes.js';
import { statusWriteSql, type WriteShape } from './status-write.js';

export type StatusSql = ReturnType<typeof statusSql>;

/** The statements of one status schema. */
export function statusSql(schemaName: string) {
  const schema = quoteIdent(schemaName);
  const row = `${schema}.sync_row`;
  /** sync_row with op and status as text (codes.ts): what every read below takes, with an alias. */
  const rows = outcomeRows(schema);
  /** The number of the source named by a parameter (one index lookup per statement). */
  const sourceId = (param: string): string => `(SELECT id FROM ${schema}.sync_source WHERE name = ${param})`;
  const batch = `${schema}.sync_batch`;
  const state = `${schema}.bridge_state`;
  const sent = `${schema}.sent_position`;
  return {
    /** $1 schema name: whether the schema's sync_status exists yet. */
    exists: `SELECT to_regclass(format('%I.sync_status', $1::text)) IS NOT NULL AS ok`,

    /** One request's outcomes and its sync_batch row in one statement: src/status/status-write.ts. */
    writeRequest(withBatch: boolean, shape: WriteShape = 'insert'): string {
      return statusWriteSql(schemaName, withBatch, shape);
    },

    /**
     * The `retrying` outcome of a request's first failed try (and the `failed` outcome of a row that
     * could not be sent at all), with writeRequest's parameters $1..$10.
     * A key's stored op and payload stay: they say what the platform holds until the change's own
     * outcome is stored, and a replay after a crash starts from them (without REPLICA IDENTITY FULL,
     * or with `deleteLookup: state`). A key not stored yet gets the request's. Never replaces a
     * later outcome.
     */
    writeRetrying: `INSERT INTO ${row} AS t
          (source_id, key, op_code, status_code, attempts, error, lsn, committed_at, synced_at, payload)
        SELECT ${sourceId('$1')}, r.k::text, ($5::"char"[])[r.t], ($6::"char"[])[r.t], ($7::int[])[r.t],
               ($8::text[])[r.t], ($9::pg_lsn[])[r.t], ($10::timestamptz[])[r.t], now(),
               CASE WHEN json_typeof(r.p) <> 'null' THEN r.p END
          FROM ROWS FROM (json_array_elements($2::json), json_array_elements($3::json), unnest($4::int[])) AS r(k, p, t)
        ON CONFLICT (source_id, key) DO UPDATE SET
          status_code = EXCLUDED.status_code, attempts = EXCLUDED.attempts, error = EXCLUDED.error, lsn = EXCLUDED.lsn,
          committed_at = EXCLUDED.committed_at, synced_at = EXCLUDED.synced_at
        WHERE t.lsn IS NULL OR t.lsn <= EXCLUDED.lsn`,

    /** $1 source: numbers a source in sync_source once (a no-op when it is there). */
    ensureSource: `INSERT INTO ${schema}.sync_source (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`,

    /** $1 source, $2 message: a TRUNCATE of a source table, recorded with no request. */
    recordTruncate: `INSERT INTO ${batch} (source, opt_type, rows, msg, started_at, duration_ms)
      VALUES ($1, 'truncate', 0, $2, now(), 0)`,

    /**
     * $1 source, $2 the note, $3 the TRUNCATE's commit position: rows synced before it are gone from
     * the table (`onTruncate: ignore`): `skipped` with the note, op and payload kept (the platform
     * still holds them). Rows already deleted and held rows stay as they are.
     */
    markTruncated: `UPDATE ${row} SET status_code = ${statusCode('skipped')}, error = $2, synced_at = now()
      WHERE source_id = ${sourceId('$1')} AND (lsn IS NULL OR lsn < $3::pg_lsn) AND status_code <> ${statusCode('held')}
        AND NOT (op_code = ${opCode('delete')} AND status_code IN (${statusCode('synced')}, ${statusCode('skipped')}))`,

    /** $1 source, $2 keys (text[], their canonical texts): what was last recorded for them. */
    lastSent: `SELECT key AS k, op, status, payload FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND key = ANY($2::text[])`,

    /** $1 source: keys whose last outcome is failed or retrying (their payload may not be the WAL's). */
    unsettledKeys: `SELECT key AS k FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND status IN ('failed', 'retrying')`,

    /** $1 source: whether sync_status knows the source. */
    hasRows: `SELECT 1 FROM ${row} WHERE source_id = ${sourceId('$1')} LIMIT 1`,

    /**
     * $1 source, $2 last key of the previous page (or null), $3 page size: keys left on the platform.
     * A failed key's payload counts: what it kept when nothing was sent, else groups it never took.
     */
    syncedKeys: `SELECT key AS k, payload FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND op <> 'delete' AND status IN ${ON_PLATFORM_SQL}
        AND payload IS NOT NULL AND ($2::text IS NULL OR key > $2::text)
      ORDER BY key LIMIT $3`,

    /**
     * Keys sync_status shows on the platform that the source table no longer holds (a re-sync),
     * compared in the key columns' own types through the table's key index: $1 source, $2 last key
     * (or null), $3.. the key columns' names in row_key.
     */
    staleKeys(
      table: { schema: string; name: string },
      keyColumns: readonly string[],
      keyTypes: readonly string[],
      page: number,
    ): string {
      const matches = keyColumns
        .map((c, i) => `t.${quoteIdent(c)} = (s.key::json ->> $${i + 3}::text)::${keyTypes[i] ?? 'text'}`)
        .join(' AND ');
      return `SELECT s.key AS k, s.payload FROM ${rows} AS s
       WHERE s.source_id = ${sourceId('$1')} AND ($2::text IS NULL OR s.key > $2::text)
         AND s.op <> 'delete' AND s.status IN ${ON_PLATFORM_SQL} AND s.payload IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM ${quoteTable(table.schema, table.name)} t WHERE ${matches})
       ORDER BY s.key LIMIT ${Math.trunc(page)}`;
    },

    /** $1 source, $2 last key (or null), $3 page size: failed rows, in key order. */
    failedRows: `SELECT key AS k, attempts, lsn::text AS lsn, committed_at, payload FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND status = 'failed' AND ($2::text IS NULL OR key > $2::text)
      ORDER BY key LIMIT $3`,

    /** `failedRows` with $4 the error they failed with (null matches null): a console failure group. */
    failedRowsWithError: `SELECT key AS k, attempts, lsn::text AS lsn, committed_at, payload FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND status <> 'synced' AND status = 'failed'
        AND error IS NOT DISTINCT FROM $4 AND ($2::text IS NULL OR key > $2::text)
      ORDER BY key LIMIT $3`,

    /** $1 source, $2 keys: those of them still failed, as `failedRows` reads them (in key order too, whatever the plan). */
    failedRowsByKey: `SELECT key AS k, attempts, lsn::text AS lsn, committed_at, payload FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND key = ANY($2::text[]) AND status <> 'synced' AND status = 'failed'
      ORDER BY key`,

    /** Failed rows per source. */
    failedCounts: `SELECT source, count(*)::text AS n FROM ${schema}.sync_status WHERE status = 'failed' GROUP BY source`,

    /** $1 source (or null), $2 limit: the newest failures, from the sync_failures view. */
    failures: `SELECT source, row_key, op, error, attempts, synced_at FROM ${schema}.sync_failures
      WHERE $1::text IS NULL OR source = $1 LIMIT $2`,

    /** $1 limit: a few failures, newest first, at most two per source and error (the demo). */
    failureSample: `SELECT source, row_key::text, op, error
       FROM (SELECT *, row_number() OVER (PARTITION BY source, error ORDER BY synced_at DESC) AS nth
               FROM ${schema}.sync_failures) f
      WHERE nth <= 2 ORDER BY source, synced_at DESC LIMIT $1`,

    /** All failed rows. */
    failureCount: `SELECT count(*)::text AS n FROM ${schema}.sync_failures`,

    /** $1 source (or null): the sync_summary view. */
    summary: `SELECT source, status, rows::text, oldest_committed_at, last_synced_at FROM ${schema}.sync_summary
      WHERE $1::text IS NULL OR source = $1 ORDER BY source, status`,

    /** Rows per status, all sources. */
    countsByStatus: `SELECT status, count(*)::text AS n FROM ${rows} AS o GROUP BY status`,

    /** $1 source (or null): rows the bridge is still working on, and the oldest commit among them. */
    backlog: `SELECT count(*)::text AS rows, min(committed_at) AS oldest,
            extract(epoch FROM now() - min(committed_at))::text AS age
       FROM ${schema}.sync_status
      WHERE status IN ('retrying', 'accepted') AND ($1::text IS NULL OR source = $1)`,

    /** $1 schema name: whether the backfill table exists yet (migration 005). */
    backfillExists: `SELECT to_regclass(format('%I.backfill', $1::text)) IS NOT NULL AS ok`,

    /** $1 slot: its snapshot, as `status` shows it (columns of later migrations read if present). */
    snapshotReport: `SELECT snapshot_done_at IS NOT NULL AS done, snapshot_rows::text AS rows,
            to_jsonb(b) ->> 'snapshot_reason' AS reason FROM ${state} b WHERE slot = $1`,

    /** $1 slot: whether its snapshot finished, and how many rows it read. */
    snapshotState: `SELECT snapshot_done_at IS NOT NULL AS done, snapshot_rows::text AS rows FROM ${state} WHERE slot = $1`,

    /** $1 slot, $2 consistent point, $3 reason: a snapshot begins. */
    snapshotStarted: `INSERT INTO ${state} (slot, snapshot_lsn, snapshot_started_at, snapshot_reason) VALUES ($1, $2, now(), $3)
       ON CONFLICT (slot) DO UPDATE SET snapshot_lsn = EXCLUDED.snapshot_lsn, snapshot_started_at = now(),
         snapshot_done_at = NULL, snapshot_rows = NULL, snapshot_reason = EXCLUDED.snapshot_reason`,

    /** $1 slot, $2 rows read, $3 the sources it covered: the snapshot's outcomes are all stored. */
    snapshotDone: `UPDATE ${state} SET snapshot_done_at = now(), snapshot_rows = $2, sources = $3 WHERE slot = $1`,

    /** $1 slot, $2 rows read so far: the snapshot's progress. */
    snapshotProgress: `UPDATE ${state} SET snapshot_rows = $2 WHERE slot = $1`,

    /** $1 slot: the sources whose existing rows the slot synced. */
    coveredSources: `SELECT coalesce(sources, '{}') AS sources FROM ${state} WHERE slot = $1`,

    /** $1 slot, $2 sources: these sources' existing rows are (being) synced. */
    coverSources: `UPDATE ${state} SET sources = (SELECT array_agg(DISTINCT s) FROM unnest(coalesce(sources, '{}') || $2::text[]) s)
      WHERE slot = $1`,

    /** $1 id, $2 estimate of its rows: the backfill begins (or resumes). */
    startBackfill: `UPDATE ${schema}.backfill SET status = 'running', started_at = coalesce(started_at, now()),
       rows_total = coalesce(rows_total, $2) WHERE id = $1`,

    /** $1 id, $2 last key done (jsonb), $3 rows done: progress, stored once the chunk's outcomes are. */
    backfillProgress: `UPDATE ${schema}.backfill SET last_key = $2, rows_done = $3 WHERE id = $1`,

    /** $1 id: one backfill. */
    backfill: `SELECT id::text, source, status, rows_done::text AS done, rows_total::text AS total, error,
              requested_at, started_at, finished_at FROM ${schema}.backfill WHERE id = $1`,

    /** $1 slot, $2 limit: the running backfills and the latest finished ones. */
    recentBackfills: `SELECT id::text, source, reason, status, rows_done::text AS done, rows_total::text AS total, error,
              requested_at, started_at, finished_at FROM ${schema}.backfill WHERE slot = $1
        ORDER BY (status IN ('pending', 'running')) DESC, id DESC LIMIT $2`,

    /** $1 schema name: whether bridge_state exists yet. */
    stateExists: `SELECT to_regclass(format('%I.bridge_state', $1::text)) IS NOT NULL AS ok`,

    /** $1 slot: the slot's records go with it (teardown). */
    forgetSlot: `DELETE FROM ${state} WHERE slot = $1`,

    /** $1 slot: the sent position of every source. */
    sentPositions: `SELECT source, lsn::text AS lsn, seq::text AS seq FROM ${sent} WHERE slot = $1`,

    /** $1 slot, $2 source, $3 lsn, $4 seq: raise a source's sent position (never lower it). */
    coverSent: `INSERT INTO ${sent} AS t (slot, source, lsn, seq) VALUES ($1, $2, $3::pg_lsn, $4)
         ON CONFLICT (slot, source) DO UPDATE SET lsn = EXCLUDED.lsn, seq = EXCLUDED.seq
          WHERE (t.lsn, t.seq) < (EXCLUDED.lsn, EXCLUDED.seq)`,
  };
}
