/**
 * Where a start streams from (docs/design.md, "First start and re-sync"). A slot whose snapshot finished resumes at its
 * confirmed position. Otherwise the slot is (re)created with an exported snapshot, every source is
 * synced from it (./snapshot-sync.ts), and streaming starts at the slot's consistent point.
 * Progress and the reason of each snapshot are kept in `<statusSchema>.bridge_state`.
 *
 * A slot that was streamed from but is gone, or that the server invalidated (`wal_status = lost`,
 * past `max_slot_wal_keep_size`), is never streamed past silently: the changes it no longer holds
 * cannot be read, so the start stops with the remedy, `run --resync`, unless the operator made that
 * automatic (`postgres.onSlotLost: resync`).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Batcher } from '../batching/batcher.js';
import type { BridgeEvents } from '../domain/events.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import type { Config } from '../config/types.js';
import { RESYNC_REMEDY, SetupError, errorMessage } from '../errors.js';
import { syncFromSnapshot } from './snapshot-sync.js';
import { setSlotFailover, serverVersionNum, wantsFailover } from '../source/failover.js';
import { createSlotWithSnapshot, dropSlot, readSlot, type SlotState } from '../source/slot.js';
import { requestBackfill } from '../status/jobs.js';
import type { SentMark } from '../status/sent-mark.js';
import type { StatusStore } from '../status/status-store.js';
import { formatLsn } from '../util/lsn.js';
import { pgClientConfig } from '../util/pg-connection.js';

export interface PrepareSlotOptions {
  pool: pg.Pool;
  store: StatusStore;
  config: Config;
  runtimes: ReadonlyMap<string, SourceRuntime>;
  batcher: Batcher;
  sent: SentMark;
  logger: Logger;
  events: BridgeEvents;
  /** `run --resync`: a new slot and a full re-sync, whatever state the old slot is in. */
  resync?: boolean;
  /** Aborted when the bridge stops: the snapshot stops reading. */
  signal?: AbortSignal;
}

/** A slot that cannot give the changes since its confirmed position. */
export function slotLostError(slot: string, what: string): SetupError {
  return new SetupError(
    'SLOT_LOST',
    `replication slot ${slot} ${what}: the changes since its last confirmed position cannot be read; run \`${RESYNC_REMEDY}\` to create a new slot and re-sync every source (or set postgres.onSlotLost: resync)`,
  );
}

