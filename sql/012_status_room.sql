-- Room for a rewritten outcome (docs/benchmark.md, "The steady state"). Most status writes rewrite
-- a synced row's outcome as a HOT update into the free space of the row's page, and PostgreSQL
-- prunes the page (one WAL record, ~60 bytes) at the next access once its free space falls under
-- the fillfactor's reserve (10%). New rows fill a page up to that reserve, so after each rewrite
-- the page is under it again, and almost every rewrite was followed by a prune: ~50 bytes of WAL a
-- row in the `updates` bench, a quarter of the status write's WAL.
--
-- A lower fillfactor does not help: the prune threshold is the fillfactor's reserve itself. So the
-- room is kept in the rows instead: the bridge writes a new row with `room` holding 24 spaces, and
-- every rewrite empties it, so a page whose rows were rewritten holds 24 bytes a row more free
-- space than the reserve (~1.4 KB a page: a dozen rewrites), and one prune then clears several
-- dead versions. Nothing reads it: the views do not show it.
--
-- Adding a column with a constant default rewrites nothing: existing rows read '' (no room) until
-- they are rewritten. Forward-only, like every file here.
ALTER TABLE sync_row ADD COLUMN room text NOT NULL DEFAULT '';

COMMENT ON COLUMN sync_row.room IS
  'Free space kept in the page for this row''s next version: spaces when the row is first written, '''' once rewritten (migration 012). Not part of sync_status.';
