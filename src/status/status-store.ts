/**
 * Writes outcomes to `<statusSchema>.sync_status` and `sync_batch`, one statement per API request
 * (SPEC section 7), and reads back what the bridge last sent for a key (`deleteLookup: state`).
 * Writes are retried on connection errors forever: an outcome that was not stored must hold the
 * slot's position back, never be dropped.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { errorMessage, isConnectionLoss, isRetryablePgError } from '../errors.js';
import type { RowStatus } from '../ops/events.js';
import type { BatchResult } from '../tuzhan/client.js';
import type { OptType } from '../tuzhan/types.js';
import { backoffDelay, sleep } from '../util/backoff.js';
import { formatLsn } from '../util/lsn.js';
import { quoteIdent } from '../util/sql.js';

/** One row of sync_status. */
export interface StatusRow {
  /** Canonical JSON text of the key columns. */
  rowKey: string;
  op: OptType;
  status: RowStatus;
  attempts: number;
  error: string | null;
  lsn: bigint;
  committedAt: Date;
  payload: unknown;
}

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

export interface LastSent {
  op: OptType;
  status: RowStatus;
  payload: Record<string, unknown> | null;
}

export class StatusStore {
  private readonly statusTable: string;
  private readonly batchTable: string;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    statusSchema: string,
    private readonly logger: Logger,
    /** Told of every failure that means the database is gone or going away (before the retry). */
    private readonly onConnectionLoss: (err: unknown) => void = () => {},
  ) {
    this.statusTable = `${quoteIdent(statusSchema)}.sync_status`;
    this.batchTable = `${quoteIdent(statusSchema)}.sync_batch`;
  }

  close(): void {
    this.closed = true;
  }

  /** Stores the outcomes of one API request and its sync_batch row in one statement. */
  async writeRequest(source: string, batch: BatchRecord | null, rows: readonly StatusRow[]): Promise<void> {
    if (!batch && rows.length === 0) return;
    const e = encodeStatusRows(rows);
    const params: unknown[] = [
      source,
      e.keys,
      e.payloads,
      e.tupleOf,
      e.ops,
      e.statuses,
      e.attempts,
      e.errors,
      e.lsns,
      e.committedAts,
    ];
    let batchCte = '';
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
      batchCte = `WITH b AS (
        INSERT INTO ${this.batchTable}
          (source, opt_type, rows, http_status, code, msg, api_status, success_num, fail_num, started_at, duration_ms)
        VALUES ($1, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
        RETURNING id
      )`;
    }
    // Row i has key $2[i], payload $3[i] and the outcome tuple number $4[i] of the arrays $5..$10.
    // An outcome never replaces that of a later change of the key: a replayed window may be cut
    // into flushes differently, and a bridge that just lost its lock may still be finishing.
    const sql = `${batchCte}
      INSERT INTO ${this.statusTable}
        (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT $1, r.k, ($5::text[])[r.t], ($6::text[])[r.t], ($7::int[])[r.t], ($8::text[])[r.t],
             ($9::pg_lsn[])[r.t], ($10::timestamptz[])[r.t], now(), NULLIF(r.p, 'null'::jsonb)
        FROM ROWS FROM (jsonb_array_elements($2::jsonb), jsonb_array_elements($3::jsonb), unnest($4::int[]))
          AS r(k, p, t)
      ON CONFLICT (source, row_key) DO UPDATE SET
        op = EXCLUDED.op, status = EXCLUDED.status, attempts = EXCLUDED.attempts, error = EXCLUDED.error,
        lsn = EXCLUDED.lsn, committed_at = EXCLUDED.committed_at, synced_at = EXCLUDED.synced_at,
        payload = EXCLUDED.payload
      WHERE ${this.statusTable}.lsn IS NULL OR ${this.statusTable}.lsn <= EXCLUDED.lsn`;
    await this.withRetry('storing outcomes', () => this.pool.query(sql, params));
  }

  /** Whether sync_status holds any row of the source (a source the bridge synced before). */
  async hasRows(source: string): Promise<boolean> {
    const res = await this.withRetry('reading sync state', () =>
      this.pool.query(`SELECT 1 FROM ${this.statusTable} WHERE source = $1 LIMIT 1`, [source]),
    );
    return (res.rowCount ?? 0) > 0;
  }

  /** What the bridge last recorded for these keys of a source. */
  async lastSent(source: string, rowKeys: readonly string[]): Promise<Map<string, LastSent>> {
    const out = new Map<string, LastSent>();
    if (rowKeys.length === 0) return out;
    const res = await this.withRetry('reading sync state', () =>
      this.pool.query<{ k: string; op: OptType; status: RowStatus; payload: Record<string, unknown> | null }>(
        `SELECT row_key::text AS k, op, status, payload FROM ${this.statusTable}
          WHERE source = $1 AND row_key = ANY($2::jsonb[])`,
        [source, rowKeys],
      ),
    );
    for (const r of res.rows) out.set(canonicalKey(r.k), { op: r.op, status: r.status, payload: r.payload });
    return out;
  }

  /**
   * Keys of a source whose last outcome left groups on the platform (for `onTruncate: delete-all`),
   * page by page in key order.
   */
  async *syncedKeys(
    source: string,
    pageSize = 1000,
  ): AsyncGenerator<Array<{ rowKey: string; payload: Record<string, unknown> }>> {
    let after: string | null = null;
    while (true) {
      const res: pg.QueryResult<{ k: string; payload: Record<string, unknown> }> = await this.withRetry(
        'reading synced keys',
        () =>
          this.pool.query(
            `SELECT row_key::text AS k, payload FROM ${this.statusTable}
              WHERE source = $1 AND op <> 'delete' AND status IN ('synced', 'accepted', 'retrying')
                AND payload IS NOT NULL AND ($2::jsonb IS NULL OR row_key > $2::jsonb)
              ORDER BY row_key LIMIT $3`,
            [source, after, pageSize],
          ),
      );
      if (res.rows.length === 0) return;
      yield res.rows.map((r) => ({ rowKey: canonicalKey(r.k), payload: r.payload }));
      after = (res.rows[res.rows.length - 1] as { k: string }).k;
    }
  }

  /** Runs a query, retrying connection-level failures with backoff until it succeeds or the store closes. */
  async withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.closed || !isRetryablePgError(err)) throw err;
        if (isConnectionLoss(err)) this.onConnectionLoss(err);
        const delayMs = backoffDelay(attempt, { baseMs: 200, maxMs: 10_000 });
        this.logger.warn({ attempt, delayMs, err: errorMessage(err) }, `${what} failed; retrying`);
        await sleep(delayMs);
      }
    }
  }
}

