/**
 * Flushed entries -> API requests -> stored outcomes. For each flush of a source: resolve what the
 * WAL did not carry (old rows via `deleteLookup: state`, unchanged TOAST groups via the current
 * row), compute each key's net effect, merge membership rows of one customer, cut requests of at
 * most `maxBatchSize` rows per operation type (deletes, then updates, then adds), and schedule them
 * in order on the keys and customers they touch. A request's outcomes and its sync_batch row are
 * stored in one statement before its entries are released to the position tracker.
 */
import type { Logger } from 'pino';
import type { IdentityField, MatchConfig, SourceConfig } from '../config/types.js';
import { ApiRejectedError, BridgeError, errorMessage } from '../errors.js';
import { parseGroups, type Identity, type Image, type SourceMapper } from '../mapping/source-mapper.js';
import type { BridgeEvents, RowStatus } from '../ops/events.js';
import { answeredBatch, rejectedBatch, type StatusRow, type StatusStore } from '../status/status-store.js';
import type { BatchResult } from '../tuzhan/client.js';
import type { ApiRow, OptType, PublicParams, RowOutcome } from '../tuzhan/types.js';
import { IDENTITY_FIELDS } from '../config/types.js';
import {
  addPassed,
  OP_ORDER,
  planFlush,
  releaseEntry,
  type Entry,
  type NetEffect,
  type Part,
} from './coalesce.js';
import { Resources, type OrderedScheduler } from './scheduler.js';

/** The platform client as the dispatcher uses it. */
export interface BatchSender {
  send(
    params: PublicParams,
    rows: ApiRow[],
    options: {
      signal?: AbortSignal;
      onRetry?: (info: { attempt: number; error: BridgeError; delayMs: number }) => void | Promise<void>;
    },
  ): Promise<BatchResult>;
}

/** A source as the pipeline runs it. */
export interface SourceRuntime {
  config: SourceConfig;
  mapper: SourceMapper;
  /** SQL types of the key columns, in key order (`format_type`), to compare stored keys with rows. */
  keyTypes: readonly string[];
  /** Reads the current values of a row by key (for unchanged TOAST values), or null if gone. */
  readRow(keyValues: Record<string, unknown>): Promise<Record<string, unknown> | null>;
}

/** An entry on its way: how many of its parts are still unanswered, and its carried error. */
interface Flight {
  entry: Entry;
  partsLeft: number;
  failure?: string;
  /**
   * A key can put several rows into one request (row mode clears every old identity with one
   * `delete` each): it still gets one status row per request. `seenIn` marks the status rows being
   * built, `seenAt` where this key's row is among them.
   */
  seenIn?: object;
  seenAt?: number;
}

interface Contribution {
  flight: Flight;
  /** The entry's own API row (before merging): stored as the key's payload. */
  payload: ApiRow;
  op: OptType;
}

interface RequestRow {
  row: ApiRow;
  contributions: Contribution[];
}

/** How far each source's changes may have reached the platform (src/status/sent-mark.ts). */
export interface SentPosition {
  isFresh(source: string, lsn: bigint, seq: number): boolean;
  /** Resolves once the source's changes up to this position are durably recorded as possibly sent. */
  cover(source: string, lsn: bigint, seq: number): Promise<void>;
}

export interface DispatcherOptions {
  maxBatchSize: number;
  sent: SentPosition;
  sources: ReadonlyMap<string, SourceRuntime>;
  sender: BatchSender;
  store: StatusStore;
  scheduler: OrderedScheduler;
  events: BridgeEvents;
  logger: Logger;
  /** Called with the number of entries whose outcome is stored. */
  onDone(n: number): void;
  /** Aborts retries on a forced shutdown. */
  signal?: AbortSignal;
  /** An outcome could not be stored (or another unexpected failure): the bridge must stop. */
  onFatal(err: unknown): void;
}

export class Dispatcher {
  constructor(private readonly o: DispatcherOptions) {}

