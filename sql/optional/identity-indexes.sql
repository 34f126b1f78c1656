-- Optional, for the DBA: lets the web console's "Find a customer" (docs/console.md) and your own
-- `WHERE payload ->> 'phone' = ...` find a row by an identity the bridge sent, through an index.
-- Without them the console searches by source key only and says which identities it skipped.
--
-- Not a migration, because each index costs every synced row: measured on the project's 2-core
-- machine (docs/benchmark.md, "The status table"), the four add ~40 bytes and ~6 µs of PostgreSQL
-- CPU per row whose payload carries those identities (a row without an identity costs nothing:
-- the indexes are partial). Create only those you search by; drop one with DROP INDEX.
--
-- CONCURRENTLY: the bridge keeps writing while they build. Run it outside a transaction, as the
-- owner of the status schema (the bridge's role), e.g.:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c 'SET search_path TO tuzhan_sync' -f sql/optional/identity-indexes.sql
-- An index whose build was interrupted is left INVALID and is not used: drop it and run again.
-- The console notices a new index within a minute, without a restart.

CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_thirdid_idx ON sync_row ((payload ->> 'thirdId'))
  WHERE (payload ->> 'thirdId') IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_phone_idx ON sync_row ((payload ->> 'phone'))
  WHERE (payload ->> 'phone') IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_openid_idx ON sync_row ((payload ->> 'openid'))
  WHERE (payload ->> 'openid') IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_unionid_idx ON sync_row ((payload ->> 'unionid'))
  WHERE (payload ->> 'unionid') IS NOT NULL;

-- The planner's view of those values: an index that skips rows without the value (a partial
-- index) gives it no statistics, and without them it guesses 0.5% of the table per identity and
-- may read the whole table rather than the index. Needs PostgreSQL 14 or later; ANALYZE fills it.
CREATE STATISTICS IF NOT EXISTS sync_row_identity_stats
  ON (payload ->> 'thirdId'), (payload ->> 'phone'), (payload ->> 'openid'), (payload ->> 'unionid')
  FROM sync_row;
ANALYZE sync_row;
