/**
 * Where a start streams from. A slot whose first-start snapshot finished resumes at its confirmed
 * position; otherwise the slot is (re)created with an exported snapshot, the rows that already
 * exist are synced through the same buffers as the stream (SPEC section 8), and streaming starts
 * at the slot's consistent point. Progress is kept in `<statusSchema>.bridge_state`.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Batcher } from './batching/batcher.js';
import type { SourceRuntime } from './batching/dispatcher.js';
import type { SentMark } from './status/sent-mark.js';
import type { Config } from './config/types.js';
import { SetupError } from './errors.js';
import { toSourceChanges } from './mapping/changes.js';
import { createSlotWithSnapshot, dropSlot, slotInfo } from './source/slot.js';
import { readSnapshot } from './source/snapshot.js';
import { formatLsn } from './util/lsn.js';
import { pgClientConfig } from './util/pg-connection.js';
import { guardCheckedOut, quoteIdent } from './util/sql.js';

export interface PrepareSlotOptions {
  pool: pg.Pool;
  config: Config;
  runtimes: ReadonlyMap<string, SourceRuntime>;
  batcher: Batcher;
  sent: SentMark;
  logger: Logger;
}

/** Resumes or creates the slot (syncing the snapshot); resolves with the position to start from. */
export async function prepareSlot(o: PrepareSlotOptions): Promise<bigint> {
  const { slot, statusSchema } = o.config.postgres;
  const stateTable = `${quoteIdent(statusSchema)}.bridge_state`;
  const info = await slotInfo(o.pool, slot);
  const currentDb = (await o.pool.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db;
  if (info && info.database !== currentDb) {
    throw new SetupError(
      'SLOT_ELSEWHERE',
      `replication slot ${slot} belongs to database ${info.database}; choose another postgres.slot`,
    );
  }
  const state = await o.pool.query<{ done: boolean }>(
    `SELECT snapshot_done_at IS NOT NULL AS done FROM ${stateTable} WHERE slot = $1`,
    [slot],
  );
  if (info && state.rows[0]?.done) {
    const confirmed = info.confirmedFlushLsn ?? 0n;
    await o.sent.load(
      o.config.sources.map((s) => s.name),
      true,
    );
    o.logger.info({ slot, confirmed: formatLsn(confirmed) }, 'resuming from the slot');
    return confirmed;
  }
  if (info) {
    // A snapshot that never finished: nothing was confirmed past the consistent point, so start over.
    o.logger.warn({ slot }, 'the first-start snapshot did not finish; recreating the slot');
    await dropSlot(o.pool, slot);
  }
  await o.sent.load(
    o.config.sources.map((s) => s.name),
    false,
  );
  const created = await createSlotWithSnapshot(
    pgClientConfig(o.config.postgres, 'tuzhan-cdc snapshot'),
    slot,
  );
  const started = Date.now();
  let rows = 0;
  try {
    await o.pool.query(
      `INSERT INTO ${stateTable} (slot, snapshot_lsn, snapshot_started_at) VALUES ($1, $2, now())
       ON CONFLICT (slot) DO UPDATE SET snapshot_lsn = EXCLUDED.snapshot_lsn, snapshot_started_at = now(),
         snapshot_done_at = NULL, snapshot_rows = NULL`,
      [slot, formatLsn(created.consistentPoint)],
    );
    o.logger.info(
      { slot, consistentPoint: formatLsn(created.consistentPoint) },
      'slot created; reading the snapshot',
    );
    const holder = { hold() {}, release() {} };
    let seq = 0;
    const client = await o.pool.connect();
    const unguard = guardCheckedOut(client);
    try {
      rows = await readSnapshot(
        client,
        created.snapshotName,
        [...o.runtimes.values()].map((rt) => ({ config: rt.config, columns: rt.mapper.columns })),
        {
          onRows: async (source, chunk) => {
            const rt = o.runtimes.get(source.name) as SourceRuntime;
            const commitTime = new Date();
            for (const row of chunk) {
              const changes = toSourceChanges(rt.mapper, {
                tag: 'insert',
                relation: undefined as never,
                new: row,
              });
              if ('error' in changes) continue;
              for (const c of changes) {
                // What the platform holds for an existing row is not known: its state is set (row
                // mode replaces the set), never added to.
                if (c.after) c.before = 'unknown';
                o.batcher.add(source.name, c, created.consistentPoint, seq++, commitTime, holder);
              }
              if (o.batcher.full) await o.batcher.waitForRoom();
            }
          },
        },
      );
    } finally {
      unguard();
      client.release();
    }
  } finally {
    await created.connection.end().catch(() => {});
  }
  await o.batcher.drain();
  await o.pool.query(
    `UPDATE ${stateTable} SET snapshot_done_at = now(), snapshot_rows = $2 WHERE slot = $1`,
    [slot, rows],
  );
  const seconds = (Date.now() - started) / 1000;
  o.logger.info(
    { slot, rows, seconds, rowsPerSec: Math.round(rows / Math.max(seconds, 0.001)) },
    'snapshot synced',
  );
  return created.consistentPoint;
}
