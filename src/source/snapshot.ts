/**
 * Reading source tables: the snapshot (the rows that already exist, read in the snapshot exported by
 * the slot's creation with `SET TRANSACTION SNAPSHOT`, in chunks through a cursor so memory stays
 * flat), and single rows by key.
 */
import type pg from 'pg';
import type { FilterValue, SourceConfig } from '../config/types.js';
import type { Row } from '../decode/pgoutput.js';
import { quoteIdent, quoteTable } from '../util/sql.js';

export interface SnapshotReader {
  /** Called for each chunk of rows of a source; awaited (backpressure). */
  onRows(source: SourceConfig, rows: Row[]): Promise<void>;
  /** Called after a source's last chunk, with the client still in the snapshot's transaction. */
  onSourceDone?(source: SourceConfig, client: pg.ClientBase): Promise<void>;
}

/** Reads every source table in the exported snapshot. Returns the number of rows read. */
export async function readSnapshot(
  client: pg.ClientBase,
  snapshotName: string,
  sources: ReadonlyArray<{ config: SourceConfig; columns: readonly string[] }>,
  reader: SnapshotReader,
  chunkSize = 5000,
): Promise<number> {
  let total = 0;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    // The snapshot name is a server-generated token; it cannot be a bind parameter here.
    await client.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`);
    for (const s of sources) {
      const cols = s.columns.map(quoteIdent).join(', ');
      await client.query(
        `DECLARE tuzhan_snapshot NO SCROLL CURSOR FOR SELECT ${cols} FROM ${quoteTable(s.config.schema, s.config.tableName)}`,
      );
      while (true) {
        const res = await client.query<Row>(`FETCH ${chunkSize} FROM tuzhan_snapshot`);
        if (res.rows.length === 0) break;
        total += res.rows.length;
        await reader.onRows(s.config, res.rows);
      }
      await client.query('CLOSE tuzhan_snapshot');
      await reader.onSourceDone?.(s.config, client);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
  return total;
}

/** The current values of a source row by key (unchanged TOAST values, `retry-failed`), or null when gone. */
export async function readRowByKey(
  db: Pick<pg.ClientBase, 'query'>,
  schema: string,
  table: string,
  columns: readonly string[],
  key: Record<string, unknown>,
): Promise<Row | null> {
  const keys = Object.keys(key);
  const where = keys.map((k, i) => `${quoteIdent(k)} = $${i + 1}`).join(' AND ');
  const res = await db.query<Row>(
    `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(schema, table)} WHERE ${where}`,
    keys.map((k) => key[k]),
  );
  return res.rows[0] ?? null;
}

/** A filter of `sources[].where`'s syntax as SQL (values compared as text, as the mapper does). */
export function filterSql(
  filter: Readonly<Record<string, FilterValue | readonly FilterValue[]>>,
  firstParam: number,
): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const [col, expected] of Object.entries(filter)) {
    const values = Array.isArray(expected) ? expected : [expected];
    const nonNull = values.filter((v) => v !== null).map(String);
    const terms: string[] = [];
    if (values.some((v) => v === null)) terms.push(`${quoteIdent(col)} IS NULL`);
    if (nonNull.length) {
      params.push(nonNull);
      terms.push(`${quoteIdent(col)}::text = ANY($${firstParam + params.length - 1}::text[])`);
    }
    parts.push(terms.length === 1 ? (terms[0] as string) : `(${terms.join(' OR ')})`);
  }
  return { sql: parts.join(' AND ') || 'true', params };
}

/**
 * The next chunk of a source's rows in key order, after `afterKey` (the key columns' values of the
 * last row done), optionally filtered. A plain read in its own snapshot: a backfill orders it
 * against the stream with watermarks.
 */
export async function readChunk(
  db: Pick<pg.ClientBase, 'query'>,
  table: { schema: string; name: string },
  columns: readonly string[],
  keyColumns: readonly string[],
  afterKey: readonly unknown[] | undefined,
  filter: Readonly<Record<string, FilterValue | readonly FilterValue[]>> | undefined,
  limit: number,
): Promise<Row[]> {
  const keys = keyColumns.map(quoteIdent);
  const params: unknown[] = [];
  const where: string[] = [];
  if (afterKey) {
    params.push(...afterKey);
    where.push(`(${keys.join(', ')}) > (${afterKey.map((_, i) => `$${i + 1}`).join(', ')})`);
  }
  if (filter) {
    const f = filterSql(filter, params.length + 1);
    params.push(...f.params);
    where.push(f.sql);
  }
  params.push(limit);
  const res = await db.query<Row>(
    `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(table.schema, table.name)}
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${keys.join(', ')} LIMIT $${params.length}`,
    params,
  );
  return res.rows;
}

/**
 * The rows a filter matches, counted: a filtered backfill's total. The planner's estimate of the
 * filter is no good (its values are compared as text, which hides the column's statistics), and the
 * table's would overstate it by far; the backfill reads those rows anyway, so this costs at most as
 * much again.
 */
export async function countMatching(
  db: Pick<pg.ClientBase, 'query'>,
  table: { schema: string; name: string },
  filter: Readonly<Record<string, FilterValue | readonly FilterValue[]>>,
): Promise<number> {
  const f = filterSql(filter, 1);
  const res = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM ${quoteTable(table.schema, table.name)} WHERE ${f.sql}`,
    f.params,
  );
  return Number(res.rows[0]?.n ?? 0);
}

/** The planner's estimate of a table's rows (counted when it has none). */
export async function estimateRows(
  db: Pick<pg.ClientBase, 'query'>,
  table: { schema: string; name: string },
): Promise<number> {
  const qualified = quoteTable(table.schema, table.name);
  const res = await db.query<{ n: string }>(
    `SELECT reltuples::bigint::text AS n FROM pg_class WHERE oid = $1::regclass`,
    [qualified],
  );
  const n = Number(res.rows[0]?.n ?? -1);
  if (n >= 0) return n;
  const counted = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${qualified}`);
  return Number(counted.rows[0]?.n ?? 0);
}
