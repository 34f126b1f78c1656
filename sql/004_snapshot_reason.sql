-- Why the slot's snapshot was taken: the first start, a re-sync asked for with `run --resync`, or
-- a re-sync after the server invalidated the slot (postgres.onSlotLost: resync). A re-sync removes
-- from the platform what the tables no longer hold (docs/design.md, "Re-sync").
ALTER TABLE bridge_state ADD COLUMN snapshot_reason text;

COMMENT ON COLUMN bridge_state.snapshot_reason IS
  'Why the snapshot was taken: first start, run --resync, or the slot was lost (onSlotLost: resync).';
