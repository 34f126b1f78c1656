/**
 * Reading a source's rows by customer rather than by key: the rows whose identity columns hold any
 * of some values. Used where a gone row's groups are removed only if no other row of the source
 * still holds them for the same customer (src/pipeline/live-groups.ts). Values compare as trimmed
 * text, as the mapper builds identities; that reads the whole table once per call, so callers ask
 * for a page of customers at a time.
 */
import type pg from 'pg';
import type { Row } from '../decode/pgoutput.js';
import { quoteIdent, quoteTable } from '../util/sql.js';

/** Rows of `table` whose column holds one of the values, for any of the (column, values) given. */
export async function readRowsByIdentity(
  db: Pick<pg.ClientBase, 'query'>,
  table: { schema: string; name: string },
  columns: readonly string[],
  matches: ReadonlyArray<{ column: string; values: readonly string[] }>,
): Promise<Row[]> {
  const used = matches.filter((m) => m.values.length > 0);
  if (used.length === 0) return [];
  const where = used
    .map((m, i) => `btrim(${quoteIdent(m.column)}::text) = ANY($${i + 1}::text[])`)
    .join(' OR ');
  const res = await db.query<Row>(
    `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(table.schema, table.name)} WHERE ${where}`,
    used.map((m) => [...m.values]),
  );
  return res.rows;
}
