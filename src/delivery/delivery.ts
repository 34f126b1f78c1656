/**
 * The one place that delivers (issue 10; Sequin's `handle_batch`): given a source, an operation and
 * its rows, it sends them, retries by policy, splits a batch the platform rejects as a whole in
 * halves until the bad rows are isolated, and stores each source key's outcome with the request's
 * sync_batch row, in one statement per request. The dispatcher (stream, snapshot, backfill, TRUNCATE)
 * and `retry-failed` all deliver through it.
 */
import type { BridgeEventMap, BridgeEvents } from '../domain/events.js';
import type { OptType, RowStatus } from '../domain/types.js';
import { ApiRejectedError, ApiUnavailableError, type BridgeError, errorMessage } from '../errors.js';
import type {
  DeliveryItem,
  Deliverer,
  DeliveryRequest,
  DeliveryRow,
  KeyChange,
  LocalOutcome,
} from './requests.js';
import { refusedOutcomes, rowsLeft, rowStatuses, withoutRefused } from './requests.js';
import type { BatchRecord, StatusRow } from '../status/status-store.js';
import type { BatchResult } from '../tuzhan/client.js';
import { SYNCED } from '../tuzhan/outcomes.js';
import { apiRow, publicParams } from '../tuzhan/rows.js';
import type { ApiRow, PublicParams, RowOutcome } from '../tuzhan/types.js';
import { RETRY, retry } from '../util/retry.js';

/** The platform client as delivery uses it (TuzhanClient). */
export interface PlatformSender {
  /** One request; throws ApiUnavailableError, ApiAuthError or ApiRejectedError. */
  sendOnce(params: PublicParams, rows: ApiRow[], options: { signal?: AbortSignal }): Promise<BatchResult>;
  /** `sendOnce` until the platform answers about the rows (transient and auth failures retried forever). */
  send(
    params: PublicParams,
    rows: ApiRow[],
    options: {
      signal?: AbortSignal;
      onRetry?: (info: { attempt: number; error: BridgeError; delayMs: number }) => void | Promise<void>;
    },
  ): Promise<BatchResult>;
}

/** Where outcomes go (StatusStore). */
export interface OutcomeStore {
  writeRequest(source: string, batch: BatchRecord | null, rows: readonly StatusRow[]): Promise<void>;
}

export interface DeliveryOptions {
  sender: PlatformSender;
  store: OutcomeStore;
  events?: BridgeEvents;
}

export class Delivery implements Deliverer {
  constructor(private readonly o: DeliveryOptions) {}

  async deliver(req: DeliveryRequest): Promise<RowStatus[]> {
    const { send, refused } = withoutRefused(req.rows);
    const outcomes = refusedOutcomes(req.op, refused);
    if (outcomes.length > 0) await this.o.store.writeRequest(req.source.name, null, outcomes);
    this.countStored(req.source.name, req.op, outcomes);
    const statuses = new Array<RowStatus>(send.length);
    // Rows of each change still to be answered: its outcome is stored with its last one.
    const left = rowsLeft(send);
    if (send.length > 0) await this.send({ ...req, rows: send }, send, statuses, 0, left);
    return refused.length === 0 ? statuses : rowStatuses(req.rows, statuses);
  }

  async record(source: string, outcomes: readonly LocalOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    await this.o.store.writeRequest(
      source,
      null,
      outcomes.map((l) => ({
        rowKey: l.change.rowKey,
        op: l.op,
        status: l.status,
        attempts: l.change.priorAttempts,
        error: l.error,
        lsn: l.change.lsn,
        committedAt: l.change.committedAt,
        payload: null,
      })),
    );
    for (const l of outcomes) this.emit('rows', { source, op: l.op, status: l.status, count: 1 });
  }

