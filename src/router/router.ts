/**
 * pgoutput messages -> sources. Tracks each transaction from BEGIN to COMMIT for the position
 * tracker, numbers its row changes (a change's position, the same on every replay), hands each row
 * change of a source table to the buffers, checks relation messages against the mapped columns, and
 * handles TRUNCATE. Returns a promise only when the stream must wait (backpressure, TRUNCATE).
 */
import type { Logger } from 'pino';
import type { Batcher } from '../batching/batcher.js';
import type { Relation, ChangeMessage } from '../decode/pgoutput.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { RESYNC_REMEDY, SetupError } from '../errors.js';
import { toSourceChanges } from '../mapping/changes.js';
import { mappedColumns } from '../mapping/columns.js';
import type { PositionTracker, Tx } from './positions.js';
import type { StatusStore } from '../status/status-store.js';
import { formatLsn } from '../util/lsn.js';
import { PendingResyncs } from './pending-resyncs.js';
import { truncateSource, type TruncateOptions } from './truncate.js';
import { WATERMARK_PREFIX, type Watermarks } from './watermarks.js';

export interface RouterOptions extends TruncateOptions {
  runtimes: ReadonlyMap<string, SourceRuntime>;
  batcher: Batcher;
  store: StatusStore;
  tracker: () => PositionTracker;
  watermarks: Watermarks;
  logger: Logger;
  /** Changes of a source that left what the platform sees as it was (counted per transaction). */
  onUnchanged?(source: string, count: number): void;
}

export class Router {
  private readonly byTable = new Map<string, SourceRuntime>();
  /** byTable by the decoder's relation objects (one per relation message), saving a string per row. */
  private readonly byRelation = new WeakMap<Relation, SourceRuntime | null>();
  private tx: Tx | undefined;
  /** Row changes seen so far in the current transaction: a change's index, the same on replay. */
  private txSeq = 0;
  /** Unchanged updates of the current transaction per source, counted at its commit. */
  private readonly unchanged = new Map<SourceRuntime, number>();
  /**
   * Sources truncated in the current transaction with `onTruncate: resync`: a reload after the
   * TRUNCATE sets rows the platform may still hold, so an insert's `before` is what the bridge last
   * recorded as sent for the key (a group the reload left out of a row is removed), not nothing.
   */
  private readonly truncated = new Set<SourceRuntime>();
  /** Sources whose re-sync a TRUNCATE asked for has not finished: their inserts too (./pending-resyncs.ts). */
  private readonly resyncing: PendingResyncs;

  constructor(private readonly o: RouterOptions) {
    for (const rt of o.runtimes.values()) this.byTable.set(`${rt.config.schema}.${rt.config.tableName}`, rt);
    this.resyncing = new PendingResyncs({ store: o.store, jobs: o.jobs });
  }

  /** Whether a transaction's BEGIN came and its COMMIT not yet. */
  get inTransaction(): boolean {
    return this.tx !== undefined;
  }

  /** Forgets the open transaction (the connection that carried it is gone). */
  reset(): void {
    this.tx = undefined;
    this.o.batcher.forgetOpen();
    this.unchanged.clear(); // the server sends the transaction again
    this.resyncing.reset();
  }

  /** The columns the stream decodes for a relation: those its source reads (none for other tables). */
  columnsOf(relation: Relation): readonly string[] | undefined {
    return this.byTable.get(`${relation.schema}.${relation.name}`)?.mapper.columns;
  }

