/**
 * The per-key lanes every sender shares (docs/design.md, "Coalescing and batching" and "Jobs"): a
 * request names what it touches, its source row keys (a lane per source) and every identity value
 * of its rows (a lane per identity field, across sources), and starts only once every earlier task
 * naming one of them has finished. The stream's flushes, a retry of failed rows, a backfill and an
 * approval all go through the daemon's one `Lanes`, so "one request per key or customer in flight"
 * is the scheduler's property, not each caller's care.
 */
import { IDENTITY_FIELDS, type IdentityField } from '../config/types.js';
import type { Deliverer, DeliveryItem, DeliveryRequest, DeliveryRow } from '../delivery/requests.js';
import type { RowStatus } from '../domain/types.js';
import { Resources, type OrderedScheduler } from './scheduler.js';

/** The lane of a source's row keys. */
export function keyLane(source: string): string {
  return `key:${source}`;
}

const ID_LANES = Object.fromEntries(IDENTITY_FIELDS.map((f) => [f, `id:${f}`])) as Record<
  IdentityField,
  string
>;

/** The lane of a platform identity field (`thirdId:…`, `phone:…`), shared by every source. */
export function identityLane(field: IdentityField): string {
  return ID_LANES[field];
}

/**
 * What a request's rows touch: every key they speak for and every identity value they name.
 * Lane by lane, so the scheduler looks a lane up once per run of it. (A name twice is harmless to
 * the scheduler: no Set needed for a thousand names a request.)
 */
export function rowResources(source: string, rows: readonly DeliveryRow[], into?: Resources): Resources {
  // Indexed loops: this runs for every row, and iterating the fields array per row allocated.
  if (into === undefined) {
    // Sized up front: a request names ~1,000 resources, and growing the arrays cost as much again.
    let n = 0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as DeliveryRow;
      n += r.items.length;
      for (let j = 0; j < IDENTITY_FIELDS.length; j++)
        if (r.identity[IDENTITY_FIELDS[j] as IdentityField] !== undefined) n += 1;
    }
    into = new Resources(n);
  }
  const keys = keyLane(source);
  for (let i = 0; i < rows.length; i++) {
    const items = (rows[i] as DeliveryRow).items;
    for (let j = 0; j < items.length; j++) into.add(keys, (items[j] as DeliveryItem).change.rowKey);
  }
  for (let j = 0; j < IDENTITY_FIELDS.length; j++) {
    const f = IDENTITY_FIELDS[j] as IdentityField;
    const lane = ID_LANES[f];
    for (let i = 0; i < rows.length; i++) {
      const v = (rows[i] as DeliveryRow).identity[f];
      if (v !== undefined) into.add(lane, v);
    }
  }
  return into;
}

/** The daemon's scheduler and delivery, for senders outside the stream (retries, approvals). */
export class Lanes {
  constructor(
    readonly scheduler: OrderedScheduler,
    readonly delivery: Deliverer,
  ) {}

  /**
   * Runs `task` once every earlier task on `resources` has finished, holding them (and one of the
   * concurrency slots) until it ends: a sender that must read before it sends (the current row of
   * a failed key) reads and sends inside, so nothing newer can be sent for those keys in between.
   */
  reserve<T>(resources: Resources, task: () => Promise<T>): Promise<T> {
    return this.scheduler.schedule(resources, task);
  }

  /** Delivers one request on the lanes of what it touches. */
  deliver(request: DeliveryRequest): Promise<RowStatus[]> {
    return this.scheduler.schedule(rowResources(request.source.name, request.rows), () =>
      this.delivery.deliver(request),
    );
  }
}
