/**
 * The web console's statements on the status schema (src/ops/console/), as pure functions of the
 * schema name like `sql.ts` (they belong there; they live apart only while `sql.ts` is being
 * reworked for the storage layout). Values are always parameters; the schema name is quoted here.
 *
 * Every statement is bounded on a `sync_status` of millions of rows. The index each one uses
 * (`test/integration/console-api.test.ts` checks the plans):
 *
 * - sync_status_pkey (source, row_key): `sourceRows`, `keyShape`, the key part of `search`.
 * - sync_status_unsynced_idx (status, source) WHERE status <> 'synced': `unsyncedCounts`,
 *   `backlog`, `failureGroups`, `groupRows`, `groupFailedRows`. Each repeats the index's predicate
 *   (`status <> 'synced'`) so the planner can prove it with any parameter.
 * - sync_status_{thirdid,phone,openid,unionid}_idx (sql/008): the identity part of `search`.
 * - sync_batch_started_at_idx (started_at): `recentRequests`, the request of each `search` row.
 * - backfill_open_idx (slot, id) WHERE status IN ('pending', 'running'): `openBackfill`.
 */
import { quoteIdent } from '../util/sql.js';

export type ConsoleSql = ReturnType<typeof consoleSql>;

/**
 * How many of the newest requests before a row's outcome `search` looks through for the request
 * that carried it. More than the requests a bridge starts between sending one and storing its
 * answer, at any concurrency; bounds the index range read per row.
 */
export const REQUEST_LOOKBACK = 1000;

/** The identity fields of an API row (src/config/types.ts IDENTITY_FIELDS), each indexed by sql/008. */
export const SEARCHED_IDENTITIES = ['thirdId', 'phone', 'openid', 'unionid'] as const;

/** How a sync_batch row's answer reads in the console (the outcome names of the request metrics). */
const OUTCOME = `CASE
      WHEN http_status IS NULL THEN 'no answer'
      WHEN http_status IN (408, 425, 429) OR http_status >= 500 THEN 'transient'
      WHEN code IN ('100100', '100200', '100300') OR http_status IN (401, 403) THEN 'auth'
      WHEN code = '200' AND api_status = 1 THEN 'ok'
      WHEN code = '200' AND api_status = 0 THEN 'accepted'
      WHEN code = '200' AND api_status IN (2, -1) THEN 'partial'
      ELSE 'rejected'
    END`;

