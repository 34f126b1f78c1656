/**
 * Failover slots (PostgreSQL 17+): a logical slot with `failover = true` is copied to physical
 * standbys that run `sync_replication_slots = on`, so after a promotion the bridge streams from the
 * synchronized position instead of re-syncing everything. `synchronized_standby_slots` on the
 * primary makes the walsender hold changes back until those standbys have them, so the platform is
 * never ahead of a promoted standby (PostgreSQL docs, "Logical Replication Failover").
 *
 * The flag is set when the slot is created (CREATE_REPLICATION_SLOT is the only way to get the
 * exported snapshot, so it carries `FAILOVER true` itself), or on an existing slot with
 * ALTER_REPLICATION_SLOT on a replication connection, which the server refuses while a walsender
 * holds the slot.
 */
import pg from 'pg';
import type { Config } from '../config/types.js';
import { SetupError } from '../errors.js';
import type { Finding } from './finding.js';
import { whenSlotFree } from './slot.js';
import { quoteIdent } from '../util/sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The first major with failover slots. */
export const FAILOVER_MAJOR = 17;

export type FailoverSetting = Config['postgres']['failover'];

/** A standby's physical slot named in `synchronized_standby_slots`, as the primary sees it. */
export interface StandbySlot {
  name: string;
  exists: boolean;
  /** A standby is connected through it (streaming). */
  active: boolean;
}

/** What decides whether the bridge's slot survives a promotion, read on the primary. */
export interface FailoverState {
  /** server_version_num, e.g. 170004. */
  versionNum: number;
  /** The slot's `failover` flag: null when the slot does not exist or the server is older than 17. */
  slotFailover: boolean | null;
  /** `synchronized_standby_slots`, parsed (empty: not set). */
  standbySlots: StandbySlot[];
  /** Standbys' slot sync workers connected to this primary (null: before 17, or hidden from this role). */
  syncWorkers: number | null;
  /** The slot is a failover slot and every standby slot named exists and streams. */
  ready: boolean;
}

/** Whether the bridge makes its slot a failover slot on this server; `on` before 17 is an error. */
export function wantsFailover(setting: FailoverSetting, versionNum: number): boolean {
  const supported = versionNum >= FAILOVER_MAJOR * 10_000;
  if (setting === 'on' && !supported)
    throw new SetupError(
      'FAILOVER_UNSUPPORTED',
      `postgres.failover is on, but failover slots need PostgreSQL ${FAILOVER_MAJOR} or later (this server runs ${formatVersion(versionNum)}); set postgres.failover: auto (or off)`,
    );
  return setting !== 'off' && supported;
}

export function formatVersion(versionNum: number): string {
  return `${Math.floor(versionNum / 10_000)}.${versionNum % 10_000}`;
}

export async function serverVersionNum(db: Queryable): Promise<number> {
  const res = await db.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Number(res.rows[0]?.v ?? 0);
}

/**
 * Sets the slot's failover flag on a replication connection. The server refuses while a walsender
 * holds the slot (55006): one that is letting go is waited for.
 */
export async function setSlotFailover(
  clientConfig: pg.ClientConfig,
  slot: string,
  failover: boolean,
): Promise<void> {
  const connection = new pg.Client({ ...clientConfig, replication: 'database' } as pg.ClientConfig);
  connection.on('error', () => {});
  await connection.connect();
  try {
    await whenSlotFree(() =>
      connection.query(
        `ALTER_REPLICATION_SLOT ${quoteIdent(slot)} (FAILOVER ${failover ? 'true' : 'false'})`,
      ),
    );
  } finally {
    await connection.end().catch(() => {});
  }
}

/** Reads the failover state of `slot` on the server `db` is connected to. */
export async function readFailoverState(db: Queryable, slot: string): Promise<FailoverState> {
  const versionNum = await serverVersionNum(db);
  if (versionNum < FAILOVER_MAJOR * 10_000)
    return { versionNum, slotFailover: null, standbySlots: [], syncWorkers: null, ready: false };
  const res = await db.query<{ failover: boolean | null; names: string }>(
    `SELECT (SELECT failover FROM pg_replication_slots WHERE slot_name = $1) AS failover,
            current_setting('synchronized_standby_slots') AS names`,
    [slot],
  );
  const row = res.rows[0];
  const names = (row?.names ?? '')
    .split(',')
    .map((n) => n.trim().replace(/^"(.*)"$/, '$1'))
    .filter((n) => n.length > 0);
  const slots = await db.query<{ slot_name: string; active: boolean }>(
    `SELECT slot_name, active FROM pg_replication_slots WHERE slot_name = ANY($1::text[])`,
    [names],
  );
  const found = new Map(slots.rows.map((r) => [r.slot_name, r.active]));
  const standbySlots = names.map((name) => ({
    name,
    exists: found.has(name),
    active: found.get(name) === true,
  }));
  // A standby's slot sync worker is a plain session to the dbname of its primary_conninfo, named
  // by that conninfo's application_name (as its walreceiver is), else "<cluster_name>_slotsync
  // worker" or "slotsync worker". Other roles' backend_type shows only with pg_read_all_stats.
  const workers = await db.query<{ n: string; hidden: boolean }>(
    `SELECT count(*) FILTER (WHERE a.backend_type = 'client backend' AND (a.application_name LIKE '%slotsync worker'
              OR a.application_name IN (SELECT application_name FROM pg_stat_replication WHERE application_name <> '')))::text AS n,
            coalesce(bool_or(a.backend_type IS NULL), false) AS hidden
       FROM pg_stat_activity a`,
  );
  const seen = Number(workers.rows[0]?.n ?? 0);
  const slotFailover = row?.failover ?? null;
  return {
    versionNum,
    slotFailover,
    standbySlots,
    syncWorkers: seen === 0 && workers.rows[0]?.hidden ? null : seen,
    ready: slotFailover === true && standbySlots.length > 0 && standbySlots.every((s) => s.active),
  };
}

