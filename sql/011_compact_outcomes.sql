-- A smaller sync_row tuple (docs/benchmark.md, "The status table"). In a running deployment most
-- status writes rewrite a synced row's outcome, and with wal_level=logical PostgreSQL logs the
-- whole new row for every such update (no prefix/suffix compression). Per row, this stores:
--
--   op_code      "char" instead of op text: 'a' add, 'u' update, 'd' delete (1 byte instead of 4-7);
--   status_code  "char" instead of status text: 's' synced, 'f' failed, 'r' retrying, 'a' accepted,
--                'k' skipped, 'h' held (1 byte instead of 5-9);
--   error        '' instead of NULL when there is none: a row with no NULL column has no null
--                bitmap, and its data starts 8 bytes earlier.
--
-- 20 bytes less per row version: ~18 bytes less WAL for every rewritten outcome, ~10% less table.
-- Operators see no difference: sync_status, sync_summary, sync_failures and sync_held keep their
-- columns, types and values (op and status as text, error null when there is none). The codes are
-- read as text through sync_op_name() and sync_status_name(); sync_row_unsynced_idx is built on
-- sync_status_name(status_code), the expression the views expand to, so `WHERE status = 'failed'`
-- on sync_status still reads only that index. Writes through the sync_status view keep working.
--
-- The table is rewritten (ACCESS EXCLUSIVE while it runs: about a second per million rows here),
-- and the views are dropped and created again, with the grants and comments they had. A view or
-- rule of the operator's own on them makes this migration fail with PostgreSQL's message naming
-- it: drop it, start the bridge, create it again. Forward-only, like every file here.

-- The codes and their names. Not STRICT and plain SQL, so PostgreSQL inlines them into the views,
-- the index and the bridge's statements alike, and the index matches the views' expression.
CREATE FUNCTION sync_op_name(code "char") RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE code WHEN 'a' THEN 'add' WHEN 'u' THEN 'update' WHEN 'd' THEN 'delete' END $$;

CREATE FUNCTION sync_status_name(code "char") RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE code WHEN 's' THEN 'synced' WHEN 'f' THEN 'failed' WHEN 'r' THEN 'retrying'
                         WHEN 'a' THEN 'accepted' WHEN 'k' THEN 'skipped' WHEN 'h' THEN 'held' END $$;

-- Text to code; an unknown name gives '?', which sync_row's CHECK constraints refuse.
CREATE FUNCTION sync_op_code(name text) RETURNS "char"
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN name IS NOT NULL THEN
                 CASE name WHEN 'add' THEN 'a' WHEN 'update' THEN 'u' WHEN 'delete' THEN 'd' ELSE '?' END::"char"
               END $$;

CREATE FUNCTION sync_status_code(name text) RETURNS "char"
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN name IS NOT NULL THEN
                 CASE name WHEN 'synced' THEN 's' WHEN 'failed' THEN 'f' WHEN 'retrying' THEN 'r'
                           WHEN 'accepted' THEN 'a' WHEN 'skipped' THEN 'k' WHEN 'held' THEN 'h' ELSE '?' END::"char"
               END $$;

COMMENT ON FUNCTION sync_op_name("char") IS 'tuzhan-cdc: sync_row.op_code as text (add, update, delete).';
COMMENT ON FUNCTION sync_status_name("char") IS
  'tuzhan-cdc: sync_row.status_code as text (synced, failed, retrying, accepted, skipped, held).';
COMMENT ON FUNCTION sync_op_code(text) IS 'tuzhan-cdc: an op name as sync_row.op_code stores it.';
COMMENT ON FUNCTION sync_status_code(text) IS 'tuzhan-cdc: a status name as sync_row.status_code stores it.';

-- The views depend on the columns whose type changes: their grants and comments are kept here
-- while they are dropped and created again.
CREATE TABLE migration_011_grants AS
SELECT c.relname::text AS relname, a.grantee, a.privilege_type, a.is_grantable
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.oid IN ('sync_status'::regclass, 'sync_summary'::regclass, 'sync_failures'::regclass, 'sync_held'::regclass)
   AND a.grantee <> c.relowner;

CREATE TABLE migration_011_comments AS
SELECT c.relname::text AS relname, a.attname::text AS attname, d.description
  FROM pg_class c
  JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
 WHERE c.oid IN ('sync_status'::regclass, 'sync_summary'::regclass, 'sync_failures'::regclass, 'sync_held'::regclass);

DROP VIEW sync_failures;
DROP VIEW sync_held;
DROP VIEW sync_summary;
DROP VIEW sync_status; -- its INSTEAD OF trigger goes with it
DROP INDEX sync_row_unsynced_idx;
ALTER TABLE sync_row DROP CONSTRAINT sync_row_op_check;
ALTER TABLE sync_row DROP CONSTRAINT sync_row_status_check;
ALTER TABLE sync_row RENAME COLUMN op TO op_code;
ALTER TABLE sync_row RENAME COLUMN status TO status_code;

-- One rewrite of the table (fillfactor 90 stays): the codes, and '' for no error.
ALTER TABLE sync_row
  ALTER COLUMN op_code TYPE "char" USING sync_op_code(op_code),
  ALTER COLUMN status_code TYPE "char" USING sync_status_code(status_code),
  ALTER COLUMN error TYPE text USING coalesce(error, ''),
  ADD CONSTRAINT sync_row_op_check CHECK (op_code IN ('a', 'u', 'd')),
  ADD CONSTRAINT sync_row_status_check CHECK (status_code IN ('s', 'f', 'r', 'a', 'k', 'h'));