  /** Sends `rows` (a slice of the request, at `offset`), bisecting on a whole-batch rejection. */
  private async send(
    req: DeliveryRequest,
    rows: DeliveryRow[],
    out: RowStatus[],
    offset: number,
    left: Map<KeyChange, number> | undefined,
  ): Promise<void> {
    const source = req.source.name;
    const { op } = req;
    const params = publicParams(req.source.match, op);
    const api = rows.map((r) => apiRow(req.source.match, r.identity, r.groups));
    const startedAt = new Date();
    let tries = 1;
    let result: BatchResult;
    try {
      result =
        req.policy === 'daemon'
          ? await this.o.sender.send(params, api, {
              signal: req.signal,
              onRetry: async ({ attempt, error, delayMs }) => {
                tries = attempt + 1;
                this.retried(source, op, rows.length, error, attempt, delayMs);
                // The first failed try makes the rows `retrying` in sync_status (docs/design.md, "Errors").
                if (attempt === 1) {
                  const retrying: StoredOutcome = { status: 'retrying', error: errorMessage(error) };
                  await this.o.store.writeRequest(
                    source,
                    null,
                    this.statusRows(req, rows, api, () => retrying, 1, left),
                  );
                }
              },
            })
          : await retry(
              (attempt) => {
                tries = attempt;
                return this.o.sender.sendOnce(params, api, { signal: req.signal });
              },
              {
                policy: (err) => (err instanceof ApiUnavailableError ? RETRY.command : undefined),
                signal: req.signal,
              },
            );
    } catch (err) {
      if (!(err instanceof ApiRejectedError)) throw err;
      this.emit('request', {
        source,
        optType: op,
        rows: rows.length,
        outcome: 'rejected',
        httpStatus: err.httpStatus,
        code: err.apiCode,
        durationMs: err.durationMs ?? Date.now() - startedAt.getTime(),
      });
      const alone = rows.length === 1;
      const failed: StoredOutcome = { status: 'failed', error: `rejected by the platform: ${err.message}` };
      const stored = alone ? this.statusRows(req, rows, api, () => failed, tries, left) : [];
      await this.o.store.writeRequest(
        source,
        rejectedBatch(op, rows.length, startedAt, err),
        lastParts(stored, left),
      );
      if (alone) {
        out[offset] = 'failed';
        this.countStored(source, op, stored);
        return;
      }
      this.emit('retry', { source, reason: 'rejected-split', attempt: tries, delayMs: 0 });
      const half = Math.ceil(rows.length / 2);
      await this.send(req, rows.slice(0, half), out, offset, left);
      await this.send(req, rows.slice(half), out, offset + half, left);
      return;
    }

    const outcomes = result.outcomes;
    this.emit('apiReachable', true);
    this.emit('request', {
      source,
      optType: op,
      rows: rows.length,
      outcome: outcomes.every((o) => o.status === 'synced') ? 'ok' : 'partial',
      httpStatus: result.httpStatus,
      code: result.code,
      durationMs: result.durationMs,
    });
    const stored = this.statusRows(req, rows, api, (i) => outcomes[i] ?? SYNCED, tries, left);
    await this.o.store.writeRequest(
      source,
      answeredBatch(op, rows.length, startedAt, result),
      lastParts(stored, left),
    );
    for (let i = 0; i < rows.length; i++) out[offset + i] = outcomes[i]?.status ?? 'synced';
    this.countStored(source, op, stored);
  }

  private retried(
    source: string,
    op: OptType,
    rows: number,
    error: BridgeError,
    attempt: number,
    delayMs: number,
  ): void {
    const httpStatus = (error as { httpStatus?: number }).httpStatus;
    const auth = error.code === 'API_AUTH';
    // Any HTTP answer means the platform is reachable; a network error or timeout does not.
    this.emit('apiReachable', httpStatus !== undefined);
    this.emit('retry', { source, reason: auth ? 'auth' : 'transient', attempt, delayMs });
    this.emit('request', {
      source,
      optType: op,
      rows,
      outcome: auth ? 'auth' : 'transient',
      durationMs: (error as { durationMs?: number }).durationMs ?? 0,
      httpStatus,
    });
  }

