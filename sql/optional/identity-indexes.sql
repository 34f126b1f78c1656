-- Optional, for the DBA: lets the web console's "Find a customer" (docs/console.md) and your own
-- `WHERE payload ->> 'phone' = ...` find a row by an identity the bridge sent, through an index.
-- Without them the console searches by source key only and says which identities it skipped.
--
-- Not a migration, because every synced row pays for them: measured on the project's 2-core
-- machine (docs/benchmark.md, "The status table") with a thirdId, a phone and an openid in every
-- payload, the status write costs PostgreSQL about twice the CPU (15 -> 30 µs a row) and the
-- storage ~125 bytes a row more (257 -> 382). A row without an identity costs that index nothing
-- (the indexes are partial). Create only those you search by; drop one with DROP INDEX.
--
-- The expressions are those of the sync_status view (payload is sync_row.payload::jsonb there),
-- so `SELECT * FROM sync_status WHERE payload ->> 'phone' = '...'` uses them as the console does.
--
-- CONCURRENTLY: the bridge keeps writing while they build. Run it outside a transaction, as the
-- owner of the status schema (the bridge's role), e.g.:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c 'SET search_path TO tuzhan_sync' -f sql/optional/identity-indexes.sql
-- An index whose build was interrupted is left INVALID and is not used: drop it and run again.
-- The console notices a new index within a minute, without a restart.

CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_thirdid_idx ON sync_row ((payload::jsonb ->> 'thirdId'))
  WHERE (payload::jsonb ->> 'thirdId') IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_phone_idx ON sync_row ((payload::jsonb ->> 'phone'))
  WHERE (payload::jsonb ->> 'phone') IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_openid_idx ON sync_row ((payload::jsonb ->> 'openid'))
  WHERE (payload::jsonb ->> 'openid') IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_row_unionid_idx ON sync_row ((payload::jsonb ->> 'unionid'))
  WHERE (payload::jsonb ->> 'unionid') IS NOT NULL;

-- The planner's view of those values: an index that skips rows without the value (a partial
-- index) gives it no statistics, and without them it guesses 0.5% of the table per identity and
-- may read the whole table rather than the index. Needs PostgreSQL 14 or later; ANALYZE fills it.
CREATE STATISTICS IF NOT EXISTS sync_row_identity_stats
  ON (payload::jsonb ->> 'thirdId'), (payload::jsonb ->> 'phone'), (payload::jsonb ->> 'openid'),
     (payload::jsonb ->> 'unionid')
  FROM sync_row;
ANALYZE sync_row;
