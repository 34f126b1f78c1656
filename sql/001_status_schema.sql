-- The sync-status schema (SPEC section 7): per source row outcomes and per request log.
--
-- Applied by src/status/migrate.ts in one transaction, under the migration advisory lock, after
-- `SET LOCAL search_path TO <status schema>` (quoted: the schema name comes from the config and may
-- be mixed-case). Names are therefore unqualified on purpose: the same file serves any schema name
-- without text substitution, and the views are bound to these tables when they are created, so
-- they keep working whatever search_path an operator uses later. Built-ins (text, jsonb, pg_lsn,
-- now()) resolve through pg_catalog, which PostgreSQL always searches first.
--
-- To apply by hand (e.g. a DBA who does not let the bridge run DDL):
--   BEGIN; SET LOCAL search_path TO "tuzhan_sync"; \i sql/001_status_schema.sql
--   INSERT INTO schema_migrations (id, name) VALUES (1, '001_status_schema'); COMMIT;
-- Forward-only: never edit this file once released; add 002_*.sql instead.

CREATE TABLE sync_status (
  source       text        NOT NULL,
  row_key      jsonb       NOT NULL CONSTRAINT sync_status_row_key_check CHECK (jsonb_typeof(row_key) = 'object'),
  op           text        NOT NULL CONSTRAINT sync_status_op_check CHECK (op IN ('add', 'update', 'delete')),
  status       text        NOT NULL CONSTRAINT sync_status_status_check
                             CHECK (status IN ('synced', 'failed', 'retrying', 'accepted', 'skipped')),
  attempts     integer     NOT NULL DEFAULT 0 CONSTRAINT sync_status_attempts_check CHECK (attempts >= 0),
  error        text,
  lsn          pg_lsn,
  committed_at timestamptz,
  synced_at    timestamptz NOT NULL DEFAULT now(),
  payload      jsonb,
  CONSTRAINT sync_status_pkey PRIMARY KEY (source, row_key)
);

-- The rows operators look for (failed, retrying, accepted, skipped) are few next to the synced
-- ones: a partial index keeps them cheap to find however large the table grows.
CREATE INDEX sync_status_unsynced_idx ON sync_status (status, source) WHERE status <> 'synced';

COMMENT ON TABLE sync_status IS
  'tuzhan-cdc: one row per (source, source row key) with the outcome of its latest change sent to the Tuzhan batchAdd API.';
COMMENT ON COLUMN sync_status.source IS 'Source name from the bridge config (sources[].name).';
COMMENT ON COLUMN sync_status.row_key IS 'Key columns of the source row as a JSON object, e.g. {"id": 42}.';
COMMENT ON COLUMN sync_status.op IS 'API operation of the latest change: add, update or delete.';
COMMENT ON COLUMN sync_status.status IS
  'synced: the platform imported it; failed: given up, see error; retrying: transient failure, the bridge keeps trying; accepted: the platform is still importing (data.status 0); skipped: nothing to send (e.g. inserted and deleted before a flush).';
COMMENT ON COLUMN sync_status.attempts IS 'Requests tried for the latest change.';
COMMENT ON COLUMN sync_status.error IS 'Last error message; null when synced.';
COMMENT ON COLUMN sync_status.lsn IS 'Commit position (WAL LSN) of the latest change.';
COMMENT ON COLUMN sync_status.committed_at IS 'Commit time of the latest change in the source database.';
COMMENT ON COLUMN sync_status.synced_at IS 'When this outcome was stored.';
COMMENT ON COLUMN sync_status.payload IS 'The API row sent (identity fields and groups).';
COMMENT ON INDEX sync_status_unsynced_idx IS 'Finds rows that are not synced (failed, retrying, accepted, skipped).';

CREATE TABLE sync_batch (
  id          bigint      GENERATED ALWAYS AS IDENTITY CONSTRAINT sync_batch_pkey PRIMARY KEY,
  source      text        NOT NULL,
  -- truncate: a TRUNCATE of the source table is recorded here too (SPEC section 4), with no request.
  opt_type    text        NOT NULL CONSTRAINT sync_batch_opt_type_check
                            CHECK (opt_type IN ('add', 'update', 'delete', 'truncate')),
  rows        integer     NOT NULL CONSTRAINT sync_batch_rows_check CHECK (rows >= 0),
  http_status integer,
  code        text,
  msg         text,
  api_status  integer,
  success_num integer,
  fail_num    integer,
  started_at  timestamptz NOT NULL DEFAULT now(),
  duration_ms integer
);

CREATE INDEX sync_batch_started_at_idx ON sync_batch (started_at);

COMMENT ON TABLE sync_batch IS
  'tuzhan-cdc: one row per request to the Tuzhan batchAdd API (and per TRUNCATE of a source table). Grows without bound: delete old rows by started_at.';
COMMENT ON COLUMN sync_batch.id IS 'Request number, increasing.';
COMMENT ON COLUMN sync_batch.source IS 'Source name from the bridge config.';
COMMENT ON COLUMN sync_batch.opt_type IS 'publicParams.optType sent: add, update or delete; truncate for a TRUNCATE of the source table.';
COMMENT ON COLUMN sync_batch.rows IS 'Rows in the request body (at most 500).';
COMMENT ON COLUMN sync_batch.http_status IS 'HTTP status of the answer; null when no answer came (network error, timeout).';
COMMENT ON COLUMN sync_batch.code IS 'Response "code" ("200" is success; 100100, 100200, 100300 are auth errors).';
COMMENT ON COLUMN sync_batch.msg IS 'Response "msg", or the local error message when no answer came.';
COMMENT ON COLUMN sync_batch.api_status IS 'Response data.status: -1 failed, 0 in progress, 1 success, 2 partly imported.';
COMMENT ON COLUMN sync_batch.success_num IS 'Response data.importSuccessNum.';
COMMENT ON COLUMN sync_batch.fail_num IS 'Response data.importFailNum.';
COMMENT ON COLUMN sync_batch.started_at IS 'When the request was sent.';
COMMENT ON COLUMN sync_batch.duration_ms IS 'Time until the answer (or the failure), in milliseconds.';

CREATE VIEW sync_summary AS
SELECT
  source,
  status,
  count(*) AS rows,
  min(committed_at) FILTER (WHERE status <> 'synced') AS oldest_committed_at,
  max(synced_at) AS last_synced_at
FROM sync_status
GROUP BY source, status;

COMMENT ON VIEW sync_summary IS
  'tuzhan-cdc: rows per source and status; for statuses other than synced, the commit time of the oldest such change (how far behind that backlog is).';
COMMENT ON COLUMN sync_summary.rows IS 'Source rows whose latest outcome has this status.';
COMMENT ON COLUMN sync_summary.oldest_committed_at IS 'Oldest commit time among these rows; null for status synced.';
COMMENT ON COLUMN sync_summary.last_synced_at IS 'When the newest of these outcomes was stored.';

CREATE VIEW sync_failures AS
SELECT source, row_key, op, error, attempts, payload, committed_at, synced_at
FROM sync_status
WHERE status = 'failed'
ORDER BY synced_at DESC, source, row_key;

COMMENT ON VIEW sync_failures IS 'tuzhan-cdc: source rows whose latest change failed, with the error, newest first.';