CREATE INDEX sync_row_unsynced_idx ON sync_row (sync_status_name(status_code), source_id)
  WHERE sync_status_name(status_code) <> 'synced';

-- Statistics of the status as text: without them the planner guesses how many rows a filter on
-- sync_status_name(status_code) keeps, and `WHERE status <> 'synced'` read the whole table instead
-- of the index (with a text column it had the column's own statistics). PostgreSQL 14 and later.
CREATE STATISTICS sync_row_status_stats ON (sync_status_name(status_code)) FROM sync_row;
ANALYZE sync_row;

COMMENT ON TABLE sync_row IS
  'tuzhan-cdc: storage of sync_status (query the view): one row per (source, source row key), the outcome of its latest change. fillfactor 90: room for HOT updates (migration 009); op and status as one-byte codes (migration 011).';
COMMENT ON COLUMN sync_row.op_code IS 'API operation of the latest change: a add, u update, d delete (sync_op_name).';
COMMENT ON COLUMN sync_row.status_code IS
  's synced, f failed, r retrying, a accepted, k skipped, h held (sync_status_name; see sync_status.status).';
COMMENT ON COLUMN sync_row.error IS 'Last error message; empty when there is none (null in sync_status).';
COMMENT ON INDEX sync_row_unsynced_idx IS
  'Finds rows that are not synced (failed, retrying, accepted, skipped, held), by status as sync_status shows it.';

CREATE VIEW sync_status AS
SELECT s.name AS source, r.key::jsonb AS row_key, sync_op_name(r.op_code) AS op,
       sync_status_name(r.status_code) AS status, r.attempts, NULLIF(r.error, '') AS error, r.lsn,
       r.committed_at, r.synced_at, r.payload::jsonb AS payload, r.key
  FROM sync_row r JOIN sync_source s ON s.id = r.source_id;

ALTER VIEW sync_status ALTER COLUMN attempts SET DEFAULT 0;
ALTER VIEW sync_status ALTER COLUMN synced_at SET DEFAULT now();

-- Writes through the view (an operator's script written for the old table) as in 007, with codes.
CREATE OR REPLACE FUNCTION sync_status_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  sid smallint;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    DELETE FROM sync_row r USING sync_source s
     WHERE s.name = OLD.source AND r.source_id = s.id AND r.key = OLD.key;
    IF TG_OP = 'DELETE' THEN
      RETURN OLD;
    END IF;
  END IF;
  -- Looked up first: an INSERT ... ON CONFLICT takes a number from the sequence even when the
  -- name is there, and a smallint sequence ran out after 32,767 rows written through the view.
  SELECT id INTO sid FROM sync_source WHERE name = NEW.source;
  IF sid IS NULL THEN
    INSERT INTO sync_source (name) VALUES (NEW.source) ON CONFLICT (name) DO NOTHING;
    SELECT id INTO sid FROM sync_source WHERE name = NEW.source;
  END IF;
  INSERT INTO sync_row (lsn, committed_at, synced_at, attempts, source_id, op_code, status_code, key, payload, error)
  VALUES (NEW.lsn, NEW.committed_at, coalesce(NEW.synced_at, now()), coalesce(NEW.attempts, 0), sid,
          sync_op_code(NEW.op), sync_status_code(NEW.status), coalesce(sync_key(NEW.row_key), NEW.key),
          NEW.payload::json, coalesce(NEW.error, ''));
  RETURN NEW;
END $$;

-- CREATE OR REPLACE dropped the function's settings: its names resolve in this schema again.
DO $$ BEGIN
  EXECUTE format('ALTER FUNCTION sync_status_write() SET search_path = %I, pg_catalog', current_schema());
END $$;

CREATE TRIGGER sync_status_write INSTEAD OF INSERT OR UPDATE OR DELETE ON sync_status
  FOR EACH ROW EXECUTE FUNCTION sync_status_write();

CREATE VIEW sync_summary AS
SELECT
  s.name AS source,
  sync_status_name(r.status_code) AS status,
  count(*) AS rows,
  min(r.committed_at) FILTER (WHERE r.status_code NOT IN ('s', 'k')) AS oldest_committed_at,
  max(r.synced_at) AS last_synced_at
FROM sync_row r JOIN sync_source s ON s.id = r.source_id
GROUP BY s.name, r.status_code;

CREATE VIEW sync_failures AS
SELECT source, row_key, op, error, attempts, payload, committed_at, synced_at
FROM sync_status
WHERE status = 'failed'
ORDER BY synced_at DESC, source, key;

CREATE VIEW sync_held AS
SELECT s.name AS source, NULLIF(r.error, '') AS reason, count(*) AS rows,
       min(r.synced_at) AS held_since, min(r.committed_at) AS oldest_committed_at
  FROM sync_row r JOIN sync_source s ON s.id = r.source_id
 WHERE sync_status_name(r.status_code) = 'held'
 GROUP BY s.name, r.error
 ORDER BY min(r.synced_at), s.name;

-- The views' comments and grants, as they were.
DO $$
DECLARE x record;
BEGIN
  FOR x IN SELECT * FROM migration_011_comments LOOP
    IF x.attname IS NULL THEN
      EXECUTE format('COMMENT ON VIEW %I IS %L', x.relname, x.description);
    ELSE
      EXECUTE format('COMMENT ON COLUMN %I.%I IS %L', x.relname, x.attname, x.description);
    END IF;
  END LOOP;
  FOR x IN SELECT * FROM migration_011_grants LOOP
    EXECUTE format('GRANT %s ON %I TO %s%s', x.privilege_type, x.relname,
                   CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END,
                   CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END $$;

DROP TABLE migration_011_grants;
DROP TABLE migration_011_comments;
