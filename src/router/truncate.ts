/**
 * TRUNCATE of a source table (docs/design.md, "TRUNCATE"): logged at warn, recorded in sync_batch,
 * then the source's `onTruncate`:
 *
 * - `resync` (the default): the source is re-synced as of the end of the truncating transaction, by
 *   a backfill job the daemon runs once that transaction is read (src/pipeline/backfill.ts): a
 *   reload in the same transaction streams as it was written, then the backfill restates what the
 *   table holds and removes only what it no longer holds, no group a live row of the source still
 *   holds for its customer, and all of it judged by the removal guard first (a TRUNCATE that
 *   empties a table is held for a person). Asked once per TRUNCATE, however often it is replayed.
 * - `ignore`: the platform keeps everything; the rows synced before are marked `skipped` with a
 *   note, so sync_status no longer says `synced` for rows the table does not have.
 * - `delete-all`: deletes of every key whose last outcome left groups on the platform, in the
 *   truncating transaction (the guard judges them with it).
 *
 * Changes buffered before the TRUNCATE reach the platform, and have their outcomes stored, first.
 */
import type { Logger } from 'pino';
import type { Batcher } from '../batching/batcher.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { findJob, requestJob } from '../status/jobs.js';
import type { StatusStore } from '../status/status-store.js';
import { imageFromPayload } from '../tuzhan/rows.js';
import { formatLsn } from '../util/lsn.js';
import type { Tx } from './positions.js';

export interface TruncateOptions {
  batcher: Batcher;
  store: StatusStore;
  logger: Logger;
  /** Where a re-sync is asked for (the daemon's jobs); without it, `resync` falls back to `ignore`. */
  jobs?: { slot: string; statusSchema: string };
}

/** Backfills read between watermarks: logical decoding messages, PostgreSQL 14 and later. */
const MESSAGES_FROM = 140000;

/** Handles one source table's TRUNCATE, at position `seq` of transaction `tx`; true when it asked for a re-sync. */
export async function truncateSource(
  o: TruncateOptions,
  rt: SourceRuntime,
  tx: Tx | undefined,
  seq: number,
): Promise<boolean> {
  const { name: source, table, onTruncate } = rt.config;
  o.logger.warn({ source, table, onTruncate }, 'source table truncated');
  await o.store.recordTruncate(source, `TRUNCATE ${table} (onTruncate: ${onTruncate})`);
  if (!tx) return false;
  const at = formatLsn(tx.commitLsn);
  if (onTruncate === 'resync' && (await resyncs(o))) {
    const { slot, statusSchema } = o.jobs as { slot: string; statusSchema: string };
    const reason = `TRUNCATE at ${at}`;
    const job = await o.store.run('asking for a re-sync', async (db) => {
      const found = await findJob(db, statusSchema, { slot, kind: 'backfill', source, reason });
      return found ?? (await requestJob(db, statusSchema, slot, { kind: 'backfill', source, reason }));
    });
    o.logger.info(
      { source, backfill: job },
      'the source is re-synced as of the end of its truncating transaction: what the table no longer holds is removed once the guard allows it',
    );
    return true;
  }
  // Changes before the TRUNCATE first: their outcomes stored, never overtaken.
  await o.batcher.drain({ settleOpen: true });
  if (onTruncate === 'delete-all') {
    for await (const page of o.store.syncedKeys(source)) {
      for (const k of page) {
        const key = { text: k.rowKey, values: JSON.parse(k.rowKey) as Record<string, unknown> };
        const change = { kind: 'delete' as const, key, before: imageFromPayload(k.payload), after: null };
        o.batcher.add(source, change, tx.commitLsn, seq, tx.commitTime, tx);
      }
      await o.batcher.waitForRoom();
    }
    return false;
  }
  const note = `the table was truncated at ${at} (onTruncate: ${onTruncate}): the row is gone; the platform keeps its groups`;
  const marked = await o.store.markTruncated(source, note, tx.commitLsn);
  o.logger.info(
    { source, rows: marked },
    'rows gone with the TRUNCATE marked skipped; the platform keeps them',
  );
  return false;
}

const versions = new WeakMap<StatusStore, Promise<number>>();

/** Whether a re-sync can run here; says why not when it cannot. */
async function resyncs(o: TruncateOptions): Promise<boolean> {
  if (!o.jobs) return false;
  let version = versions.get(o.store);
  if (!version) {
    version = o.store
      .run('reading the server version', (db) =>
        db.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`),
      )
      .then((r) => Number(r.rows[0]?.v ?? 0));
    versions.set(o.store, version);
  }
  if ((await version) >= MESSAGES_FROM) return true;
  o.logger.error(
    'onTruncate: resync needs PostgreSQL 14 or later (a backfill between watermarks); the rows are marked as for onTruncate: ignore',
  );
  return false;
}
