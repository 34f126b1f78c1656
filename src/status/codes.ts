/**
 * sync_row stores a row's op and status as one-byte codes and "no error" as '' (sql/011: with
 * wal_level=logical every rewritten outcome logs the whole row, so its bytes are WAL every day).
 * The statements that write sync_row write the codes; those that read it read `outcomeRows`, sync_row
 * with op and status as text and no error as null, as sync_status shows them. It is a plain
 * subquery, which the planner pulls up: a filter on `status` is one on sync_status_name(status_code),
 * the expression sync_row_unsynced_idx is built on, and one on (source_id, key) uses the primary key.
 */
import type { OptType, RowStatus } from '../domain/types.js';

/** sync_row.op_code of each operation (sync_op_name in SQL reads it back). */
export const OP_CODE: Readonly<Record<OptType, string>> = { add: 'a', update: 'u', delete: 'd' };

/** sync_row.status_code of each status (sync_status_name in SQL reads it back). */
export const STATUS_CODE: Readonly<Record<RowStatus, string>> = {
  synced: 's',
  failed: 'f',
  retrying: 'r',
  accepted: 'a',
  skipped: 'k',
  held: 'h',
};

/**
 * Statuses whose stored payload the platform may hold: what a re-sync or a reload must remove when
 * the row is gone. A failed key's counts too (a row failed before anything was sent keeps what the
 * platform holds; a failed request's groups are at worst ones the platform never took). Not
 * `skipped` or `held`.
 */
export const ON_PLATFORM: ReadonlySet<RowStatus> = new Set<RowStatus>([
  'synced',
  'accepted',
  'retrying',
  'failed',
]);

/** ON_PLATFORM as an SQL list of status names, for reads of `outcomeRows`: `('synced', ...)`. */
export const ON_PLATFORM_SQL = `(${[...ON_PLATFORM].map((s) => `'${s}'`).join(', ')})`;

/** A status as an SQL literal of its code: `'h'`. */
export function statusCode(status: RowStatus): string {
  return `'${STATUS_CODE[status]}'`;
}

/** An operation as an SQL literal of its code: `'d'`. */
export function opCode(op: OptType): string {
  return `'${OP_CODE[op]}'`;
}

/**
 * A sync_row's status as text in SQL (`alias` the table's, or empty): the expression
 * sync_row_unsynced_idx is built on, for statements that change rows (which cannot read `outcomeRows`).
 */
export function statusOf(schema: string, alias = ''): string {
  return `${schema}.sync_status_name(${alias ? `${alias}.` : ''}status_code)`;
}

/**
 * sync_row of a (quoted) schema as its readers want it: a subquery to use with an alias,
 * `FROM ${outcomeRows(schema)} AS o`. Columns: source_id, key, op, status, attempts, error, lsn,
 * committed_at, synced_at, payload, and `x` (the row's xmin).
 */
export function outcomeRows(schema: string): string {
  return `(SELECT source_id, key, ${schema}.sync_op_name(op_code) AS op, ${statusOf(schema)} AS status,
           attempts, NULLIF(error, '') AS error, lsn, committed_at, synced_at, payload, xmin AS x
      FROM ${schema}.sync_row)`;
}
