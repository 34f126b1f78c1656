-- The bridge's own progress per replication slot: whether the first-start snapshot of the source
-- tables finished. A slot whose snapshot did not finish is dropped and created again at the next
-- start (its consistent point was never confirmed past, so nothing is lost).
CREATE TABLE bridge_state (
  slot               text        NOT NULL CONSTRAINT bridge_state_pkey PRIMARY KEY,
  snapshot_lsn       pg_lsn,
  snapshot_started_at timestamptz,
  snapshot_done_at   timestamptz,
  snapshot_rows      bigint
);

COMMENT ON TABLE bridge_state IS 'Per replication slot: progress of the first-start snapshot of the source tables.';
COMMENT ON COLUMN bridge_state.slot IS 'Replication slot name (postgres.slot).';
COMMENT ON COLUMN bridge_state.snapshot_lsn IS 'Consistent point of the slot: the snapshot shows the tables as of this position.';
COMMENT ON COLUMN bridge_state.snapshot_started_at IS 'When the snapshot started.';
COMMENT ON COLUMN bridge_state.snapshot_done_at IS 'When every snapshot row had its outcome stored; null while in progress.';
COMMENT ON COLUMN bridge_state.snapshot_rows IS 'Rows read by the snapshot.';
