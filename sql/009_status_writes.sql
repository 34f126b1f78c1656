-- Room in each page of sync_row for the next version of its rows (docs/benchmark.md, "The status
-- table"). Every later change of a synced row rewrites its outcome; with room in the row's page and
-- no indexed column changed (the key stays, and the status mostly stays 'synced'), PostgreSQL
-- writes a HOT update: no new index entry, and one WAL record of ~180 bytes instead of ~300 with
-- the index entry. The bridge updates rows it holds with a plain UPDATE (src/status/status-write.ts),
-- which logs no row lock first as INSERT ... ON CONFLICT DO UPDATE does.
--
-- The setting applies to pages written from now on: rows moved by later non-HOT updates, and new
-- rows. To give every existing page its room at once (the table is rewritten, under an ACCESS
-- EXCLUSIVE lock while it runs): VACUUM FULL sync_row. Forward-only, like every file here.
ALTER TABLE sync_row SET (fillfactor = 90);

COMMENT ON TABLE sync_row IS
  'tuzhan-cdc: storage of sync_status (query the view): one row per (source, source row key), the outcome of its latest change. fillfactor 90: room for HOT updates (migration 009).';
