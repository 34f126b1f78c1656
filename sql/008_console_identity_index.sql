-- Finding a customer by an identity the bridge sent (the web console's search, docs/console.md, and
-- the operators' own `WHERE payload ->> 'phone' = ...`): one index per identity field of the API row.
--
-- Partial on the value being present, so rows without that identity cost nothing; a query
-- `payload ->> 'phone' = $1` matches the predicate by itself (`=` is strict: it implies IS NOT NULL).
-- The cost, measured on this project's 2-core machine with 1,000,000 rows sending a thirdId, a phone
-- and an openid: 22, 32 and 50 bytes per row (an index entry grows with its value), about 100 bytes
-- next to the 339 the table and its two indexes take per row; a row without an identity adds
-- nothing. The extra write time per row was within the noise of a shared machine. One GIN index
-- over the four values measured larger and not cheaper to write.
--
-- CREATE INDEX (not CONCURRENTLY: migrations run in a transaction) blocks writes to sync_status
-- while it builds: about 8 seconds per million rows there. The bridge waits; nothing is lost.
--
-- To apply by hand: BEGIN; SET LOCAL search_path TO "tuzhan_sync"; \i sql/008_console_identity_index.sql
--   INSERT INTO schema_migrations (id, name) VALUES (8, '008_console_identity_index'); COMMIT;

CREATE INDEX sync_status_thirdid_idx ON sync_status ((payload ->> 'thirdId')) WHERE (payload ->> 'thirdId') IS NOT NULL;
CREATE INDEX sync_status_phone_idx ON sync_status ((payload ->> 'phone')) WHERE (payload ->> 'phone') IS NOT NULL;
CREATE INDEX sync_status_openid_idx ON sync_status ((payload ->> 'openid')) WHERE (payload ->> 'openid') IS NOT NULL;
CREATE INDEX sync_status_unionid_idx ON sync_status ((payload ->> 'unionid')) WHERE (payload ->> 'unionid') IS NOT NULL;

COMMENT ON INDEX sync_status_thirdid_idx IS 'Finds the rows that sent a thirdId (the console''s search).';
COMMENT ON INDEX sync_status_phone_idx IS 'Finds the rows that sent a phone (the console''s search).';
COMMENT ON INDEX sync_status_openid_idx IS 'Finds the rows that sent an openid (the console''s search).';
COMMENT ON INDEX sync_status_unionid_idx IS 'Finds the rows that sent a unionid (the console''s search).';