  handle(msg: ChangeMessage): Promise<void> | void {
    switch (msg.tag) {
      case 'begin':
        this.tx = this.o.tracker().begin(msg.commitLsn, msg.commitTime);
        this.txSeq = 0;
        this.truncated.clear();
        return this.resyncing.refresh();
      case 'commit':
        if (this.tx) {
          this.o.tracker().commit(this.tx, msg.endLsn);
          this.o.batcher.committed(this.tx);
        }
        this.tx = undefined;
        if (this.unchanged.size) this.countUnchanged();
        return;
      case 'relation':
        return this.checkRelation(msg.relation);
      case 'insert':
      case 'update':
      case 'delete': {
        const rt = this.runtimeOf(msg.relation);
        const tx = this.tx;
        if (!rt || !tx) return;
        const changes = toSourceChanges(rt.mapper, msg);
        if ('error' in changes) {
          this.o.logger.error(
            { source: rt.config.name, reason: changes.error },
            'a change could not be traced to a row',
          );
          return;
        }
        const seq = this.txSeq++;
        const reloaded = this.truncated.has(rt) || this.resyncing.has(rt.config.name);
        for (const c of changes) {
          if (reloaded && c.before === null) c.before = 'lookup';
          this.o.watermarks.onChange(rt.config.name, c.key.text);
          this.o.batcher.add(rt.config.name, c, tx.commitLsn, seq, tx.commitTime, tx);
        }
        if (this.o.batcher.full) return this.o.batcher.waitForRoom();
        return;
      }
      case 'unchanged': {
        // Identity, groups, key and filter as they were: nothing to send or store. Numbered all
        // the same, so later changes keep the position they have on every replay.
        if (!this.tx) return;
        this.txSeq += 1;
        const rt = this.runtimeOf(msg.relation);
        if (rt) this.unchanged.set(rt, (this.unchanged.get(rt) ?? 0) + 1);
        return;
      }
      case 'message': {
        if (msg.prefix !== WATERMARK_PREFIX) return;
        const tx = this.tx;
        if (!tx) return;
        // A backfill chunk's high watermark buffers the chunk here, held by this transaction.
        this.o.watermarks.onMessage(msg.content, (source, changes) => {
          for (const c of changes)
            this.o.batcher.add(source, c, tx.commitLsn, this.txSeq++, tx.commitTime, tx);
          return tx.commitLsn;
        });
        if (this.o.batcher.full) return this.o.batcher.waitForRoom();
        return;
      }
      case 'truncate':
        return this.truncate(msg.relations.map((r) => `${r.schema}.${r.name}`));
      default:
        return;
    }
  }

  private countUnchanged(): void {
    for (const [rt, n] of this.unchanged) this.o.onUnchanged?.(rt.config.name, n);
    this.unchanged.clear();
  }

  private runtimeOf(relation: Relation): SourceRuntime | undefined {
    let rt = this.byRelation.get(relation);
    if (rt === undefined) {
      rt = this.byTable.get(`${relation.schema}.${relation.name}`) ?? null;
      this.byRelation.set(relation, rt);
    }
    return rt ?? undefined;
  }

  /** A mapped or key column gone from a source's relation stops the bridge (docs/design.md, "Schema changes"). */
  private checkRelation(relation: Relation): void {
    const rt = this.runtimeOf(relation);
    if (!rt) return;
    const have = new Set(relation.columns);
    const missing = [...mappedColumns(rt.config), ...rt.mapper.keyColumns].filter((c) => !have.has(c));
    if (missing.length === 0) return;
    // The WAL keeps the relation as it was when each change was made: restoring the column, or
    // renaming it in the config, does not make these changes readable. A new slot does.
    throw new SetupError(
      'SCHEMA_CHANGED',
      `source ${rt.config.name}: column ${missing.map((c) => `"${c}"`).join(', ')} of ${rt.config.table} is gone from the changes at ${formatLsn(this.tx?.commitLsn ?? 0n)}; nothing after that point is confirmed. Make the table and sources[].columns agree again (restore the column, or map its new name), then run \`${RESYNC_REMEDY}\`: the changes made meanwhile cannot be read from the WAL, so a new slot re-syncs every source`,
    );
  }

  /** TRUNCATE of source tables: each source's `onTruncate` (./truncate.ts). */
  private async truncate(tables: string[]): Promise<void> {
    const tx = this.tx;
    const seq = this.txSeq++;
    for (const t of tables) {
      const rt = this.byTable.get(t);
      if (!rt) continue;
      if (await truncateSource(this.o, rt, tx, seq)) this.resyncing.mark(rt.config.name);
      if (rt.config.onTruncate === 'resync') this.truncated.add(rt);
    }
  }
}
