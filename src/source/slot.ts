/**
 * Publication and replication slot management. The replication library interpolates slot and
 * publication names raw, so config validation restricts them to plain names; here every name is
 * still quoted with the one helper.
 */
import pg from 'pg';
import type { SourceConfig } from '../config/types.js';
import { SetupError } from '../errors.js';
import { parseLsn } from '../util/lsn.js';
import { quoteIdent, quoteTable } from '../util/sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Creates the publication, or alters it to hold exactly the source tables. */
export async function ensurePublication(
  db: Queryable,
  publication: string,
  sources: readonly SourceConfig[],
): Promise<void> {
  const tables = [...new Set(sources.map((s) => quoteTable(s.schema, s.tableName)))].join(', ');
  const exists = await db.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
  // Only the row changes and truncates matter; publish_via_partition_root keeps partitioned
  // tables under their own name.
  if (exists.rowCount) {
    await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} SET TABLE ${tables}`);
  } else {
    await db.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${tables}`);
  }
}

export interface SlotInfo {
  plugin: string;
  database: string;
  active: boolean;
  confirmedFlushLsn: bigint | null;
  /** reserved, extended, unreserved, or lost (the server removed WAL the slot needs). */
  walStatus: string | null;
}

export async function slotInfo(db: Queryable, slot: string): Promise<SlotInfo | null> {
  const res = await db.query<{
    plugin: string;
    database: string;
    active: boolean;
    confirmed_flush_lsn: string | null;
    wal_status: string | null;
  }>(
    `SELECT plugin, database, active, confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const r = res.rows[0];
  if (!r) return null;
  return {
    plugin: r.plugin,
    database: r.database,
    active: r.active,
    confirmedFlushLsn: r.confirmed_flush_lsn ? parseLsn(r.confirmed_flush_lsn) : null,
    walStatus: r.wal_status,
  };
}

/**
 * Whether a replication error says the slot cannot stream any more. What PostgreSQL says (13-18):
 * - `replication slot "s" does not exist` (42704) when it was dropped;
 * - `can no longer get changes from replication slot "s"` (PG 13-16) or
 *   `cannot read from logical replication slot "s"` (17+), with the detail `This slot has been
 *   invalidated because it exceeded the maximum reserved size.` once `max_slot_wal_keep_size` was
 *   exceeded (`wal_status = lost`).
 */
export function isSlotLostError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const detail = (err as { detail?: unknown }).detail;
  const text = `${err.message} ${typeof detail === 'string' ? detail : ''}`;
  return /replication slot "[^"]*" does not exist|can no longer get changes from replication slot|cannot read from logical replication slot|slot has been invalidated/i.test(
    text,
  );
}

export interface CreatedSlot {
  consistentPoint: bigint;
  snapshotName: string;
  /** The replication connection: the exported snapshot lives until it runs another command. */
  connection: pg.Client;
}

/**
 * Creates the slot on a replication connection with an exported snapshot: reading the source
 * tables in that snapshot and then streaming from the slot's consistent point misses nothing and
 * sends nothing twice (PostgreSQL docs, "Exported Snapshots" of the replication protocol).
 */
export async function createSlotWithSnapshot(
  clientConfig: pg.ClientConfig,
  slot: string,
): Promise<CreatedSlot> {
  const connection = new pg.Client({ ...clientConfig, replication: 'database' } as pg.ClientConfig);
  // The connection idles while the snapshot is read elsewhere: a server shutdown then arrives as an
  // 'error' event, which without a listener crashes the process. The snapshot was imported by then.
  connection.on('error', () => {});
  await connection.connect();
  try {
    const res = await connection.query<{ consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const r = res.rows[0];
    if (!r) throw new SetupError('SLOT_CREATE', `creating replication slot ${slot} returned nothing`);
    return { consistentPoint: parseLsn(r.consistent_point), snapshotName: r.snapshot_name, connection };
  } catch (err) {
    await connection.end().catch(() => {});
    throw err;
  }
}

/** Drops the slot; waits for a walsender that is still letting go of it. */
export async function dropSlot(db: Queryable, slot: string): Promise<boolean> {
  for (let i = 0; ; i++) {
    try {
      const res = await db.query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`,
        [slot],
      );
      return (res.rowCount ?? 0) > 0;
    } catch (err) {
      if ((err as { code?: string }).code !== '55006' || i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Moves an inactive slot's confirmed position forward (used at shutdown, after the stream is
 * closed, so a position confirmed last is not lost with the connection). Never moves it back.
 */
export async function advanceSlot(
  db: Queryable,
  slot: string,
  lsn: bigint,
  fmt: (l: bigint) => string,
): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await db.query(
        `SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots
          WHERE slot_name = $1 AND confirmed_flush_lsn < $2::pg_lsn`,
        [slot, fmt(lsn)],
      );
      return;
    } catch (err) {
      // 55006: the walsender has not released the slot yet.
      if ((err as { code?: string }).code !== '55006' || i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
