/**
 * Syncs every source from a slot's exported snapshot (SPEC section 8): each existing row's state
 * is set on the platform (row mode replaces the customer's set, membership mode adds the pair),
 * through the same buffers as the stream, so nothing is missed or sent twice between the snapshot
 * and the stream.
 *
 * When sync_status already knows a source (a re-sync after `teardown`, `run --resync`, or a lost
 * slot), it also says what the platform holds: that is each row's `before`, so an identity or pair
 * that changed while nothing was streamed is removed, and every key the table no longer holds is
 * deleted (issue 15: a re-sync removes too).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Batcher } from '../batching/batcher.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { BridgeError } from '../errors.js';
import { imageFromPayload } from '../tuzhan/rows.js';
import type { Before, SourceChange } from '../mapping/changes.js';
import type { Image, RowKey } from '../mapping/source-mapper.js';
import type { CreatedSlot } from '../source/slot.js';
import { readSnapshot } from '../source/snapshot.js';
import { canonicalKey, type LastSent, type StatusStore } from '../status/status-store.js';
import { statusSql } from '../status/sql.js';
import { guardCheckedOut } from '../util/sql.js';

export interface SnapshotSyncOptions {
  pool: pg.Pool;
  store: StatusStore;
  statusSchema: string;
  runtimes: ReadonlyMap<string, SourceRuntime>;
  batcher: Batcher;
  logger: Logger;
  /** Aborted when the bridge stops: reading stops (the next start takes a new snapshot). */
  signal?: AbortSignal;
}

/** The snapshot's rows are not held by a transaction: nothing to confirm before the consistent point. */
const NO_HOLDER = { hold() {}, release() {} };
const STALE_PAGE = 1000;

/** Reads and syncs every source; resolves with the rows read, once every outcome is stored. */
export async function syncFromSnapshot(o: SnapshotSyncOptions, created: CreatedSlot): Promise<number> {
  const lsn = created.consistentPoint;
  const commitTime = new Date();
  let seq = 0;
  const add = async (rt: SourceRuntime, change: SourceChange): Promise<void> => {
    if (o.signal?.aborted) throw new BridgeError('STOPPED', 'stopped during the snapshot');
    o.batcher.add(rt.config.name, change, lsn, seq++, commitTime, NO_HOLDER);
    if (o.batcher.full) await o.batcher.waitForRoom();
  };
  const known = new Set<string>();
  for (const rt of o.runtimes.values()) if (await o.store.hasRows(rt.config.name)) known.add(rt.config.name);

  const client = await o.pool.connect();
  const unguard = guardCheckedOut(client);
  let rows: number;
  try {
    rows = await readSnapshot(
      client,
      created.snapshotName,
      [...o.runtimes.values()].map((rt) => ({ config: rt.config, columns: rt.mapper.columns })),
      {
        onRows: async (source, chunk) => {
          const rt = o.runtimes.get(source.name) as SourceRuntime;
          const keyed = chunk.flatMap((row) => {
            const key = rt.mapper.keyOf(row);
            if (!key) return [];
            const after = rt.mapper.passes(row) === false ? null : rt.mapper.image(row);
            return [{ key, after }];
          });
          const stored = known.has(source.name)
            ? await o.store.lastSent(
                source.name,
                keyed.map((k) => k.key.text),
              )
            : undefined;
          for (const { key, after } of keyed) {
            // Without a record, what the platform holds is not known: its state is set, never added to.
            const before: Before = onPlatform(stored?.get(key.text)) ?? (after ? 'unknown' : null);
            if (before === null && after === null) continue;
            await add(rt, { kind: 'insert', key, before, after, restate: true });
          }
        },
        onSourceDone: async (source, snapshotClient) => {
          if (!known.has(source.name)) return;
          const rt = o.runtimes.get(source.name) as SourceRuntime;
          let removed = 0;
          for await (const page of staleKeys(snapshotClient, o.statusSchema, rt)) {
            for (const s of page) {
              removed += 1;
              await add(rt, { kind: 'delete', key: s.key, before: s.image, after: null });
            }
          }
          if (removed > 0)
            o.logger.info(
              { source: source.name, rows: removed },
              'removing from the platform what the table no longer holds',
            );
        },
      },
    );
  } finally {
    unguard();
    client.release();
  }
  await o.batcher.drain();
  return rows;
}

/** What an earlier sync left on the platform for a key, as far as sync_status knows. */
function onPlatform(last: LastSent | undefined): Image | undefined {
  if (!last || last.op === 'delete' || !last.payload) return undefined;
  if (last.status !== 'synced' && last.status !== 'accepted' && last.status !== 'retrying') return undefined;
  return imageFromPayload(last.payload);
}

/**
 * Keys sync_status says are on the platform but the source table no longer holds, read in the
 * snapshot's transaction (so "no longer" means "not at the slot's consistent point"), page by page
 * in key order. Stored keys are compared with rows in the key columns' own types, through the
 * table's key index.
 */
async function* staleKeys(
  client: pg.ClientBase,
  statusSchema: string,
  rt: SourceRuntime,
): AsyncGenerator<Array<{ key: RowKey; image: Image }>> {
  const keyColumns = rt.mapper.keyColumns;
  const table = { schema: rt.config.schema, name: rt.config.tableName };
  const sql = statusSql(statusSchema).staleKeys(table, keyColumns, rt.keyTypes, STALE_PAGE);
  let after: string | null = null;
  for (;;) {
    const res: pg.QueryResult<{ k: string; payload: Record<string, unknown> }> = await client.query(sql, [
      rt.config.name,
      after,
      ...keyColumns,
    ]);
    if (res.rows.length === 0) return;
    yield res.rows.map((r) => {
      const text = canonicalKey(r.k);
      return {
        key: { text, values: JSON.parse(text) as Record<string, unknown> },
        image: imageFromPayload(r.payload),
      };
    });
    after = (res.rows[res.rows.length - 1] as { k: string }).k;
    if (res.rows.length < STALE_PAGE) return;
  }
}