/** The parameters of a status write: see `encodeStatusRows`. */
export interface EncodedStatusRows {
  /** JSON array of the rows' keys (their canonical JSON text). */
  keys: string;
  /** JSON array of the rows' payloads (null for none). */
  payloads: string;
  /** int[] literal: each row's outcome tuple (1-based) in the arrays below. */
  tupleOf: string;
  ops: string;
  statuses: string;
  attempts: string;
  errors: string;
  lsns: string;
  committedAts: string;
}

/**
 * A request's status rows in the compact form the status write takes: keys and payloads as two
 * JSON arrays, and the rest (op, status, attempts, error, LSN, commit time), which rows of a
 * request mostly share, as a short table of distinct tuples that each row points into. This runs
 * for every row the bridge syncs: it builds ~60 bytes of text per row, and PostgreSQL parses the
 * LSN and timestamp once per tuple rather than once per row (see docs/benchmark.md).
 */
export function encodeStatusRows(rows: readonly StatusRow[]): EncodedStatusRows {
  const n = rows.length;
  const keys = new Array<string>(n);
  const payloads = new Array<string>(n);
  const tupleOf = new Array<number>(n);
  const ops: string[] = [];
  const statuses: string[] = [];
  const attempts: number[] = [];
  const errors: string[] = [];
  const lsns: string[] = [];
  const committedAts: string[] = [];
  const seen = new Map<string, number>();
  let prev: StatusRow | undefined;
  let prevTuple = 0;
  for (let i = 0; i < n; i++) {
    const r = rows[i] as StatusRow;
    keys[i] = r.rowKey;
    payloads[i] = r.payload === null || r.payload === undefined ? 'null' : JSON.stringify(r.payload);
    if (prev === undefined || !sameTuple(prev, r)) {
      const id = `${r.op}\u0000${r.status}\u0000${r.attempts}\u0000${r.lsn}\u0000${r.committedAt.getTime()}\u0000${r.error === null ? 'N' : `E${r.error}`}`;
      let t = seen.get(id);
      if (t === undefined) {
        ops.push(r.op);
        statuses.push(r.status);
        attempts.push(r.attempts);
        errors.push(r.error === null ? 'NULL' : arrayElement(r.error));
        lsns.push(formatLsn(r.lsn));
        committedAts.push(`"${r.committedAt.toISOString()}"`);
        t = ops.length;
        seen.set(id, t);
      }
      prev = r;
      prevTuple = t;
    }
    tupleOf[i] = prevTuple;
  }
  return {
    keys: `[${keys.join(',')}]`,
    payloads: `[${payloads.join(',')}]`,
    tupleOf: `{${tupleOf.join(',')}}`,
    ops: `{${ops.join(',')}}`,
    statuses: `{${statuses.join(',')}}`,
    attempts: `{${attempts.join(',')}}`,
    errors: `{${errors.join(',')}}`,
    lsns: `{${lsns.join(',')}}`,
    committedAts: `{${committedAts.join(',')}}`,
  };
}

function sameTuple(a: StatusRow, b: StatusRow): boolean {
  return (
    a.op === b.op &&
    a.status === b.status &&
    a.attempts === b.attempts &&
    a.error === b.error &&
    a.lsn === b.lsn &&
    a.committedAt.getTime() === b.committedAt.getTime()
  );
}

/** A text as an element of a PostgreSQL array literal: double-quoted, `"` and `\` escaped. */
function arrayElement(text: string): string {
  return `"${text.replace(/["\\]/g, '\\$&')}"`;
}

/** jsonb prints objects with its own key order and spacing; re-serialize to our canonical text. */
export function canonicalKey(jsonbText: string): string {
  return JSON.stringify(JSON.parse(jsonbText));
}
