/**
 * Reading source tables: the snapshot (the rows that already exist, read in the snapshot exported by
 * the slot's creation with `SET TRANSACTION SNAPSHOT`, in chunks through a cursor so memory stays
 * flat), and single rows by key.
 */
import type pg from 'pg';
import type { SourceConfig } from '../config/types.js';
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