  /**
   * sync_status rows for the keys the rows carry: one per key (a key can put several rows into one
   * request: row mode clears each old identity with its own `delete`), with its last row's payload.
   * `api` holds the rows as sent: a key that is its row's only contribution stores that object.
   * Without `left` (rowsLeft: each change has one row in all) no key appears twice.
   */
  private statusRows(
    req: DeliveryRequest,
    rows: readonly DeliveryRow[],
    api: readonly ApiRow[],
    outcome: (i: number) => StoredOutcome,
    tries: number,
    left: Map<KeyChange, number> | undefined,
  ): KeyOutcome[] {
    const out: KeyOutcome[] = [];
    const at = left === undefined ? undefined : new Map<KeyChange, number>(); // key -> its row in out
    rows.forEach((r, i) => {
      const o = outcome(i);
      for (const item of r.items) {
        const c = item.change;
        if (o.status === 'failed' && !c.failure) c.failure = o.error;
        if (o.status === 'failed') c.refused = { attempts: c.priorAttempts + tries };
        const failure = o.status !== 'retrying' ? c.failure : undefined;
        const seen = at?.get(c);
        const row: KeyOutcome = {
          change: c,
          rows: seen === undefined ? 1 : (out[seen] as KeyOutcome).rows + 1,
          rowKey: c.rowKey,
          op: item.op,
          status: failure ? 'failed' : o.status,
          attempts: c.priorAttempts + tries,
          error: failure ?? ('error' in o ? o.error : null),
          lsn: c.lsn,
          committedAt: c.committedAt,
          payload: item.groups === r.groups ? (api[i] as ApiRow) : payloadOf(req, r, item),
        };
        if (seen !== undefined) out[seen] = row;
        else if (at === undefined) out.push(row);
        else at.set(c, out.push(row) - 1);
      }
    });
    return out;
  }

  /** Counts the request's keys by status (a request carries one operation): one stored row per key. */
  private countStored(source: string, op: OptType, stored: readonly StatusRow[]): void {
    const counts = new Map<RowStatus, number>();
    for (const r of stored) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    for (const [st, n] of counts) this.emit('rows', { source, op, status: st, count: n });
  }

  private emit<K extends keyof BridgeEventMap>(name: K, ...args: BridgeEventMap[K]): void {
    (this.o.events?.emit as ((n: K, ...a: BridgeEventMap[K]) => boolean) | undefined)?.call(
      this.o.events,
      name,
      ...args,
    );
  }
}

/** A key's status row in one request (or slice of one), its change, and how many rows it had there. */
interface KeyOutcome extends StatusRow {
  change: KeyChange;
  rows: number;
}

/**
 * The outcomes to store of a request (or a slice of a bisected one): those of the changes it
 * answers last, counting down `left`. A change whose other parts are still to be answered (a
 * row-mode update's add of its groups after the delete of those it lost; a key's rows split by a
 * bisection) is stored once, with its last part, whose outcome carries every part's (a failed part
 * fails the change): one write of its status row instead of one per part. Its position is confirmed
 * only then anyway, and a crash in between replays every part from the outcome stored before.
 */
function lastParts(outcomes: KeyOutcome[], left: Map<KeyChange, number> | undefined): KeyOutcome[] {
  if (left === undefined) return outcomes;
  let all = true;
  for (const o of outcomes) {
    const n = (left.get(o.change) ?? o.rows) - o.rows;
    left.set(o.change, n);
    if (n > 0) all = false;
  }
  return all ? outcomes : outcomes.filter((o) => (left.get(o.change) ?? 0) <= 0);
}

/** A key's outcome to store: the platform's answer for its row, or `retrying` with the try's error. */
type StoredOutcome = RowOutcome | { status: 'retrying'; error: string };

/** What a key contributed to a row: its stored payload (not the merged row). */
function payloadOf(req: DeliveryRequest, row: DeliveryRow, item: DeliveryItem): ApiRow {
  return apiRow(req.source.match, row.identity, item.groups);
}

/** The sync_batch row of a request the platform answered. */
export function answeredBatch(
  optType: OptType,
  rows: number,
  startedAt: Date,
  r: Omit<BatchResult, 'outcomes'>,
): BatchRecord {
  return {
    optType,
    rows,
    httpStatus: r.httpStatus,
    code: r.code,
    msg: r.msg,
    apiStatus: r.apiStatus,
    successNum: r.successNum,
    failNum: r.failNum,
    startedAt,
    durationMs: r.durationMs,
  };
}

/** The sync_batch row of a request the platform rejected as a whole. */
export function rejectedBatch(
  optType: OptType,
  rows: number,
  startedAt: Date,
  err: { httpStatus: number; apiCode: string | undefined; message: string },
): BatchRecord {
  return {
    optType,
    rows,
    httpStatus: err.httpStatus,
    code: err.apiCode ?? null,
    msg: err.message,
    apiStatus: null,
    successNum: 0,
    failNum: rows,
    startedAt,
    durationMs: Date.now() - startedAt.getTime(),
  };
}
