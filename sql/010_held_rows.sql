-- Held rows: the destructive-change guard (docs/operations.md, "Mass removals wait for a person").
-- A transaction or a flush window that would remove groups from more of a source's rows than
-- guard.maxRemovals allows is not sent: its rows get status `held`, with the reason (how many of
-- how many, which transaction) in `error`, until an operator approves or rejects them
-- (`tuzhan-cdc held --approve | --reject`, or the console). A held row keeps `op` and `payload` as
-- they were: what the platform still holds for the key. `synced_at` of a held row says since when
-- it is held.
--
-- Applied like 001 (see its header): SET LOCAL search_path TO <status schema>; names unqualified.
-- The new CHECK allows every status the old one did, so no existing row can fail it.

ALTER TABLE sync_row DROP CONSTRAINT sync_row_status_check;
ALTER TABLE sync_row ADD CONSTRAINT sync_row_status_check
  CHECK (status IN ('synced', 'failed', 'retrying', 'accepted', 'skipped', 'held'));

COMMENT ON COLUMN sync_row.status IS 'synced, failed, retrying, accepted, skipped or held (see sync_status.status).';
COMMENT ON COLUMN sync_status.status IS
  'synced: the platform imported it; failed: given up, see error; retrying: transient failure, the bridge keeps trying; accepted: the platform is still importing (data.status 0); skipped: nothing to send (e.g. inserted and deleted before a flush, or rejected by an operator); held: a mass removal waits for an operator (tuzhan-cdc held), see error.';

-- sync_summary already lists every status; held rows wait for a person, so they carry the age of
-- their oldest change like failed, retrying and accepted rows (006 kept that for all but synced
-- and skipped). Only the comments change.
COMMENT ON VIEW sync_summary IS
  'tuzhan-cdc: rows per source and status; for failed, retrying, accepted and held rows, the commit time of the oldest such change (how far behind that backlog is).';

-- What is held, one row per source and reason (a transaction or window held together), oldest
-- first: what `tuzhan-cdc held` and the console list. Reads within sync_row_unsynced_idx.
CREATE VIEW sync_held AS
SELECT s.name AS source, r.error AS reason, count(*) AS rows,
       min(r.synced_at) AS held_since, min(r.committed_at) AS oldest_committed_at
  FROM sync_row r JOIN sync_source s ON s.id = r.source_id
 WHERE r.status = 'held'
 GROUP BY s.name, r.error
 ORDER BY min(r.synced_at), s.name;

COMMENT ON VIEW sync_held IS
  'tuzhan-cdc: held rows (mass removals waiting for an operator) per source and reason, oldest first; approve or reject them with tuzhan-cdc held.';
COMMENT ON COLUMN sync_held.reason IS 'Why they are held: how many of the source''s rows the change would remove groups from, and which transaction.';
COMMENT ON COLUMN sync_held.rows IS 'Source rows held for this reason.';
COMMENT ON COLUMN sync_held.held_since IS 'When the first of them was held.';

-- Whoever may read sync_status may read what is held.
DO $$
DECLARE g record;
BEGIN
  FOR g IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
            WHERE c.oid = 'sync_status'::regclass AND a.grantee <> c.relowner AND a.privilege_type = 'SELECT'
  LOOP
    EXECUTE format('GRANT SELECT ON sync_held TO %s',
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
  END LOOP;
END $$;

-- Settling what is held is a job for the bridge that holds the slot (008): an approval re-syncs
-- the held keys on its lanes, a rejection records them `skipped`, and either tells its guard
-- that the keys are held no more.
ALTER TABLE job DROP CONSTRAINT job_kind_check;
ALTER TABLE job ADD CONSTRAINT job_kind_check CHECK (kind IN ('backfill', 'retry', 'approve', 'reject'));
COMMENT ON COLUMN job.kind IS 'backfill, retry (of failed rows), approve or reject (of held rows).';
