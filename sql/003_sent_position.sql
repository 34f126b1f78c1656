-- How far the bridge may have sent each source's changes to the platform, per replication slot.
-- Raised before a flush's requests leave, so after a crash or a dropped connection the bridge
-- knows which replayed changes the platform may already have seen: only a change past this
-- position provably never reached it, and only then may a row inserted and deleted before it was
-- sent be skipped, or an insert sent as `add` (docs/design.md, "Replay").
CREATE TABLE sent_position (
  slot   text   NOT NULL,
  source text   NOT NULL,
  lsn    pg_lsn NOT NULL,
  seq    bigint NOT NULL,
  CONSTRAINT sent_position_pkey PRIMARY KEY (slot, source)
);

COMMENT ON TABLE sent_position IS
  'tuzhan-cdc: per slot and source, the last change the bridge may have sent to the platform (changes after it never reached it).';
COMMENT ON COLUMN sent_position.lsn IS 'Commit position of the transaction of that change.';
COMMENT ON COLUMN sent_position.seq IS 'Index of the change among the row changes of its transaction.';
COMMENT ON COLUMN sent_position.slot IS 'Replication slot name (postgres.slot).';
COMMENT ON COLUMN sent_position.source IS 'Source name from the bridge config (sources[].name).';
