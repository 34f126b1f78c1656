/**
 * The web console's statements on the status schema (src/ops/console/), as pure functions of the
 * schema name like `sql.ts`, which holds the bridge's own. Values are always parameters; the schema
 * name is quoted here. They read the storage (`sync_row`, `sync_source`: sql/007) rather than the
 * `sync_status` view, so that each lookup reaches its index.
 *
 * Every statement is bounded on a status table of millions of rows. The index each one uses
 * (`test/integration/console-api.test.ts` checks the plans):
 *
 * - sync_row_pkey (source_id, key): `sourceRows`, `keyShape`, the key part of `search`.
 * - sync_row_unsynced_idx (status, source_id) WHERE status <> 'synced': `unsyncedCounts`,
 *   `backlog`, `failureGroups`, `groupRows`. Each repeats the index's predicate
 *   (`status <> 'synced'`) so the planner can prove it with any parameter.
 * - an index on `(payload::jsonb ->> '<identity>')` per identity searched (sql/optional/
 *   identity-indexes.sql; created by the DBA, not by a migration): the identity part of `search`,
 *   built only over the identities such an index exists for (`identityIndexes`).
 * - sync_batch_started_at_idx (started_at): `recentRequests`, `requestRate`, the request of each
 *   `search` row.
 */
import { quoteIdent } from '../util/sql.js';
import { outcomeRows } from './codes.js';

export type ConsoleSql = ReturnType<typeof consoleSql>;

/**
 * How many of the newest requests before a row's outcome `search` looks through for the request
 * that carried it. More than the requests a bridge starts between sending one and storing its
 * answer, at any concurrency; bounds the index range read per row.
 */
export const REQUEST_LOOKBACK = 1000;

