/**
 * Writes outcomes to `<statusSchema>.sync_row` (which the `sync_status` view shows) and `sync_batch`,
 * one statement per API request (docs/status-schema.md), and reads back what the bridge last sent for a key (`deleteLookup: state`).
 * Writes are retried on connection errors forever: an outcome that was not stored must hold the
 * slot's position back, never be dropped.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { errorMessage, isConnectionLoss, isRetryablePgError } from '../errors.js';
import type { OptType, RowStatus } from '../domain/types.js';
import { RETRY, retry } from '../util/retry.js';
import { formatLsn, parseLsn } from '../util/lsn.js';
import { statusSql, type StatusSql } from './sql.js';
import { encodeStatusRows, statusRowParams, type StatusRow, type WriteShape } from './status-write.js';
import { WriteShapes, isKeyTaken } from './write-shapes.js';

export { encodeStatusRows, statusRowParams, type EncodedStatusRows, type StatusRow } from './status-write.js';

/** One row of sync_batch: an API request. */
export interface BatchRecord {
  optType: OptType;
  rows: number;
  httpStatus: number | null;
  code: string | null;
  msg: string | null;
  apiStatus: number | null;
  successNum: number | null;
  failNum: number | null;
  startedAt: Date;
  durationMs: number;
}

export interface LastSent {
  op: OptType;
  status: RowStatus;
  payload: Record<string, unknown> | null;
}

/** A sync_status row in status `failed` (for `retry-failed`). */
export interface FailedRow {
  rowKey: string;
  attempts: number;
  lsn: bigint;
  committedAt: Date;
  payload: Record<string, unknown> | null;
}

/** A failed row as the statements read it. */
/** A sync_status row as the failed and held rows' reads return it. */
export interface FailedRowRecord {
  k: string;
  attempts: number;
  lsn: string | null;
  committed_at: Date | null;
  payload: Record<string, unknown> | null;
}

export function failedRowOf(r: FailedRowRecord): FailedRow {
  return {
    rowKey: r.k,
    attempts: r.attempts,
    lsn: r.lsn ? parseLsn(r.lsn) : 0n,
    committedAt: r.committed_at ?? new Date(),
    payload: r.payload,
  };
}

/**
 * An outcome of a change of which nothing reached the platform: the key's op and payload stay. A
 * delete the platform refused removed nothing either: the payload before it says what the key's
 * customer still holds, which a retry or the key's next change must remove.
 */
function keepsStored(r: StatusRow, answered: boolean): boolean {
  if (r.status === 'failed' && r.op === 'delete') return true;
  return (
    !answered &&
    (r.status === 'retrying' || (r.status === 'failed' && (r.payload === null || r.payload === undefined)))
  );
}

export class StatusStore {
  readonly sql: StatusSql;
  private closed = false;
  /**
   * The status write's `insert` shape as named prepared statements: parsed and planned once per
   * connection rather than for every request (about 15% of its database CPU; docs/benchmark.md).
   * Named by a hash of their text, so stores on other schemas in one process never share a name.
   * The `update` shape is sent unnamed, planned at every write (src/status/status-write.ts).
   */
  private readonly writes: Record<'withBatch' | 'alone', { name: string; text: string }>;
  /** The `insert` shape without ON CONFLICT, for requests of new keys only (write-shapes.ts). */
  private readonly fresh: Record<'withBatch' | 'alone', { name: string; text: string }>;
  private readonly updates: Record<'withBatch' | 'alone', string>;
  private readonly shapes = new WriteShapes();
  /** Sources known to be in sync_source (numbered once per store). */
  private readonly numbered = new Set<string>();
  /**
   * Per source, keys whose last outcome may be failed or retrying (a superset: keys leave it only
   * when it is read again), and the read of the stored ones, once per session (`forgetUnsettled`).
   */
  private readonly unsettled = new Map<string, { keys: Set<string>; read?: Promise<void> }>();

  constructor(
    private readonly pool: pg.Pool,
    statusSchema: string,
    private readonly logger: Logger,
    /** Told of every failure that means the database is gone or going away (before the retry). */
    private readonly onConnectionLoss: (err: unknown) => void = () => {},
  ) {
    this.sql = statusSql(statusSchema);
    const named = (text: string): { name: string; text: string } => ({
      name: `tuzhan_write_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`,
      text,
    });
    this.writes = {
      withBatch: named(this.sql.writeRequest(true, 'insert')),
      alone: named(this.sql.writeRequest(false, 'insert')),
    };
    this.fresh = {
      withBatch: named(this.sql.writeRequest(true, 'new')),
      alone: named(this.sql.writeRequest(false, 'new')),
    };
    this.updates = {
      withBatch: this.sql.writeRequest(true, 'update'),
      alone: this.sql.writeRequest(false, 'update'),
    };
  }

