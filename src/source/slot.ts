/**
 * Publication and replication slot management. The replication library interpolates slot and
 * publication names raw, so config validation restricts them to plain names; here every name is
 * still quoted with the one helper.
 */
import pg from 'pg';
import type { SourceConfig } from '../config/types.js';
import { SetupError } from '../errors.js';
import { parseLsn } from '../util/lsn.js';
import { markPublicationSql } from './publication-use.js';
import { RETRY, retry } from '../util/retry.js';
import { quoteIdent, quoteTable } from '../util/sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** What the bridge needs a publication to publish: every row change and TRUNCATE. */
const PUBLISH = 'insert, update, delete, truncate';

/** The state of an existing publication, compared with what the sources need. */
export interface PublicationState {
  allTables: boolean;
  /** It holds exactly the source tables, whole (no schema entries, row filters or column lists). */
  holdsSources: boolean;
  /** It publishes inserts, updates, deletes and truncates. */
  publishesAll: boolean;
}

/**
 * Reads the publication, or null when it does not exist. `pg_publication_rel` rather than the
 * `pg_publication_tables` view: the view lists a partitioned table's partitions and a schema
 * entry's tables, the catalog what was put into the publication. Row filters and column lists
 * (PostgreSQL 15+, read through to_jsonb so older servers need no other query) would hide changes.
 */
export async function readPublication(
  db: Queryable,
  publication: string,
  sources: readonly SourceConfig[],
): Promise<PublicationState | null> {
  const pub = await db.query<{
    oid: number;
    puballtables: boolean;
    publishes_all: boolean;
    schemas: boolean;
  }>(
    `SELECT p.oid::int AS oid, p.puballtables,
            p.pubinsert AND p.pubupdate AND p.pubdelete AND coalesce((to_jsonb(p) ->> 'pubtruncate')::boolean, true)
              AS publishes_all,
            to_regclass('pg_catalog.pg_publication_namespace') IS NOT NULL AS schemas
       FROM pg_publication p WHERE p.pubname = $1`,
    [publication],
  );
  const p = pub.rows[0];
  if (!p) return null;
  const rels = await db.query<{ schema: string; name: string; narrowed: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS name,
            (to_jsonb(r) ->> 'prqual') IS NOT NULL OR (to_jsonb(r) ->> 'prattrs') IS NOT NULL AS narrowed
       FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE r.prpubid = $1`,
    [p.oid],
  );
  const schemaEntries = p.schemas
    ? Number(
        (
          await db.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM pg_catalog.pg_publication_namespace WHERE pnpubid = $1`,
            [p.oid],
          )
        ).rows[0]?.n ?? 0,
      )
    : 0;
  const held = new Set(rels.rows.map((r) => JSON.stringify([r.schema, r.name])));
  const wanted = new Set(sources.map((s) => JSON.stringify([s.schema, s.tableName])));
  const holdsSources =
    !p.puballtables &&
    schemaEntries === 0 &&
    rels.rows.every((r) => !r.narrowed) &&
    held.size === wanted.size &&
    [...wanted].every((t) => held.has(t));
  return { allTables: p.puballtables, holdsSources, publishesAll: p.publishes_all };
}

/**
 * Creates the publication, or alters it to hold exactly the source tables. A publication that holds
 * them already is left alone: `ALTER PUBLICATION ... SET TABLE` needs the ownership of every table,
 * which a bridge whose DBA created the publication for it does not have (and does not need).
 */
export async function ensurePublication(
  db: Queryable,
  publication: string,
  sources: readonly SourceConfig[],
): Promise<void> {
  const tables = [...new Set(sources.map((s) => quoteTable(s.schema, s.tableName)))].join(', ');
  const state = await readPublication(db, publication, sources);
  if (!state) {
    // One simple query, so one transaction: the publication never exists without the mark that
    // lets `teardown` tell it from one a DBA made.
    await db.query(
      `CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${tables}; ${markPublicationSql(publication)}`,
    );
    return;
  }
  if (!state.holdsSources) await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} SET TABLE ${tables}`);
  // The owner may change what is published without owning the tables: deletes must not go missing.
  if (!state.publishesAll)
    await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} SET (publish = '${PUBLISH}')`);
}

