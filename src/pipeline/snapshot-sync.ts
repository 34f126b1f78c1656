/**
 * Syncs every source from a slot's exported snapshot (docs/design.md, "First start and re-sync"): each existing row's state
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
import type { BridgeEvents } from '../domain/events.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { BridgeError } from '../errors.js';
import { imageFromPayload } from '../tuzhan/rows.js';
import type { SourceChange } from '../mapping/changes.js';
import type { Image } from '../mapping/source-mapper.js';
import type { Row } from '../decode/pgoutput.js';
import type { CreatedSlot } from '../source/slot.js';
import { estimateRows, readSnapshot } from '../source/snapshot.js';
import { ON_PLATFORM } from '../status/codes.js';
import { type LastSent, type StatusStore } from '../status/status-store.js';
import { guardCheckedOut } from '../util/sql.js';
import { staleChanges } from './stale-pass.js';

export interface SnapshotSyncOptions {
  pool: pg.Pool;
  store: StatusStore;
  statusSchema: string;
  runtimes: ReadonlyMap<string, SourceRuntime>;
  batcher: Batcher;
  logger: Logger;
  events: BridgeEvents;
  slot: string;
  /** Aborted when the bridge stops: reading stops (the next start takes a new snapshot). */
  signal?: AbortSignal;
}

/** Reports a snapshot's progress: every chunk in the metrics, every few seconds in the log and bridge_state. */
class SnapshotProgress {
  private readonly done = new Map<string, number>();
  private all = 0;
  private last = Date.now();

  constructor(private readonly o: SnapshotSyncOptions) {}

  async chunk(source: string, rows: number, total: number): Promise<void> {
    const done = (this.done.get(source) ?? 0) + rows;
    this.done.set(source, done);
    this.all += rows;
    this.o.events.emit('progress', { source, kind: 'snapshot', done, total });
    if (Date.now() - this.last < 5000) return;
    this.last = Date.now();
    this.o.logger.info({ source, rows: done, total }, 'snapshot progress');
    await this.o.pool.query(this.o.store.sql.snapshotProgress, [this.o.slot, this.all]).catch(() => {});
  }
}

/** The snapshot's rows are not held by a transaction: nothing to confirm before the consistent point. */
const NO_HOLDER = { hold() {}, release() {} };

/** Reads and syncs every source; resolves with the rows read, once every outcome is stored. */
export async function syncFromSnapshot(o: SnapshotSyncOptions, created: CreatedSlot): Promise<number> {
  const lsn = created.consistentPoint;
  const commitTime = new Date();
  let seq = 0;
  // Runs for every row: a promise (and an await) only when the buffers are full, not per row.
  const add = (rt: SourceRuntime, change: SourceChange): Promise<void> | undefined => {
    if (o.signal?.aborted) throw new BridgeError('STOPPED', 'stopped during the snapshot');
    o.batcher.add(rt.config.name, change, lsn, seq++, commitTime, NO_HOLDER);
    return o.batcher.full ? o.batcher.waitForRoom() : undefined;
  };
  const known = new Set<string>();
  for (const rt of o.runtimes.values()) if (await o.store.hasRows(rt.config.name)) known.add(rt.config.name);

  // Rows done and the planner's estimate per source, in the log, the metrics and bridge_state.
  const totals = new Map<string, number>();
  for (const rt of o.runtimes.values())
    totals.set(
      rt.config.name,
      await estimateRows(o.pool, { schema: rt.config.schema, name: rt.config.tableName }),
    );
  const snapshotTotal = (rt: SourceRuntime): number => totals.get(rt.config.name) ?? 0;
  const progress = new SnapshotProgress(o);

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
          if (known.has(source.name)) {
            for (const c of await restate(rt, chunk, o.store)) {
              const room = add(rt, c);
              if (room) await room;
            }
          } else {
            // Nothing stored to read first: each row goes on as it is mapped, so no array of the
            // chunk's changes is kept alive while the buffers make room (a first start's snapshot).
            for (const row of chunk) {
              const c = restatedRow(rt, row);
              const room = c?.after ? add(rt, c) : undefined;
              if (room) await room;
            }
          }
          await progress.chunk(source.name, chunk.length, snapshotTotal(rt));
        },
        onSourceDone: async (source, snapshotClient) => {
          if (!known.has(source.name)) return;
          const rt = o.runtimes.get(source.name) as SourceRuntime;
          let removed = 0;
          const what = 'a re-sync from a new slot';
          for await (const page of staleChanges({
            db: snapshotClient,
            statusSchema: o.statusSchema,
            rt,
            what,
          })) {
            for (const change of page) {
              removed += 1;
              const room = add(rt, change);
              if (room) await room;
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

/**
 * Source rows read to re-sync them, as changes that set their state on the platform: what
 * sync_status says the platform holds for a key is its `before` (so an identity or pair it no
 * longer has is removed); without a record, `unknown` (the state is set, never added to).
 */
export async function restate(
  rt: SourceRuntime,
  rows: readonly Row[],
  store: Pick<StatusStore, 'lastSent'> | undefined,
): Promise<SourceChange[]> {
  // One change object per row, its `before` filled in below (runs for every row of a snapshot).
  const changes: SourceChange[] = [];
  for (const row of rows) {
    const c = restatedRow(rt, row);
    // Without a record, a row outside the filter has nothing to set or remove.
    if (c && (store || c.after !== null)) changes.push(c);
  }
  if (!store) return changes;
  const stored = await store.lastSent(
    rt.config.name,
    changes.map((c) => c.key.text),
  );
  return changes.filter((c) => {
    const before = onPlatform(stored.get(c.key.text));
    if (before) c.before = before;
    return c.before !== null || c.after !== null;
  });
}

/** A row read to re-sync it, as a change without a record of it: its state set; undefined without a key. */
function restatedRow(rt: SourceRuntime, row: Row): SourceChange | undefined {
  const key = rt.mapper.keyOf(row);
  if (!key) return undefined;
  const after = rt.mapper.passes(row) === false ? null : rt.mapper.image(row);
  return { kind: 'insert', key, before: after ? 'unknown' : null, after, restate: true };
}

/**
 * What an earlier sync left on the platform for a key, as far as sync_status knows (ON_PLATFORM: a
 * failed key's payload counts too, else what the platform holds would stay under a `synced` restate).
 */
function onPlatform(last: LastSent | undefined): Image | undefined {
  if (!last || last.op === 'delete' || !last.payload) return undefined;
  if (!ON_PLATFORM.has(last.status)) return undefined;
  return imageFromPayload(last.payload);
}