/** The console's statements on one status schema. */
export function consoleSql(schemaName: string) {
  const schema = quoteIdent(schemaName);
  const status = `${schema}.sync_status`;
  const batch = `${schema}.sync_batch`;
  return {
    /**
     * $1 schema name: the planner's estimate of sync_status's rows (`reltuples`, -1 before the first
     * ANALYZE), or no row when the table does not exist yet. No scan.
     */
    tableEstimate: `SELECT c.reltuples::float8 AS rows FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = 'sync_status' AND c.relkind IN ('r', 'p')`,

    /** $1 schema name: each source's share of sync_status as ANALYZE saw it (pg_stats). No scan. */
    sourceShares: `SELECT most_common_vals::text::text[] AS sources, most_common_freqs AS freqs FROM pg_stats
       WHERE schemaname = $1 AND tablename = 'sync_status' AND attname = 'source'`,

    /** $1 source: its rows, exactly (a range of the primary key; index-only). */
    sourceRows: `SELECT count(*)::text AS n FROM ${status} WHERE source = $1`,

    /** Rows per source and status, synced excepted (index-only on the partial index). */
    unsyncedCounts: `SELECT source, status, count(*)::text AS n FROM ${status}
       WHERE status <> 'synced' GROUP BY source, status`,

    /**
     * The backlog as `tuzhan-cdc status` counts it: rows still being worked on (retrying, accepted)
     * per source, and the commit time of the oldest.
     */
    backlog: `SELECT source, count(*)::text AS n, min(committed_at) AS oldest,
            extract(epoch FROM now() - min(committed_at))::float8 AS age
       FROM ${status} WHERE status <> 'synced' AND status IN ('retrying', 'accepted') GROUP BY source`,

    /**
     * $1 how many of the newest requests to read, $2 minutes: requests per source, minute (null
     * before the window) and outcome, with their rows and the newest start. TRUNCATE records are
     * not requests.
     */
    recentRequests: `SELECT source, outcome, minute, count(*)::int AS requests, sum(rows)::int AS rows,
            max(started_at) AS newest
       FROM (SELECT source, rows, started_at, ${OUTCOME} AS outcome,
                    CASE WHEN started_at > now() - make_interval(mins => $2::int)
                         THEN date_trunc('minute', started_at) END AS minute
               FROM (SELECT source, opt_type, rows, http_status, code, api_status, started_at
                       FROM ${batch} ORDER BY started_at DESC LIMIT $1) newest
              WHERE opt_type <> 'truncate') r
      GROUP BY source, outcome, minute`,

    /** `max_slot_wal_keep_size` in MB (-1: no limit). */
    walKeepSize: `SELECT setting::bigint AS mb FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`,

    /** $1 slot: its snapshot (first start or re-sync), when it ran and how many rows it read. */
    snapshot: `SELECT snapshot_started_at AS started, snapshot_done_at AS done, snapshot_rows::text AS rows,
            to_jsonb(b) ->> 'snapshot_reason' AS reason FROM ${schema}.bridge_state b WHERE slot = $1`,

    /** $1 source: one of its keys, for the names of its key columns. */
    keyShape: `SELECT row_key::text AS k FROM ${status} WHERE source = $1 LIMIT 1`,

    /**
     * Rows by source key or by an identity the bridge sent, each with the request that carried its
     * outcome: $1 sources and $2 keys (jsonb; every pair is looked up), $3 an identity value (or
     * null), $4 only this source (or null), $5 at most this many rows.
     *
     * sync_status has no request id: the request is the sync_batch row written by the same
     * statement, i.e. the same transaction (`xmin`), looked for among the `REQUEST_LOOKBACK` newest
     * requests started before the outcome was stored (ten minutes of leeway for the bridge's clock,
     * which times the request, against the database's, which stamps `synced_at`). Outcomes stored
     * without a request (retrying, failed before sending, skipped) have none.
     */
    search: `SELECT s.source, s.row_key::text AS row_key, s.op, s.status, s.attempts, s.error, s.lsn::text AS lsn,
            s.committed_at, s.synced_at, s.payload,
            b.id::text AS request_id, b.opt_type, b.rows, b.http_status, b.code, b.msg, b.api_status,
            b.success_num, b.fail_num, b.started_at, b.duration_ms
       FROM (SELECT source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload, xmin AS x
               FROM ${status}
              WHERE ((source = ANY($1::text[]) AND row_key = ANY($2::jsonb[]))
                     OR (payload ->> 'thirdId') = $3 OR (payload ->> 'phone') = $3
                     OR (payload ->> 'openid') = $3 OR (payload ->> 'unionid') = $3)
                AND ($4::text IS NULL OR source = $4)
              LIMIT $5) s
       LEFT JOIN LATERAL (
         SELECT r.* FROM (SELECT id, source, opt_type, rows, http_status, code, msg, api_status, success_num,
                                 fail_num, started_at, duration_ms, xmin AS x
                            FROM ${batch} WHERE started_at <= s.synced_at + interval '10 minutes'
                           ORDER BY started_at DESC LIMIT ${REQUEST_LOOKBACK}) r
          WHERE r.x = s.x AND r.source = s.source LIMIT 1) b ON true
      ORDER BY s.source, s.row_key`,

    /**
     * Failed and retrying rows grouped by error, newest group first: $1 status (failed, retrying,
     * or null for both), $2 source (or null), $3 limit, $4 offset. Reads every failed or retrying
     * row (not the synced ones): its cost follows the failures, not the table.
     */
    failureGroups: `SELECT source, status, error, count(*)::text AS n, min(committed_at) AS oldest, max(synced_at) AS newest
       FROM ${status}
      WHERE status <> 'synced' AND status IN ('failed', 'retrying')
        AND ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR source = $2)
      GROUP BY source, status, error
      ORDER BY max(synced_at) DESC, source, status, error NULLS FIRST
      LIMIT $3 OFFSET $4`,

    /**
     * The rows of one group, newest first: $1 status, $2 source, $3 error (null matches null),
     * $4/$5 the (synced_at, row_key) of the last row of the previous page (or nulls), $6 limit.
     */
    groupRows: `SELECT row_key::text AS k, op, attempts, error, lsn::text AS lsn, committed_at, synced_at,
            synced_at::text AS synced_text, payload
       FROM ${status}
      WHERE status <> 'synced' AND status = $1 AND source = $2 AND error IS NOT DISTINCT FROM $3
        AND ($4::timestamptz IS NULL OR (synced_at, row_key) < ($4::timestamptz, $5::jsonb))
      ORDER BY synced_at DESC, row_key DESC LIMIT $6`,

    /**
     * A group's failed rows for `retry-failed` (src/pipeline/retry-failed.ts), in key order: $1
     * source, $2 error (null matches null), $3 last key of the previous page (or null), $4 limit.
     */
    groupFailedRows: `SELECT row_key::text AS k, attempts, lsn::text AS lsn, committed_at, payload
       FROM ${status}
      WHERE status <> 'synced' AND status = 'failed' AND source = $1 AND error IS NOT DISTINCT FROM $2
        AND ($3::jsonb IS NULL OR row_key > $3::jsonb)
      ORDER BY row_key LIMIT $4`,

    /** $1 slot, $2 source: a backfill of the source still to run or running. */
    openBackfill: `SELECT id::text AS id FROM ${schema}.backfill
      WHERE slot = $1 AND status IN ('pending', 'running') AND source = $2 ORDER BY id LIMIT 1`,
  };
}