/** Everything about a slot, as pg_replication_slots tells it. */
export interface SlotState {
  name: string;
  plugin: string;
  /** The database the slot belongs to (slot names are server-wide). */
  database: string;
  active: boolean;
  activePid: number | null;
  confirmedFlushLsn: bigint | null;
  /** WAL the slot keeps: bytes from its confirmed position to the server's current position. */
  lagBytes: number | null;
  /** reserved, extended, unreserved, or lost (the server removed WAL the slot needs). */
  walStatus: string | null;
  /** Bytes that can still be written before the slot is in danger of `lost` (null: no limit). */
  safeWalSize: number | null;
  /** Whether the slot follows a failover to a standby (PostgreSQL 17+; null before). */
  failover: boolean | null;
}

/**
 * The slot's whole state, or null when it does not exist: one query for the daemon, `check`,
 * `status`, `teardown` and the demo. `to_jsonb(s)` reads the columns newer servers have
 * (wal_status, safe_wal_size: PostgreSQL 13+; failover: 17+) without failing where they are missing.
 */
export async function readSlot(db: Queryable, slot: string): Promise<SlotState | null> {
  const res = await db.query<{
    plugin: string;
    database: string;
    active: boolean;
    active_pid: number | null;
    lsn: string | null;
    lag: string | null;
    wal_status: string | null;
    safe_wal_size: string | null;
    failover: string | null;
  }>(
    `SELECT s.plugin, s.database, s.active, s.active_pid, s.confirmed_flush_lsn::text AS lsn,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::text AS lag,
            to_jsonb(s) ->> 'wal_status' AS wal_status, to_jsonb(s) ->> 'safe_wal_size' AS safe_wal_size,
            to_jsonb(s) ->> 'failover' AS failover
       FROM pg_replication_slots s WHERE s.slot_name = $1`,
    [slot],
  );
  const r = res.rows[0];
  if (!r) return null;
  return {
    name: slot,
    plugin: r.plugin,
    database: r.database,
    active: r.active,
    activePid: r.active_pid,
    confirmedFlushLsn: r.lsn ? parseLsn(r.lsn) : null,
    lagBytes: r.lag === null ? null : Number(r.lag),
    walStatus: r.wal_status,
    safeWalSize: r.safe_wal_size === null ? null : Number(r.safe_wal_size),
    failover: r.failover === null ? null : r.failover === 'true',
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
  options: { failover?: boolean } = {},
): Promise<CreatedSlot> {
  const connection = new pg.Client({ ...clientConfig, replication: 'database' } as pg.ClientConfig);
  // The connection idles while the snapshot is read elsewhere: a server shutdown then arrives as an
  // 'error' event, which without a listener crashes the process. The snapshot was imported by then.
  connection.on('error', () => {});
  await connection.connect();
  try {
    // The option list (PostgreSQL 15+) is needed for FAILOVER (17+); older servers keep the old form.
    const res = await connection.query<{ consistent_point: string; snapshot_name: string }>(
      options.failover
        ? `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER true)`
        : `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
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
  const res = await whenSlotFree(() =>
    db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [
      slot,
    ]),
  );
  return (res.rowCount ?? 0) > 0;
}

/** Runs `fn` again while the slot is still held by a walsender letting go of it (55006). */
export function whenSlotFree<T>(fn: () => Promise<T>): Promise<T> {
  return retry(fn, {
    policy: (err) => ((err as { code?: string }).code === '55006' ? RETRY.slotBusy : undefined),
  });
}

/**
 * Ends the slot's walsender and drops the slot. A bridge (or its standby) reconnects within
 * moments and may hold the slot again before the drop: end whoever holds it until the drop wins.
 */
export async function terminateAndDropSlot(db: Queryable, slot: string): Promise<void> {
  await whenSlotFree(async () => {
    await db.query(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
      [slot],
    );
    await db.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    );
  });
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
  await whenSlotFree(() =>
    db.query(
      `SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots
        WHERE slot_name = $1 AND confirmed_flush_lsn < $2::pg_lsn`,
      [slot, fmt(lsn)],
    ),
  );
}
