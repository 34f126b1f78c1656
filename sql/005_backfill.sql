-- Backfills (SPEC section 8): re-sending a source's current rows while streaming goes on. A row is
-- a request (from `tuzhan-cdc backfill`, or the bridge itself for a source new to the slot) and
-- its progress: the daemon reads the table in key-ordered chunks between watermarks in the change
-- stream, and stores the last key done only once that chunk's outcomes are stored, so a backfill
-- survives a restart or a kill and resumes where it was.
CREATE TABLE backfill (
  id           bigint      GENERATED ALWAYS AS IDENTITY CONSTRAINT backfill_pkey PRIMARY KEY,
  slot         text        NOT NULL,
  source       text        NOT NULL,
  filter       jsonb,
  reason       text        NOT NULL,
  status       text        NOT NULL DEFAULT 'pending'
                 CONSTRAINT backfill_status_check CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
  requested_at timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  finished_at  timestamptz,
  last_key     jsonb,
  rows_done    bigint      NOT NULL DEFAULT 0,
  rows_total   bigint,
  error        text
);

CREATE INDEX backfill_open_idx ON backfill (slot, id) WHERE status IN ('pending', 'running');

COMMENT ON TABLE backfill IS 'tuzhan-cdc: backfills of a source (requested, or for a source new to the slot), with their progress.';
COMMENT ON COLUMN backfill.id IS 'Backfill number, increasing.';
COMMENT ON COLUMN backfill.slot IS 'Replication slot of the bridge that runs it (postgres.slot).';
COMMENT ON COLUMN backfill.source IS 'Source name from the bridge config (sources[].name).';
COMMENT ON COLUMN backfill.filter IS 'Only rows matching this filter (the syntax of sources[].where); null for every row.';
COMMENT ON COLUMN backfill.reason IS 'Why: requested (tuzhan-cdc backfill) or new source.';
COMMENT ON COLUMN backfill.status IS 'pending, running, done, failed (see error) or cancelled.';
COMMENT ON COLUMN backfill.requested_at IS 'When it was asked for.';
COMMENT ON COLUMN backfill.started_at IS 'When the bridge began reading.';
COMMENT ON COLUMN backfill.finished_at IS 'When every row had its outcome stored (or it failed).';
COMMENT ON COLUMN backfill.last_key IS 'Key of the last row whose outcome is stored: it resumes after it.';
COMMENT ON COLUMN backfill.rows_done IS 'Rows whose outcome is stored.';
COMMENT ON COLUMN backfill.rows_total IS 'Estimate of the rows to do, taken when it began.';
COMMENT ON COLUMN backfill.error IS 'Why it failed.';

-- The sources a slot's snapshot (or later backfills) covered: a source configured later is new to
-- the slot and gets its existing rows by a backfill.
ALTER TABLE bridge_state ADD COLUMN sources text[];
COMMENT ON COLUMN bridge_state.sources IS 'Sources whose existing rows the slot synced (by its snapshot or a backfill).';