const STANDBY_SETUP =
  "on each standby: sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name = '<its physical slot>', and dbname=<a database> in primary_conninfo";

/**
 * What `check` says about failover: the server's version, the slot's flag, the primary's
 * `synchronized_standby_slots` and the standbys it names. Only `failover: on` on a server without
 * failover slots fails: everything else is a warning, since a database without standbys is fine.
 */
export async function failoverFindings(db: Queryable, config: Config): Promise<Finding[]> {
  const { failover, slot, onSlotLost } = config.postgres;
  const st = await readFailoverState(db, slot);
  const version = formatVersion(st.versionNum);
  const lost =
    onSlotLost === 'resync'
      ? 'the bridge then re-syncs every source from a new slot (onSlotLost: resync)'
      : 'the bridge then stops until `tuzhan-cdc run --resync` (onSlotLost: stop)';
  if (st.versionNum < FAILOVER_MAJOR * 10_000) {
    return [
      {
        check: 'failover',
        ok: failover !== 'on',
        warn: true,
        detail: `${failover === 'on' ? 'postgres.failover is on, but ' : ''}PostgreSQL ${version} has no failover slots: a failover to a standby loses the slot, and ${lost}`,
        fix:
          failover === 'on'
            ? `set postgres.failover: auto or off, or upgrade to PostgreSQL ${FAILOVER_MAJOR}+`
            : `upgrade to PostgreSQL ${FAILOVER_MAJOR}+ for failover slots (or use the managed service's own slot failover: docs/operations.md)`,
      },
    ];
  }
  const findings: Finding[] = [];
  const flag =
    st.slotFailover === true
      ? { ok: true, detail: `slot ${slot} is a failover slot (PostgreSQL ${version})` }
      : failover === 'off'
        ? {
            ok: true,
            warn: true,
            detail: `slot ${slot} is ${st.slotFailover === null ? 'created' : 'kept'} without failover (postgres.failover: off): a failover loses it, and ${lost}`,
            fix: 'set postgres.failover: auto',
          }
        : {
            ok: true,
            detail:
              st.slotFailover === null
                ? `slot ${slot} will be created as a failover slot (PostgreSQL ${version})`
                : `slot ${slot} is not a failover slot yet: the bridge sets failover at its next start`,
          };
  findings.push({ check: 'failover: slot', ...flag });
  if (st.standbySlots.length === 0) {
    findings.push({
      check: 'failover: standbys',
      ok: true,
      warn: true,
      detail:
        'synchronized_standby_slots is not set: the bridge may receive changes a standby does not have yet, and a promoted standby may hold neither them nor the slot',
      fix: `on the primary: ALTER SYSTEM SET synchronized_standby_slots = '<standby's physical slot>'; SELECT pg_reload_conf(); ${STANDBY_SETUP}`,
    });
  } else {
    const missing = st.standbySlots.filter((s) => !s.active);
    findings.push({
      check: 'failover: standbys',
      ok: true,
      ...(missing.length > 0 ? { warn: true } : {}),
      detail:
        missing.length === 0
          ? `synchronized_standby_slots: ${st.standbySlots.map((s) => s.name).join(', ')} (standbys streaming)`
          : `synchronized_standby_slots names ${missing.map((s) => `${s.name} (${s.exists ? 'no standby streams from it' : 'no such slot'})`).join(', ')}: the bridge receives no changes until that standby has them`,
      ...(missing.length > 0
        ? {
            fix: `start the standby, or remove its slot from synchronized_standby_slots on the primary; ${STANDBY_SETUP}`,
          }
        : {}),
    });
  }
  findings.push({
    check: 'failover: slot sync',
    ok: true,
    ...(st.syncWorkers === 0 ? { warn: true, fix: STANDBY_SETUP } : {}),
    detail:
      st.syncWorkers === null
        ? 'cannot see whether a standby synchronizes slots: this role may not see other sessions (GRANT pg_read_all_stats shows them); on a standby: SELECT slot_name, synced FROM pg_replication_slots'
        : st.syncWorkers === 0
          ? 'no standby synchronizes slots from this primary (no slot sync worker is connected)'
          : `${st.syncWorkers} standby slot sync worker(s) connected; on a standby, SELECT slot_name, synced FROM pg_replication_slots shows the slot synchronized`,
  });
  return findings;
}

/** The failover readiness line the daemon logs at start. */
export function describeFailover(st: FailoverState, slot: string): string {
  if (st.versionNum < FAILOVER_MAJOR * 10_000)
    return `PostgreSQL ${formatVersion(st.versionNum)} has no failover slots: a failover loses slot ${slot}`;
  if (st.ready) return `slot ${slot} can fail over to ${st.standbySlots.map((s) => s.name).join(', ')}`;
  if (st.slotFailover !== true) return `slot ${slot} is not a failover slot`;
  return `slot ${slot} is a failover slot, but no standby in synchronized_standby_slots streams: see tuzhan-cdc check`;
}