/** Resumes or creates the slot (syncing the snapshot); resolves with the position to start from. */
export async function prepareSlot(o: PrepareSlotOptions): Promise<bigint> {
  const { slot, statusSchema, onSlotLost } = o.config.postgres;
  const sources = o.config.sources.map((s) => s.name);
  const sql = o.store.sql;
  const info = await readSlot(o.pool, slot);
  const currentDb = (await o.pool.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db;
  if (info && info.database !== currentDb) {
    throw new SetupError(
      'SLOT_ELSEWHERE',
      `replication slot ${slot} belongs to database ${info.database}; choose another postgres.slot`,
    );
  }
  const state = await o.pool.query<{ done: boolean }>(sql.snapshotState, [slot]);
  const synced = state.rows[0]?.done === true;
  const failover = wantsFailover(o.config.postgres.failover, await serverVersionNum(o.pool));

  let reason: string;
  if (o.resync) {
    reason = 'run --resync';
  } else if (synced && (!info || info.walStatus === 'lost')) {
    const what = info ? 'was invalidated by the server (wal_status lost)' : 'no longer exists';
    if (onSlotLost !== 'resync') throw slotLostError(slot, what);
    reason = `the slot ${what} (onSlotLost: resync)`;
    o.logger.warn({ slot, reason }, 're-syncing every source from a new slot');
  } else if (info && synced) {
    const confirmed = info.confirmedFlushLsn ?? 0n;
    await o.sent.load(sources, true);
    await backfillNewSources(o, sources);
    if (failover && info.failover === false) await makeFailoverSlot(o, info);
    o.logger.info({ slot, confirmed: formatLsn(confirmed) }, 'resuming from the slot');
    return confirmed;
  } else if (info) {
    // A snapshot that never finished: nothing was confirmed past the consistent point, so start over.
    o.logger.warn({ slot }, 'the snapshot did not finish; recreating the slot');
    reason = 'first start (again: the snapshot did not finish)';
  } else {
    reason = 'first start';
  }
  if (info) await dropSlot(o.pool, slot);

  await o.sent.load(sources, false);
  // A stop that came meanwhile: no slot is made for a snapshot that would not be read.
  o.signal?.throwIfAborted();
  const created = await createSlotWithSnapshot(
    pgClientConfig(o.config.postgres, 'tuzhan-cdc snapshot'),
    slot,
    { failover },
  );
  const started = Date.now();
  let rows = 0;
  try {
    await o.pool.query(sql.snapshotStarted, [slot, formatLsn(created.consistentPoint), reason]);
    o.logger.info(
      { slot, consistentPoint: formatLsn(created.consistentPoint), reason },
      'slot created; reading the snapshot',
    );
    rows = await syncFromSnapshot(
      {
        pool: o.pool,
        store: o.store,
        statusSchema,
        runtimes: o.runtimes,
        batcher: o.batcher,
        logger: o.logger,
        events: o.events,
        slot,
        signal: o.signal,
      },
      created,
    );
  } catch (err) {
    // E.g. a privilege taken away since the checks: a slot left behind would pin WAL until someone
    // notices. A stop keeps it (the next start recreates it anyway).
    await created.connection.end().catch(() => {});
    if (!o.signal?.aborted) {
      const dropped = await dropSlot(o.pool, slot).catch(() => false);
      o.logger.warn(
        { slot, dropped, err: errorMessage(err) },
        'the snapshot failed; the new slot is dropped',
      );
    }
    throw err;
  } finally {
    await created.connection.end().catch(() => {});
  }
  await o.sent.coverThrough(sources, created.consistentPoint);
  await o.pool.query(sql.snapshotDone, [slot, rows, sources]);
  const seconds = (Date.now() - started) / 1000;
  o.logger.info(
    { slot, rows, seconds, rowsPerSec: Math.round(rows / Math.max(seconds, 0.001)), reason },
    'snapshot synced',
  );
  return created.consistentPoint;
}

/**
 * An existing slot (made before 17, by an older bridge, or with `failover: off`) becomes a failover
 * slot. Nobody streams from it yet (this instance holds the leader lock and has not started): the
 * only moment ALTER_REPLICATION_SLOT is allowed. `failover: on` insists; `auto` goes on without.
 */
async function makeFailoverSlot(o: PrepareSlotOptions, info: SlotState): Promise<void> {
  try {
    await setSlotFailover(pgClientConfig(o.config.postgres, 'tuzhan-cdc failover'), info.name, true);
    o.logger.info(
      { slot: info.name },
      'the slot is now a failover slot: standbys that synchronize slots keep it',
    );
  } catch (err) {
    if (o.config.postgres.failover === 'on')
      throw new SetupError(
        'FAILOVER_ALTER',
        `cannot make replication slot ${info.name} a failover slot (postgres.failover: on): ${errorMessage(err)}`,
        { cause: err },
      );
    o.logger.warn(
      { slot: info.name, err: errorMessage(err) },
      'cannot make the slot a failover slot; streaming without (a failover to a standby would lose it)',
    );
  }
}

/**
 * Sources configured since the slot's snapshot have existing rows the stream will never carry: each
 * gets a backfill (run by the daemon while it streams), recorded so it is asked for once.
 */
async function backfillNewSources(o: PrepareSlotOptions, sources: readonly string[]): Promise<void> {
  const { slot } = o.config.postgres;
  const sql = o.store.sql;
  const res = await o.pool.query<{ sources: string[] }>(sql.coveredSources, [slot]);
  const covered = new Set(res.rows[0]?.sources ?? []);
  const fresh = sources.filter((s) => !covered.has(s));
  if (fresh.length === 0) return;
  for (const source of fresh) {
    const r = await requestBackfill(o.pool, o.config.postgres.statusSchema, slot, {
      source,
      filter: null,
      reason: 'new source',
    });
    o.logger.info(
      { source, backfill: r.id },
      'source new to the slot: its existing rows are backfilled while streaming',
    );
  }
  await o.pool.query(sql.coverSources, [slot, fresh]);
}
