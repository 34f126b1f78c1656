/**
 * The web console's lookups in the status schema, as typed values: rows found by key or identity
 * with the request that carried their outcome, and failed or retrying rows grouped by error. The
 * statements are console-sql.ts's (each on an index); `src/ops/console/` only turns these values
 * into its API's JSON. reads.ts re-exports them, so every reader of the status has one module.
 */
import type pg from 'pg';
import { consoleSql, SEARCHED_IDENTITIES, type SearchedIdentity } from './console-sql.js';
import type { BatchRecord } from './status-store.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The identities rows can be found by: those of SEARCHED_IDENTITIES with an index on sync_row (the
 * DBA creates them, sql/optional/identity-indexes.sql), in that order.
 */
export async function readIndexedIdentities(db: Queryable, schema: string): Promise<SearchedIdentity[]> {
  const res = await db.query<{ identity: SearchedIdentity }>(consoleSql(schema).identityIndexes, [
    schema,
    [...SEARCHED_IDENTITIES],
  ]);
  return SEARCHED_IDENTITIES.filter((f) => res.rows.some((r) => r.identity === f));
}

/** One key of a source (canonical JSON text), for the names of its key columns; undefined without rows. */
export async function readKeySample(
  db: Queryable,
  schema: string,
  source: string,
): Promise<string | undefined> {
  const res = await db.query<{ k: string }>(consoleSql(schema).keyShape, [source]);
  return res.rows[0]?.k;
}

/** A row's latest outcome. */
export interface RowOutcome {
  op: string;
  attempts: number;
  error: string | null;
  lsn: string | null;
  committedAt: Date | null;
  syncedAt: Date;
  payload: Record<string, unknown> | null;
}

interface OutcomeRecord {
  op: string;
  attempts: number;
  error: string | null;
  lsn: string | null;
  committed_at: Date | null;
  synced_at: Date;
  payload: Record<string, unknown> | null;
}

const outcomeOf = (r: OutcomeRecord): RowOutcome => ({
  op: r.op,
  attempts: r.attempts,
  error: r.error,
  lsn: r.lsn,
  committedAt: r.committed_at,
  syncedAt: r.synced_at,
  payload: r.payload,
});

/**
 * The sync_batch row of the request that carried an outcome, with its id: a BatchRecord as
 * status-store.ts writes it (`optType` may also be `truncate`), each field null-able as read.
 */
export type CarryingRequest = { id: string } & {
  [K in keyof BatchRecord]: (K extends 'optType' ? string : BatchRecord[K]) | null;
};

/** A row found by key or identity, with the request that carried its outcome (none for some). */
export interface FoundRow extends RowOutcome {
  source: string;
  /** Canonical JSON of the key columns, as sync_row.key holds it. */
  rowKey: string;
  status: string;
  request: CarryingRequest | null;
}

/**
 * Rows by key (each of `sources` with each of `keys`) or, with `identities` given, by `identity`
 * in those fields (each must have an index: readIndexedIdentities); of `source` only when given;
 * at most `limit`, ordered by source and key.
 */
export async function searchRows(
  db: Queryable,
  schema: string,
  q: {
    sources: string[];
    keys: string[];
    source: string | null;
    limit: number;
    identities: readonly SearchedIdentity[];
    identity: string | null;
  },
): Promise<FoundRow[]> {
  const res = await db.query<SearchRecord>(consoleSql(schema).search(q.identities), [
    q.sources,
    q.keys,
    q.source,
    q.limit,
    ...(q.identities.length > 0 ? [q.identity] : []),
  ]);
  return res.rows.map((r) => ({
    source: r.source,
    rowKey: r.row_key,
    status: r.status,
    ...outcomeOf(r),
    request:
      r.request_id === null
        ? null
        : {
            id: r.request_id,
            optType: r.opt_type,
            rows: r.rows,
            httpStatus: r.http_status,
            code: r.code,
            msg: r.msg,
            apiStatus: r.api_status,
            successNum: r.success_num,
            failNum: r.fail_num,
            startedAt: r.started_at,
            durationMs: r.duration_ms,
          },
  }));
}

interface SearchRecord extends OutcomeRecord {
  source: string;
  row_key: string;
  status: string;
  request_id: string | null;
  opt_type: string | null;
  rows: number | null;
  http_status: number | null;
  code: string | null;
  msg: string | null;
  api_status: number | null;
  success_num: number | null;
  fail_num: number | null;
  started_at: Date | null;
  duration_ms: number | null;
}

/** Failed or retrying rows of one source with one error. */
export interface FailureGroup {
  source: string;
  status: 'failed' | 'retrying';
  error: string | null;
  rows: number;
  oldestCommittedAt: Date | null;
  newestAt: Date | null;
}

/** Failure groups (of one status and source, or all), newest group first, a page of them. */
export async function readFailureGroups(
  db: Queryable,
  schema: string,
  o: { status?: 'failed' | 'retrying'; source?: string; limit: number; offset: number },
): Promise<FailureGroup[]> {
  const res = await db.query<{
    source: string;
    status: 'failed' | 'retrying';
    error: string | null;
    n: string;
    oldest: Date | null;
    newest: Date | null;
  }>(consoleSql(schema).failureGroups, [o.status ?? null, o.source ?? null, o.limit, o.offset]);
  return res.rows.map((r) => ({
    source: r.source,
    status: r.status,
    error: r.error,
    rows: Number(r.n),
    oldestCommittedAt: r.oldest,
    newestAt: r.newest,
  }));
}

/** A row of a failure group: its key (canonical JSON) and `synced_at` as text, the page's cursor. */
export interface GroupRow extends RowOutcome {
  key: string;
  syncedText: string;
}

/**
 * The rows of one failure group, newest first, at most `limit`; `after` is the (synced_at text,
 * key) of the previous page's last row, or nulls for the first page.
 */
export async function readGroupRows(
  db: Queryable,
  schema: string,
  group: { source: string; status: 'failed' | 'retrying'; error: string | null },
  after: [string, string] | [null, null],
  limit: number,
): Promise<GroupRow[]> {
  const res = await db.query<OutcomeRecord & { k: string; synced_text: string }>(
    consoleSql(schema).groupRows,
    [group.status, group.source, group.error, ...after, limit],
  );
  return res.rows.map((r) => ({ key: r.k, syncedText: r.synced_text, ...outcomeOf(r) }));
}
