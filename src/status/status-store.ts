/**
 * Writes outcomes to `<statusSchema>.sync_status` and `sync_batch`, one statement per API request
 * (SPEC section 7), and reads back what the bridge last sent for a key (`deleteLookup: state`).
 * Writes are retried on connection errors forever: an outcome that was not stored must hold the
 * slot's position back, never be dropped.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { errorMessage, isRetryablePgError } from '../errors.js';
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
    const params: unknown[] = [source, rowsJson(rows)];
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
      batchCte = `b AS (
        INSERT INTO ${this.batchTable}
          (source, opt_type, rows, http_status, code, msg, api_status, success_num, fail_num, started_at, duration_ms)
        VALUES ($1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        RETURNING id
      ),`;
    }
    const sql = `WITH ${batchCte} r AS (
        SELECT * FROM jsonb_to_recordset($2::jsonb)
          AS x(k jsonb, op text, status text, attempts int, error text, lsn pg_lsn, at timestamptz, payload jsonb)
      )
      INSERT INTO ${this.statusTable}
        (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT $1, k, op, status, attempts, error, lsn, at, now(), payload FROM r
      ON CONFLICT (source, row_key) DO UPDATE SET
        op = EXCLUDED.op, status = EXCLUDED.status, attempts = EXCLUDED.attempts, error = EXCLUDED.error,
        lsn = EXCLUDED.lsn, committed_at = EXCLUDED.committed_at, synced_at = EXCLUDED.synced_at,
        payload = EXCLUDED.payload`;
    await this.withRetry('storing outcomes', () => this.pool.query(sql, params));
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
        const delayMs = backoffDelay(attempt, { baseMs: 200, maxMs: 10_000 });
        this.logger.warn({ attempt, delayMs, err: errorMessage(err) }, `${what} failed; retrying`);
        await sleep(delayMs);
      }
    }
  }
}

/**
 * The JSON text of a request's rows, built by hand: this runs for every row the bridge syncs.
 * Rows of one transaction share its LSN and commit time, so their text is formatted once.
 */
function rowsJson(rows: readonly StatusRow[]): string {
  let lastLsn = -1n;
  let lsnText = '';
  let lastAt: Date | undefined;
  let atText = '';
  const parts: string[] = new Array<string>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as StatusRow;
    if (r.lsn !== lastLsn) {
      lastLsn = r.lsn;
      lsnText = formatLsn(r.lsn);
    }
    if (r.committedAt !== lastAt) {
      lastAt = r.committedAt;
      atText = r.committedAt.toISOString();
    }
    parts[i] =
      `{"k":${r.rowKey},"op":"${r.op}","status":"${r.status}","attempts":${r.attempts},` +
      `"error":${r.error === null ? 'null' : JSON.stringify(r.error)},"lsn":"${lsnText}","at":"${atText}",` +
      `"payload":${r.payload === null || r.payload === undefined ? 'null' : JSON.stringify(r.payload)}}`;
  }
  return `[${parts.join(',')}]`;
}

/** jsonb prints objects with its own key order and spacing; re-serialize to our canonical text. */
export function canonicalKey(jsonbText: string): string {
  return JSON.stringify(JSON.parse(jsonbText));
}
