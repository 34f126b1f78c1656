-- Jobs: work an operator asks of the running bridge, recorded here and run by the daemon that holds
-- the slot, so that whoever asks (a command, the web console, a standby), every request it leads to
-- goes through that daemon's per-key ordering with the stream's own requests: two requests for one
-- customer are never in flight at once. A backfill was the first such job (005); a retry of failed
-- rows is another, and the approval of held rows will be a third.
--
-- The backfill table becomes `job`, with a `kind`; `backfill` stays, as a view of the backfills, so
-- what operators read and what an older bridge writes keep working (the view is simple, hence
-- insertable and updatable; a row inserted through it is a backfill by the column's default).
-- Privileges granted on the table go with it; those who could read it may read the view too.
ALTER TABLE backfill RENAME TO job;
ALTER TABLE job RENAME CONSTRAINT backfill_pkey TO job_pkey;
ALTER TABLE job RENAME CONSTRAINT backfill_status_check TO job_status_check;
ALTER INDEX backfill_open_idx RENAME TO job_open_idx;

ALTER TABLE job ADD COLUMN kind text NOT NULL DEFAULT 'backfill'
  CONSTRAINT job_kind_check CHECK (kind IN ('backfill', 'retry', 'approve'));
ALTER TABLE job ADD COLUMN params jsonb;
ALTER TABLE job ADD COLUMN result jsonb;
-- A retry of every source names none.
ALTER TABLE job ALTER COLUMN source DROP NOT NULL;

COMMENT ON TABLE job IS 'tuzhan-cdc: work asked of the bridge that holds the slot (backfills, retries of failed rows, approvals), with its progress and result.';
COMMENT ON COLUMN job.id IS 'Job number, increasing.';
COMMENT ON COLUMN job.slot IS 'Replication slot of the bridge that runs it (postgres.slot).';
COMMENT ON COLUMN job.kind IS 'backfill, retry (of failed rows) or approve (of held rows).';
COMMENT ON COLUMN job.source IS 'Source name from the bridge config (sources[].name); null for every source.';
COMMENT ON COLUMN job.filter IS 'A backfill''s filter (the syntax of sources[].where); null for every row.';
COMMENT ON COLUMN job.reason IS 'Why: requested (a command or the console) or new source.';
COMMENT ON COLUMN job.status IS 'pending, running, done, failed (see error) or cancelled.';
COMMENT ON COLUMN job.params IS 'What the job is asked to do beyond its source and filter (a retry''s error group).';
COMMENT ON COLUMN job.result IS 'What it did, for the one who asked (a retry''s rows and outcomes per source).';
COMMENT ON COLUMN job.last_key IS 'A backfill''s last key whose outcome is stored: it resumes after it.';
COMMENT ON COLUMN job.rows_done IS 'Rows whose outcome is stored.';
COMMENT ON COLUMN job.rows_total IS 'Estimate of the rows to do, taken when it began.';

CREATE VIEW backfill AS
SELECT id, slot, source, filter, reason, status, requested_at, started_at, finished_at, last_key,
       rows_done, rows_total, error
  FROM job WHERE kind = 'backfill';

COMMENT ON VIEW backfill IS 'tuzhan-cdc: the backfills among the jobs (as the backfill table before).';
-- \d+ explains the view's columns as the table's.
DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT a.attname, col_description('job'::regclass, a.attnum) AS text FROM pg_attribute a
            WHERE a.attrelid = 'backfill'::regclass AND a.attnum > 0
  LOOP
    EXECUTE format('COMMENT ON COLUMN backfill.%I IS %L', c.attname, c.text);
  END LOOP;
END $$;

DO $$
DECLARE g oid;
BEGIN
  FOR g IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
            WHERE c.oid = 'job'::regclass AND a.grantee <> c.relowner AND a.privilege_type = 'SELECT'
  LOOP
    EXECUTE format('GRANT SELECT ON backfill TO %s',
                   CASE WHEN g = 0 THEN 'PUBLIC' ELSE g::regrole::text END);
  END LOOP;
END $$;