  close(): void {
    this.closed = true;
  }

  /** Stores the outcomes of one API request and its sync_batch row in one statement. */
  async writeRequest(source: string, batch: BatchRecord | null, all: readonly StatusRow[]): Promise<void> {
    if (!batch && all.length === 0) return;
    for (const r of all)
      if (r.status === 'failed' || r.status === 'retrying') this.unsettledOf(source).keys.add(r.rowKey);
    let rows = all;
    // Outcomes of changes that removed nothing: a first failed try, a row failed before it was sent
    // (its groups unsendable), a key whose delete the platform refused. The stored op and payload
    // stay (sql.ts): they say what the platform still holds, and the key's next change removes from
    // them. Written apart from the request's batch row (a refusal is rare).
    const keep = all.filter((r) => keepsStored(r, batch !== null));
    if (keep.length > 0) {
      await this.ensureSource(source);
      await this.withRetry('storing outcomes', () =>
        this.pool.query(this.sql.writeRetrying, statusRowParams(source, encodeStatusRows(keep))),
      );
      if (!batch && keep.length === all.length) return;
      rows = all.filter((r) => !keepsStored(r, batch !== null));
    }
    const params = statusRowParams(source, encodeStatusRows(rows));
    if (batch) {
      params.push(
        batch.optType,
        batch.rows,
        batch.httpStatus,
        batch.code,
        batch.msg,
        batch.apiStatus,
        batch.successNum,
        batch.failNum,
        batch.startedAt,
        batch.durationMs,
      );
    }
    // The shape that fits what this source's writes found lately (write-shapes.ts): a plain INSERT
    // after a run of new keys, an UPDATE once most keys are known (no row lock logged), else the upsert.
    const shape = this.shapes.choose(source);
    const kind = batch ? 'withBatch' : 'alone';
    const statement = (s: WriteShape) =>
      s === 'update' ? { text: this.updates[kind] } : (s === 'new' ? this.fresh : this.writes)[kind];
    await this.ensureSource(source);
    const write = (s: WriteShape) =>
      this.pool.query<{ written: number; inserted: number }>({ ...statement(s), values: params });
    const res = await this.withRetry('storing outcomes', () =>
      write(shape).catch((err: unknown) => {
        if (shape !== 'new' || !isKeyTaken(err)) throw err;
        this.shapes.collided(source); // nothing was written, the batch row neither
        return write('insert');
      }),
    );
    const { written = 0, inserted = 0 } = res.rows[0] ?? {};
    this.shapes.wrote(source, written, inserted);
  }

  /**
   * Keys of a source whose last outcome may be failed or retrying: what the platform holds for
   * them is their stored payload, not the WAL's old row (src/batching/resolve.ts). Read from the
   * table once per session, then kept up to date by this store's writes.
   */
  async unsettledKeys(source: string): Promise<ReadonlySet<string>> {
    const u = this.unsettledOf(source);
    u.read ??= this.withRetry('reading sync state', () =>
      this.pool.query<{ k: string }>(this.sql.unsettledKeys, [source]),
    ).then(
      (res) => {
        for (const r of res.rows) u.keys.add(r.k);
      },
      (err: unknown) => {
        u.read = undefined; // read again next time
        throw err;
      },
    );
    await u.read;
    return u.keys;
  }

  /** A session begins: another bridge (or a command) may have stored outcomes meanwhile. */
  forgetUnsettled(): void {
    this.unsettled.clear();
  }

  private unsettledOf(source: string): { keys: Set<string>; read?: Promise<void> } {
    let u = this.unsettled.get(source);
    if (!u) this.unsettled.set(source, (u = { keys: new Set() }));
    return u;
  }

  /** Numbers the source in sync_source before its first outcome is written. */
  private async ensureSource(source: string): Promise<void> {
    if (this.numbered.has(source)) return;
    await this.withRetry('numbering a source', () => this.pool.query(this.sql.ensureSource, [source]));
    this.numbered.add(source);
  }

  /** Records a TRUNCATE of a source table in sync_batch (opt_type `truncate`, no request). */
  async recordTruncate(source: string, msg: string): Promise<void> {
    await this.withRetry('recording a truncate', () =>
      this.pool.query(this.sql.recordTruncate, [source, msg]),
    );
  }