  async dispatch(sourceName: string, entries: Entry[]): Promise<void> {
    const rt = this.o.sources.get(sourceName);
    if (!rt) throw new Error(`unknown source ${sourceName}`);
    await this.resolveLookups(rt, entries);
    await this.resolveToast(rt, entries);

    const local: Array<{ flight: Flight; status: RowStatus; error: string | null }> = [];
    const byOp = new Map<OptType, RequestRow[]>();
    // Membership rows of one customer and operation are merged into one API row.
    const merged = rt.config.mode === 'membership' ? new Map<string, RequestRow>() : undefined;
    const mode = rt.config.mode;
    // A key whose first buffered change lies past the sent position was never sent (not even by
    // an earlier run): only then may its window be coalesced as if the platform were at `before`.
    const effects = planFlush(mode, entries, (e) => this.o.sent.isFresh(sourceName, e.firstLsn, e.firstSeq));
    let last: Entry | undefined;
    entries.forEach((entry, i) => {
      const effect = effects[i] as NetEffect;
      if (effect.kind !== 'send') {
        local.push({
          flight: { entry, partsLeft: 1 },
          status: effect.kind,
          error: effect.reason,
        });
        return;
      }
      if (!last || entry.lsn > last.lsn || (entry.lsn === last.lsn && entry.seq > last.seq)) last = entry;
      const flight: Flight = { entry, partsLeft: effect.parts.length, failure: effect.failure };
      for (const part of effect.parts) {
        const payload = this.apiRow(rt, part);
        const contribution: Contribution = { flight, payload, op: part.op };
        const mergeKey = merged ? `${part.op}\u0001${identityKey(part.identity)}` : undefined;
        const existing = mergeKey === undefined ? undefined : merged?.get(mergeKey);
        if (existing) {
          existing.row.groups = mergeGroups(existing.row.groups, payload.groups);
          existing.contributions.push(contribution);
          continue;
        }
        // A merged row's groups grow; the payload stays what this key contributed.
        const requestRow: RequestRow = {
          row: merged ? { ...payload } : payload,
          contributions: [contribution],
        };
        if (mergeKey !== undefined) merged?.set(mergeKey, requestRow);
        let rows = byOp.get(part.op);
        if (!rows) byOp.set(part.op, (rows = []));
        rows.push(requestRow);
      }
    });

    // Durable before anything leaves: a crash from here on replays these changes as maybe-sent.
    if (last) await this.o.sent.cover(sourceName, last.lsn, last.seq);
    if (local.length) this.scheduleLocal(rt, local);
    for (const op of OP_ORDER) {
      const rows = byOp.get(op) ?? [];
      for (let i = 0; i < rows.length; i += this.o.maxBatchSize) {
        this.scheduleRequest(rt, op, rows.slice(i, i + this.o.maxBatchSize));
      }
    }
  }

  private apiRow(rt: SourceRuntime, part: Part): ApiRow {
    return apiRow(rt.config.match, part.identity, part.groups);
  }

  private params(rt: SourceRuntime, op: OptType): PublicParams {
    return publicParams(rt.config.match, op);
  }

  /** Stores outcomes decided locally (skipped, unmappable rows), in order with the keys' requests. */
  private scheduleLocal(
    rt: SourceRuntime,
    local: Array<{ flight: Flight; status: RowStatus; error: string | null }>,
  ): void {
    const resources = new Resources();
    const keyLane = keyLaneOf(rt);
    for (const l of local) resources.add(keyLane, l.flight.entry.key.text);
    void this.o.scheduler
      .schedule(
        resources,
        async () => {
          const rows: StatusRow[] = local.map((l) => ({
            rowKey: l.flight.entry.key.text,
            op: l.flight.entry.after ? 'add' : 'delete',
            status: l.status,
            attempts: 0,
            error: l.error,
            lsn: l.flight.entry.lsn,
            committedAt: l.flight.entry.commitTime,
            payload: null,
          }));
          await this.o.store.writeRequest(rt.config.name, null, rows);
          for (const l of local) this.emitRows(rt, l.flight.entry.after ? 'add' : 'delete', l.status, 1);
          this.finish(local.map((l) => l.flight));
        },
        { direct: true },
      )
      .catch((err: unknown) => this.fatal(err));
  }

  private scheduleRequest(rt: SourceRuntime, op: OptType, rows: RequestRow[]): void {
    // (A name twice is harmless to the scheduler: no Set needed for a thousand names a request.)
    const resources = new Resources();
    const keyLane = keyLaneOf(rt);
    for (const r of rows) {
      for (const c of r.contributions) resources.add(keyLane, c.flight.entry.key.text);
      for (const f of IDENTITY_FIELDS) {
        const v = r.row[f];
        if (v !== undefined) resources.add(ID_LANES[f], v);
      }
    }
    void this.o.scheduler
      .schedule(resources, () => this.sendRows(rt, op, rows))
      .catch((err: unknown) => this.fatal(err));
  }

