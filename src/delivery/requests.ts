/**
 * What the dispatcher (and `retry-failed`) hand to delivery: one request's rows, each an operation
 * on one customer that speaks for one or more source keys. Declared by delivery, the stage that
 * takes them, with the building of those rows from planned calls; `Delivery` implements `Deliverer`.
 */
import type { SourceConfig, SourceMode } from '../config/types.js';
import { IDENTITY_FIELDS } from '../config/types.js';
import type { OptType, RowStatus } from '../domain/types.js';
import type { Identity } from '../domain/change.js';
import type { StatusRow } from '../status/status-write.js';

/** One call planned for a key (batching's coalescing plans them): an operation on one customer. */
export interface PlannedPart {
  op: OptType;
  identity: Identity;
  groups: readonly string[];
}

/** A source key's change, as its outcome is stored. */
export interface KeyChange {
  /** Canonical JSON of the key columns (sync_status.row_key). */
  rowKey: string;
  lsn: bigint;
  committedAt: Date;
  /** Attempts made for this change before (`retry-failed` adds to the stored count). */
  priorAttempts: number;
  /** Shared by a change's parts: once one of them fails, the others record `failed` too. */
  failure?: string;
  /**
   * The platform refused one of the change's parts: its later parts are not sent (an identity's
   * groups added while the old identity's delete was refused would leave both on the platform,
   * and no stored payload could name both: docs/design.md, "A change refused in part"). Holds the
   * attempts made for the change when it was refused.
   */
  refused?: { attempts: number };
  /**
   * Its rows not answered yet, those of the request being delivered included (the dispatcher's
   * count; absent: all of them are in that request). Its outcome is stored once, with the last.
   */
  partsLeft?: number;
}

/** A key's contribution to a row: its operation and the groups it brings (its stored payload). */
export interface DeliveryItem {
  change: KeyChange;
  op: OptType;
  groups: readonly string[];
}

/** One API row: an operation on one customer, for the keys it carries. */
export interface DeliveryRow {
  identity: Identity;
  groups: readonly string[];
  items: DeliveryItem[];
}

export interface DeliveryRequest {
  source: SourceConfig;
  op: OptType;
  rows: DeliveryRow[];
  /** `daemon`: retry the platform forever; `command`: a few tries (an operator waits). */
  policy: 'daemon' | 'command';
  /** Aborts retries (a forced stop). */
  signal?: AbortSignal;
}

/** An outcome decided without sending (skipped, unmappable). */
export interface LocalOutcome {
  change: KeyChange;
  op: OptType;
  status: RowStatus;
  error: string | null;
}

export interface Deliverer {
  /** Sends, retries by policy, bisects a whole-batch rejection, stores outcomes; each row's status. */
  deliver(request: DeliveryRequest): Promise<RowStatus[]>;
  /** Stores outcomes decided locally. */
  record(source: string, outcomes: readonly LocalOutcome[]): Promise<void>;
}

/**
 * The rows of a flush (or a retry) per operation. Membership rows of one customer and operation are
 * merged into one API row (their groups joined), as docs/design.md, "Sources", says; row mode sends one row per
 * key and part.
 */
export function requestRows(
  mode: SourceMode,
  planned: Iterable<{ change: KeyChange; parts: readonly PlannedPart[] }>,
): Map<OptType, DeliveryRow[]> {
  const byOp = new Map<OptType, DeliveryRow[]>();
  const merged = mode === 'membership' ? new Map<string, DeliveryRow>() : undefined;
  for (const { change, parts } of planned) {
    for (const part of parts) {
      const item: DeliveryItem = { change, op: part.op, groups: part.groups };
      const mergeKey = merged ? `${part.op}\u0001${identityKey(part.identity)}` : undefined;
      const existing = mergeKey === undefined ? undefined : merged?.get(mergeKey);
      if (existing) {
        existing.groups = unionGroups(existing.groups, part.groups);
        existing.items.push(item);
        continue;
      }
      const row = { identity: part.identity, groups: part.groups, items: [item] };
      if (mergeKey !== undefined) merged?.set(mergeKey, row);
      let rows = byOp.get(part.op);
      if (!rows) byOp.set(part.op, (rows = []));
      rows.push(row);
    }
  }
  return byOp;
}

/**
 * Splits a request's rows into what is still to be sent and the keys whose change the platform
 * already refused in part (`KeyChange.refused`): a row keeps the items of the other keys, with
 * their groups only (membership rows of several keys share one API row).
 */
export function withoutRefused(rows: readonly DeliveryRow[]): { send: DeliveryRow[]; refused: KeyChange[] } {
  if (!rows.some((r) => r.items.some((i) => i.change.refused))) return { send: [...rows], refused: [] };
  const send: DeliveryRow[] = [];
  const refused = new Set<KeyChange>();
  for (const r of rows) {
    const items = r.items.filter((i) => !i.change.refused);
    for (const i of r.items) if (i.change.refused) refused.add(i.change);
    if (items.length === r.items.length) send.push(r);
    else if (items.length > 0)
      send.push({
        ...r,
        items,
        groups: items.reduce<readonly string[]>((g, i) => unionGroups(g, i.groups), []),
      });
  }
  return { send, refused: [...refused] };
}

/**
 * The outcomes of keys whose change the platform refused in part: `failed`, without a payload, so
 * the store keeps their op and payload of before the change (what the platform still holds).
 */
export function refusedOutcomes(op: OptType, changes: readonly KeyChange[]): StatusRow[] {
  return changes.map((c) => ({
    rowKey: c.rowKey,
    op,
    status: 'failed',
    attempts: c.refused?.attempts ?? c.priorAttempts,
    error: c.failure ?? 'failed',
    lsn: c.lsn,
    committedAt: c.committedAt,
    payload: null,
  }));
}

/** Each of a request's rows: failed when none of its keys was sent, else the answer of its sent row. */
export function rowStatuses(rows: readonly DeliveryRow[], sent: readonly RowStatus[]): RowStatus[] {
  let next = 0;
  return rows.map((r) => (r.items.every((i) => i.change.refused) ? 'failed' : (sent[next++] as RowStatus)));
}

/** One text per customer identity: membership rows of one customer merge on it. */
export function identityKey(identity: Identity): string {
  return IDENTITY_FIELDS.map((f) => identity[f] ?? '').join('\u0000');
}

/** Whether each key of the row has this one part in all (the dispatcher counted its parts). */
function oneRowEach(row: DeliveryRow): boolean {
  for (const item of row.items) if (item.change.partsLeft !== 1) return false;
  return true;
}

/**
 * How many rows of each change a request still has to answer (delivery stores a change's outcome
 * with its last), or undefined when each change has one row in all (a snapshot's row, a new row):
 * each outcome is then stored as it is answered, with no count per change.
 */
export function rowsLeft(rows: readonly DeliveryRow[]): Map<KeyChange, number> | undefined {
  if (rows.every(oneRowEach)) return undefined;
  const left = new Map<KeyChange, number>();
  for (const r of rows)
    for (const { change: c } of r.items) left.set(c, c.partsLeft ?? (left.get(c) ?? 0) + 1);
  return left;
}

/** The union of two group lists, order kept. */
function unionGroups(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])];
}