  /** Marks a source's rows synced before a TRUNCATE at `lsn` (`onTruncate: ignore`); how many. */
  async markTruncated(source: string, note: string, lsn: bigint): Promise<number> {
    const res = await this.withRetry('marking truncated rows', () =>
      this.pool.query(this.sql.markTruncated, [source, note, formatLsn(lsn)]),
    );
    return res.rowCount ?? 0;
  }

  /** Runs another module's statements (jobs) on this store's pool, with its retries. */
  run<T>(what: string, fn: (db: pg.Pool) => Promise<T>): Promise<T> {
    return this.withRetry(what, () => fn(this.pool));
  }

  /** Whether sync_status holds any row of the source (a source the bridge synced before). */
  async hasRows(source: string): Promise<boolean> {
    const res = await this.withRetry('reading sync state', () => this.pool.query(this.sql.hasRows, [source]));
    return (res.rowCount ?? 0) > 0;
  }

  /** What the bridge last recorded for these keys of a source. */
  async lastSent(source: string, rowKeys: readonly string[]): Promise<Map<string, LastSent>> {
    const out = new Map<string, LastSent>();
    if (rowKeys.length === 0) return out;
    const res = await this.withRetry('reading sync state', () =>
      this.pool.query<{ k: string; op: OptType; status: RowStatus; payload: Record<string, unknown> | null }>(
        this.sql.lastSent,
        [source, rowKeys],
      ),
    );
    for (const r of res.rows) out.set(r.k, { op: r.op, status: r.status, payload: r.payload });
    return out;
  }

  /**
   * Keys of a source whose last outcome left groups on the platform (for `onTruncate: delete-all`),
   * page by page in key order.
   */
  syncedKeys(
    source: string,
    pageSize = 1000,
  ): AsyncGenerator<Array<{ rowKey: string; payload: Record<string, unknown> }>> {
    return this.pages(
      source,
      pageSize,
      this.sql.syncedKeys,
      [],
      (r: { k: string; payload: Record<string, unknown> }) => ({
        rowKey: r.k,
        payload: r.payload,
      }),
    );
  }

  /** A source's failed rows, page by page in key order. */
  failedRows(source: string, pageSize: number, error?: string | null): AsyncGenerator<FailedRow[]> {
    const sql = error === undefined ? this.sql.failedRows : this.sql.failedRowsWithError;
    const extra = error === undefined ? [] : [error];
    return this.pages(source, pageSize, sql, extra, failedRowOf);
  }

  /** Those of these keys of a source that are still failed (a retry reads them again in their lane). */
  async failedRowsByKey(source: string, rowKeys: readonly string[]): Promise<FailedRow[]> {
    if (rowKeys.length === 0) return [];
    const res = await this.withRetry('reading sync state', () =>
      this.pool.query<FailedRowRecord>(this.sql.failedRowsByKey, [source, rowKeys]),
    );
    return res.rows.map(failedRowOf);
  }

  /** Failed rows per source; empty when the status schema does not exist yet. */
  async failedCounts(schemaName: string): Promise<Map<string, number>> {
    const exists = await this.pool.query<{ ok: boolean }>(this.sql.exists, [schemaName]);
    if (!exists.rows[0]?.ok) return new Map();
    const res = await this.pool.query<{ source: string; n: string }>(this.sql.failedCounts);
    return new Map(res.rows.map((r) => [r.source, Number(r.n)]));
  }

  /** Keyset paging over a statement taking ($1 source, $2 last key, $3 page size). */
  private async *pages<R extends { k: string }, T>(
    source: string,
    pageSize: number,
    sql: string,
    extra: readonly unknown[],
    map: (row: R) => T,
  ): AsyncGenerator<T[]> {
    let after: string | null = null;
    for (;;) {
      const res: pg.QueryResult<R> = await this.withRetry('reading sync state', () =>
        this.pool.query<R>(sql, [source, after, pageSize, ...extra]),
      );
      if (res.rows.length === 0) return;
      yield res.rows.map(map);
      if (res.rows.length < pageSize) return;
      after = (res.rows[res.rows.length - 1] as R).k;
    }
  }

  /** Runs a query, retrying connection-level failures with backoff until it succeeds or the store closes. */
  async withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retry(fn, {
      policy: (err) => (this.closed || !isRetryablePgError(err) ? undefined : RETRY.database),
      onRetry: ({ attempt, error, delayMs }) => {
        if (isConnectionLoss(error)) this.onConnectionLoss(error);
        this.logger.warn({ attempt, delayMs, err: errorMessage(error) }, `${what} failed; retrying`);
      },
    });
  }
}