/** The identity fields of an API row (src/config/types.ts IDENTITY_FIELDS) the console can search by. */
export const SEARCHED_IDENTITIES = ['thirdId', 'phone', 'openid', 'unionid'] as const;
export type SearchedIdentity = (typeof SEARCHED_IDENTITIES)[number];

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
  const row = `${schema}.sync_row`;
  /** sync_row with op and status as text (codes.ts), for the statements that read them. */
  const rows = outcomeRows(schema);
  const names = `${schema}.sync_source`;
  const batch = `${schema}.sync_batch`;
  /** The number of the source named by a parameter (one index lookup per statement). */
  const sourceId = (param: string): string => `(SELECT id FROM ${names} WHERE name = ${param})`;
  return {
    /**
     * $1 schema name: the planner's estimate of the status rows (`reltuples`, -1 before the first
     * ANALYZE), or no row when the table does not exist yet. No scan.
     */
    tableEstimate: `SELECT c.reltuples::float8 AS rows FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = 'sync_row' AND c.relkind IN ('r', 'p')`,

    /** $1 schema name: each source's share of the status rows as ANALYZE saw it (pg_stats). No scan. */
    sourceShares: `SELECT coalesce(array_agg(src.name ORDER BY v.n), '{}') AS sources,
            coalesce(array_agg(v.freq ORDER BY v.n), '{}') AS freqs
       FROM pg_stats st
       CROSS JOIN LATERAL unnest(st.most_common_vals::text::smallint[], st.most_common_freqs)
         WITH ORDINALITY AS v(id, freq, n)
       JOIN ${names} src ON src.id = v.id
      WHERE st.schemaname = $1 AND st.tablename = 'sync_row' AND st.attname = 'source_id'`,

    /** $1 source: its rows, exactly (a range of the primary key; index-only). */
    sourceRows: `SELECT count(*)::text AS n FROM ${row} WHERE source_id = ${sourceId('$1')}`,

    /** Rows per source and status, synced excepted (on the partial index). */
    unsyncedCounts: `SELECT src.name AS source, c.status, c.n
       FROM (SELECT source_id, status, count(*)::text AS n FROM ${rows} AS o
              WHERE status <> 'synced' GROUP BY source_id, status) c
       JOIN ${names} src ON src.id = c.source_id`,

    /**
     * The backlog as `tuzhan-cdc status` counts it: rows still being worked on (retrying, accepted)
     * per source, and the commit time of the oldest.
     */
    backlog: `SELECT src.name AS source, b.n, b.oldest, extract(epoch FROM now() - b.oldest)::float8 AS age
       FROM (SELECT source_id, count(*)::text AS n, min(committed_at) AS oldest FROM ${rows} AS o
              WHERE status <> 'synced' AND status IN ('retrying', 'accepted') GROUP BY source_id) b
       JOIN ${names} src ON src.id = b.source_id`,

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

    /**
     * $1 since when (timestamptz), $2 how many of the newest requests to read at most: per source,
     * the requests started after $1, their rows and the earliest start among them (the recent rate).
     */
    requestRate: `SELECT source, count(*)::int AS requests, coalesce(sum(rows), 0)::int AS rows,
            min(started_at) AS oldest
       FROM (SELECT source, opt_type, rows, started_at FROM ${batch}
              WHERE started_at > $1::timestamptz ORDER BY started_at DESC LIMIT $2) r
      WHERE opt_type <> 'truncate'
      GROUP BY source`,

    /** `max_slot_wal_keep_size` in MB (-1: no limit). */
    walKeepSize: `SELECT setting::bigint AS mb FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`,

    /** $1 slot: its snapshot (first start or re-sync), when it ran and how many rows it read. */
    snapshot: `SELECT snapshot_started_at AS started, snapshot_done_at AS done, snapshot_rows::text AS rows,
            to_jsonb(b) ->> 'snapshot_reason' AS reason FROM ${schema}.bridge_state b WHERE slot = $1`,

    /** $1 source: one of its keys, for the names of its key columns. */
    keyShape: `SELECT key AS k FROM ${row} WHERE source_id = ${sourceId('$1')} LIMIT 1`,

    /**
     * $1 schema name, $2 identity fields: those a valid one-column index on
     * `(payload::jsonb ->> '<identity>')` of sync_row can find, whatever the index's name. The
     * expression is the one a query of the sync_status view (`payload ->> 'phone'`, payload being
     * `sync_row.payload::jsonb` there) expands to, so operators' own queries use the index too.
     */
    identityIndexes: `SELECT DISTINCT f.identity FROM pg_index i
       JOIN pg_class t ON t.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
       CROSS JOIN unnest($2::text[]) AS f(identity)
      WHERE n.nspname = $1 AND t.relname = 'sync_row' AND i.indisvalid AND i.indnatts = 1
        AND strpos(pg_get_indexdef(i.indexrelid), '((payload)::jsonb ->> ''' || f.identity || '''::text)') > 0`,

    /**
     * Rows by source key or by an identity the bridge sent, each with the request that carried its
     * outcome: $1 sources and $2 keys (canonical key texts, as sync_row.key holds them; every pair
     * is looked up), $3 only this source (or null), $4 at most this many rows, and with identities
     * given, $5 an identity value, compared in those fields only: they must have an index
     * (`identityIndexes`), since one without would make the whole statement a scan.
     *
     * sync_row has no request id: the request is the sync_batch row written by the same statement,
     * i.e. the same transaction (`xmin`), looked for among the `REQUEST_LOOKBACK` newest requests
     * started before the outcome was stored (ten minutes of leeway for the bridge's clock, which
     * times the request, against the database's, which stamps `synced_at`). Outcomes stored without
     * a request (retrying, failed before sending, skipped) have none.
     */
    search(identities: readonly SearchedIdentity[]): string {
      const byIdentity = SEARCHED_IDENTITIES.filter((f) => identities.includes(f))
        .map((f) => `\n                     OR (payload::jsonb ->> '${f}') = $5::text`)
        .join('');
      return `SELECT src.name AS source, s.key AS row_key, s.op, s.status, s.attempts, s.error, s.lsn::text AS lsn,
            s.committed_at, s.synced_at, s.payload,
            b.id::text AS request_id, b.opt_type, b.rows, b.http_status, b.code, b.msg, b.api_status,
            b.success_num, b.fail_num, b.started_at, b.duration_ms
       FROM (SELECT source_id, key, op, status, attempts, error, lsn, committed_at, synced_at, payload, x
               FROM ${rows} AS o
              WHERE ((source_id = ANY (ARRAY(SELECT id FROM ${names} WHERE name = ANY ($1::text[])))
                      AND key = ANY ($2::text[]))${byIdentity})
                AND ($3::text IS NULL OR source_id = ${sourceId('$3')})
              LIMIT $4) s
       JOIN ${names} src ON src.id = s.source_id
       LEFT JOIN LATERAL (
         SELECT r.* FROM (SELECT id, source, opt_type, rows, http_status, code, msg, api_status, success_num,
                                 fail_num, started_at, duration_ms, xmin AS x
                            FROM ${batch} WHERE started_at <= s.synced_at + interval '10 minutes'
                           ORDER BY started_at DESC LIMIT ${REQUEST_LOOKBACK}) r
          WHERE r.x = s.x AND r.source = src.name LIMIT 1) b ON true
      ORDER BY src.name, s.key`;
    },

    /**
     * Failed and retrying rows grouped by error, newest group first: $1 status (failed, retrying,
     * or null for both), $2 source (or null), $3 limit, $4 offset. Reads every failed or retrying
     * row (not the synced ones): its cost follows the failures, not the table.
     */
    failureGroups: `SELECT src.name AS source, g.status, g.error, g.n, g.oldest, g.newest
       FROM (SELECT source_id, status, error, count(*)::text AS n, min(committed_at) AS oldest,
                    max(synced_at) AS newest
               FROM ${rows} AS o
              WHERE status <> 'synced' AND status IN ('failed', 'retrying')
                AND ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR source_id = ${sourceId('$2')})
              GROUP BY source_id, status, error) g
       JOIN ${names} src ON src.id = g.source_id
      ORDER BY g.newest DESC, src.name, g.status, g.error NULLS FIRST
      LIMIT $3 OFFSET $4`,

    /**
     * The rows of one group, newest first: $1 status, $2 source, $3 error (null matches null),
     * $4/$5 the (synced_at, key) of the last row of the previous page (or nulls), $6 limit.
     */
    groupRows: `SELECT key AS k, op, attempts, error, lsn::text AS lsn, committed_at, synced_at,
            synced_at::text AS synced_text, payload
       FROM ${rows} AS o
      WHERE status <> 'synced' AND status = $1 AND source_id = ${sourceId('$2')}
        AND error IS NOT DISTINCT FROM $3
        AND ($4::timestamptz IS NULL OR (synced_at, key) < ($4::timestamptz, $5::text))
      ORDER BY synced_at DESC, key DESC LIMIT $6`,
  };
}
