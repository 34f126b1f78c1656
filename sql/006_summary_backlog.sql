-- sync_summary: `skipped` rows are finished (nothing had to be sent), so their commit time is not a
-- backlog's age. Before this, `oldest_committed_at` of status skipped kept the commit time of the
-- first row ever skipped, and `now() - oldest_committed_at` made finished rows look like a backlog
-- growing older by the day. It is now set for the statuses that still wait or need a person:
-- failed, retrying and accepted; null for synced and skipped.
--
-- Applied like 001 (see its header): SET LOCAL search_path TO <status schema>; names unqualified.
-- CREATE OR REPLACE keeps the view's columns, their order and the grants on it.
CREATE OR REPLACE VIEW sync_summary AS
SELECT
  source,
  status,
  count(*) AS rows,
  min(committed_at) FILTER (WHERE status NOT IN ('synced', 'skipped')) AS oldest_committed_at,
  max(synced_at) AS last_synced_at
FROM sync_status
GROUP BY source, status;

COMMENT ON VIEW sync_summary IS
  'tuzhan-cdc: rows per source and status; for failed, retrying and accepted rows, the commit time of the oldest such change (how far behind that backlog is).';
COMMENT ON COLUMN sync_summary.oldest_committed_at IS
  'Oldest commit time among these rows; null for synced and skipped (finished) rows.';
