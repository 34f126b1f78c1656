/**
 * Fuller requests (docs/design.md, "Coalescing and batching"). A flush's requests (one per
 * operation, deletes first) wait for a concurrency slot while earlier ones are in flight; until the
 * first of them starts, the rows of a later flush of the same source join them, as long as each
 * request stays within `maxBatchSize` and those rows touch no key or customer that an unfinished
 * task touches. Such rows depend on nothing, so sending them earlier changes no order; the
 * batch's requests run one after the other in operation order, so a key's delete still goes before
 * its add, and the joined rows' keys and customers are taken until the whole batch has finished.
 * A backlog of small flushes (a change removing a group, then adding one, per customer) thus
 * becomes requests of up to `maxBatchSize` rows instead of one delete and one add per flush.
 */
import type { DeliveryRow } from '../delivery/requests.js';
import type { OptType } from '../domain/types.js';
import { OP_ORDER } from './coalesce.js';
import { rowResources } from './lanes.js';
import { Resources, type OrderedScheduler } from './scheduler.js';

/** A flush's requests, by operation; rows of later flushes may join them until one starts. */
interface OpenBatch {
  rows: Map<OptType, DeliveryRow[]>;
  started: boolean;
  /** Settles once every request of the batch has finished (or failed). */
  done: Promise<unknown>;
}

export interface BatchOptions {
  scheduler: OrderedScheduler;
  maxBatchSize: number;
  /** Sends one request, with its rows as they are when it starts; never rejects. */
  deliver(op: OptType, rows: DeliveryRow[]): Promise<void>;
}

export class RequestBatches {
  /** The latest flush's requests while rows may still join them. */
  private open: OpenBatch | undefined;
  private count = 0;

  /** `source`: the source all rows here belong to (one instance per source). */
  constructor(
    private readonly source: string,
    private readonly o: BatchOptions,
  ) {}

  /** Schedules a flush's rows by operation: joined to the open batch, or as requests of their own. */
  add(byOp: Map<OptType, DeliveryRow[]>): void {
    if (byOp.size > 0 && !this.join(byOp)) this.schedule(byOp);
  }

  private join(byOp: Map<OptType, DeliveryRow[]>): boolean {
    const batch = this.open;
    if (!batch || batch.started) return false;
    for (const [op, rows] of byOp) {
      const into = batch.rows.get(op);
      if (!into || into.length + rows.length > this.o.maxBatchSize) return false;
    }
    const resources = new Resources();
    for (const rows of byOp.values()) rowResources(this.source, rows, resources);
    if (!this.o.scheduler.free(resources)) return false;
    for (const [op, rows] of byOp) for (const r of rows) batch.rows.get(op)?.push(r);
    // Later tasks on these keys and customers wait for the batch, as they would for the requests.
    void this.o.scheduler.schedule(resources, () => batch.done, { direct: true });
    return true;
  }

  private schedule(byOp: Map<OptType, DeliveryRow[]>): void {
    const requests: Array<[OptType, DeliveryRow[]]> = [];
    for (const op of OP_ORDER) {
      const rows = byOp.get(op) ?? [];
      for (let i = 0; i < rows.length; i += this.o.maxBatchSize)
        requests.push([op, rows.slice(i, i + this.o.maxBatchSize)]);
    }
    // Only a batch of one request per operation can take more rows in order.
    const joinable = requests.length === byOp.size;
    const batch: OpenBatch = { rows: new Map(requests), started: false, done: Promise.resolve() };
    this.open = joinable ? batch : undefined;
    // One resource of its own orders a joinable batch's requests (operation order).
    const name = joinable ? `${this.source}:${++this.count}` : undefined;
    batch.done = Promise.all(
      requests.map(([op, rows]) => {
        const resources = rowResources(this.source, rows);
        if (name !== undefined) resources.add('batch', name);
        return this.o.scheduler.schedule(resources, () => {
          // No more rows join once one of its requests is on its way.
          batch.started = true;
          if (this.open === batch) this.open = undefined;
          return this.o.deliver(op, rows);
        });
      }),
    );
  }
}