  /** Sends rows (retrying transient failures), bisecting a batch the platform rejects as a whole. */
  private async sendRows(rt: SourceRuntime, op: OptType, rows: RequestRow[]): Promise<void> {
    const source = rt.config.name;
    const startedAt = new Date();
    let tries = 1;
    let result: BatchResult;
    try {
      result = await this.o.sender.send(
        this.params(rt, op),
        rows.map((r) => r.row),
        {
          signal: this.o.signal,
          onRetry: async ({ attempt, error, delayMs }) => {
            tries = attempt + 1;
            const httpStatus = (error as { httpStatus?: number }).httpStatus;
            // Any HTTP answer means the platform is reachable; a network error or timeout does not.
            this.o.events.emit('apiReachable', httpStatus !== undefined);
            this.o.events.emit('retry', {
              source,
              reason: error.code === 'API_AUTH' ? 'auth' : 'transient',
              attempt,
              delayMs,
            });
            this.o.events.emit('request', {
              source,
              optType: op,
              rows: rows.length,
              outcome: error.code === 'API_AUTH' ? 'auth' : 'transient',
              durationMs: 0,
              httpStatus,
            });
            if (attempt === 1) {
              await this.o.store.writeRequest(
                source,
                null,
                this.statusRows(rows, () => ({ status: 'retrying', error: errorMessage(error) }), 1),
              );
            }
          },
        },
      );
    } catch (err) {
      if (!(err instanceof ApiRejectedError)) throw err;
      this.o.events.emit('request', {
        source,
        optType: op,
        rows: rows.length,
        outcome: 'rejected',
        httpStatus: err.httpStatus,
        code: err.apiCode,
        durationMs: Date.now() - startedAt.getTime(),
      });
      await this.o.store.writeRequest(
        source,
        rejectedBatch(op, rows.length, startedAt, err),
        rows.length === 1
          ? this.statusRows(
              rows,
              () => ({ status: 'failed', error: `rejected by the platform: ${err.message}` }),
              tries,
            )
          : [],
      );
      if (rows.length === 1) {
        this.emitOutcomes(rt, rows, () => 'failed');
        this.release(rows);
        return;
      }
      this.o.events.emit('retry', { source, reason: 'rejected-split', attempt: tries, delayMs: 0 });
      const half = Math.ceil(rows.length / 2);
      await this.sendRows(rt, op, rows.slice(0, half));
      await this.sendRows(rt, op, rows.slice(half));
      return;
    }

    const outcomeOf = (i: number): RowOutcome => result.outcomes[i] ?? { status: 'synced' };
    this.o.events.emit('apiReachable', true);
    this.o.events.emit('request', {
      source,
      optType: op,
      rows: rows.length,
      outcome: result.outcomes.every((o) => o.status === 'synced') ? 'ok' : 'partial',
      httpStatus: result.httpStatus,
      code: result.code,
      durationMs: result.durationMs,
    });
    await this.o.store.writeRequest(
      source,
      answeredBatch(op, rows.length, startedAt, result),
      this.statusRows(
        rows,
        (i) => {
          const o = outcomeOf(i);
          return o.status === 'failed'
            ? { status: 'failed', error: o.error }
            : { status: o.status, error: null };
        },
        tries,
      ),
    );
    this.emitOutcomes(rt, rows, (i) => outcomeOf(i).status);
    this.release(rows);
  }

  /** sync_status rows for the source keys of the request rows: one per key, its last row's payload. */
  private statusRows(
    rows: RequestRow[],
    outcome: (i: number) => { status: RowStatus; error: string | null },
    attempts: number,
  ): StatusRow[] {
    const out: StatusRow[] = [];
    const building = {};
    rows.forEach((r, i) => {
      const o = outcome(i);
      for (const c of r.contributions) {
        const f = c.flight;
        if (o.status === 'failed' && !f.failure) f.failure = o.error ?? 'failed';
        const failure = o.status !== 'retrying' ? f.failure : undefined;
        const row: StatusRow = {
          rowKey: f.entry.key.text,
          op: c.op,
          status: failure ? 'failed' : o.status,
          attempts,
          error: failure ?? o.error,
          lsn: f.entry.lsn,
          committedAt: f.entry.commitTime,
          payload: c.payload,
        };
        if (f.seenIn === building) out[f.seenAt as number] = row;
        else {
          f.seenIn = building;
          f.seenAt = out.push(row) - 1;
        }
      }
    });
    return out;
  }

  /** Counts the request's source rows by status (a request carries one operation type). */
  private emitOutcomes(rt: SourceRuntime, rows: RequestRow[], status: (i: number) => RowStatus): void {
    const counts: Partial<Record<RowStatus, number>> = {};
    let op: OptType | undefined;
    const counting = {};
    const statuses: RowStatus[] = [];
    rows.forEach((r, i) => {
      for (const c of r.contributions) {
        op = c.op;
        const st = c.flight.failure ? 'failed' : status(i);
        if (c.flight.seenIn === counting) {
          statuses[c.flight.seenAt as number] = st;
          continue;
        }
        c.flight.seenIn = counting;
        c.flight.seenAt = statuses.push(st) - 1;
      }
    });
    if (!op) return;
    for (const st of statuses) counts[st] = (counts[st] ?? 0) + 1;
    for (const [st, n] of Object.entries(counts) as Array<[RowStatus, number]>) this.emitRows(rt, op, st, n);
  }

  private emitRows(rt: SourceRuntime, op: OptType, status: RowStatus, count: number): void {
    this.o.events.emit('rows', { source: rt.config.name, op, status, count });
  }

  private release(rows: RequestRow[]): void {
    const finished: Flight[] = [];
    for (const r of rows) {
      for (const c of r.contributions) {
        c.flight.partsLeft -= 1;
        if (c.flight.partsLeft === 0) finished.push(c.flight);
      }
    }
    this.finish(finished);
  }

  private finish(flights: Flight[]): void {
    for (const f of flights) releaseEntry(f.entry);
    if (flights.length) this.o.onDone(flights.length);
  }

  private fatal(err: unknown): void {
    this.o.logger.error({ err: errorMessage(err) }, 'sending a batch or storing its outcomes failed');
    this.o.onFatal(err);
  }

  /** `deleteLookup: state`: the platform's state for a key is what the bridge last sent for it. */
  private async resolveLookups(rt: SourceRuntime, entries: Entry[]): Promise<void> {
    const pending = entries.filter((e) => e.before === 'lookup');
    if (pending.length === 0) return;
    // What was last sent is only known once earlier requests for these keys have finished.
    const keys = new Resources();
    const keyLane = keyLaneOf(rt);
    for (const e of pending) keys.add(keyLane, e.key.text);
    await this.o.scheduler.settled(keys);
    const last = await this.o.store.lastSent(
      rt.config.name,
      pending.map((e) => e.key.text),
    );
    for (const e of pending) {
      const l = last.get(e.key.text);
      e.before = l && l.op !== 'delete' && l.payload ? imageFromPayload(l.payload) : null;
    }
  }

  /** Unchanged TOAST groups the WAL did not carry: read the row's current value. */
  private async resolveToast(rt: SourceRuntime, entries: Entry[]): Promise<void> {
    const pending = entries.filter((e) => e.after && e.after.groups === null);
    for (const e of pending) {
      const row = await rt.readRow(e.key.values);
      const after = e.after as Image;
      if (row) {
        after.groups = rt.mapper.image(row).groups ?? [];
      } else if (e.before && typeof e.before === 'object' && e.before.groups !== null) {
        after.groups = e.before.groups;
      } else {
        // The row is gone (its delete is on its way). What this change set may have been sent by
        // an earlier run: clear it, as for a delete.
        addPassed(e, after);
        e.after = null;
      }
    }
  }
}

/** The API row for a customer's identity and groups, as the platform expects it (absent fields omitted). */
export function apiRow(match: Readonly<MatchConfig>, identity: Identity, groups: readonly string[]): ApiRow {
  const row: ApiRow = {};
  if (match.identityType) row.identityType = match.identityType;
  for (const f of IDENTITY_FIELDS) {
    const v = identity[f];
    if (v !== undefined) row[f] = v;
  }
  if (groups.length) row.groups = groups.join(',');
  return row;
}

/** publicParams of a source's requests: its `match` without the per-row identityType. */
export function publicParams(match: Readonly<MatchConfig>, op: OptType): PublicParams {
  const { identityType: _identityType, ...params } = match;
  return { ...params, optType: op };
}

/** Requests are ordered per source row key (a lane per source) and per platform identity value. */
function keyLaneOf(rt: SourceRuntime): string {
  return `key:${rt.config.name}`;
}

const ID_LANES = Object.fromEntries(IDENTITY_FIELDS.map((f) => [f, `id:${f}`])) as Record<
  IdentityField,
  string
>;

/** One text per customer identity: membership rows of one customer merge on it. */
export function identityKey(identity: Identity): string {
  return IDENTITY_FIELDS.map((f) => identity[f] ?? '').join('\u0000');
}

/** The union of two `groups` values, order kept; undefined when empty. */
export function mergeGroups(a: string | undefined, b: string | undefined): string | undefined {
  const set = new Set([...(parseGroups(a ?? null) ?? []), ...(parseGroups(b ?? null) ?? [])]);
  return set.size ? [...set].join(',') : undefined;
}

/** The identity and groups a stored payload (an API row sent before) names. */
export function imageFromPayload(payload: Record<string, unknown>): Image {
  const identity: Identity = {};
  for (const f of IDENTITY_FIELDS) {
    const v = payload[f];
    if (typeof v === 'string' && v !== '') identity[f] = v;
  }
  return { identity, groups: parseGroups(payload.groups ?? null) ?? [] };
}
