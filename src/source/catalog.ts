/**
 * What the database says about a source table: its columns, primary key and replica identity.
 * Plain reads; the checks that judge them are in ./checks.ts.
 */
import type pg from 'pg';

export interface TableInfo {
  oid: number;
  columns: Map<string, { type: string }>;
  primaryKey: string[];
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  /** Columns of the replica identity (the primary key for DEFAULT, all for FULL). */
  identityColumns: string[];
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Reads a table's columns, primary key and replica identity; null when the table does not exist. */
export async function describeTable(db: Queryable, schema: string, table: string): Promise<TableInfo | null> {
  const rel = await db.query<{ oid: number; relreplident: string }>(
    `SELECT c.oid::int AS oid, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [schema, table],
  );
  const r = rel.rows[0];
  if (!r) return null;
  const cols = await db.query<{ attname: string; type: string }>(
    `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [r.oid],
  );
  const idx = await db.query<{ attname: string; indisprimary: boolean; indisreplident: boolean }>(
    `SELECT a.attname, i.indisprimary, i.indisreplident
       FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) ORDER BY k.ord`,
    [r.oid],
  );
  const primaryKey = idx.rows.filter((x) => x.indisprimary).map((x) => x.attname);
  const replicaIdentity = ({ d: 'default', n: 'nothing', f: 'full', i: 'index' } as const)[
    r.relreplident as 'd' | 'n' | 'f' | 'i'
  ];
  const columns = new Map(cols.rows.map((c) => [c.attname, { type: c.type }]));
  const identityColumns =
    replicaIdentity === 'full'
      ? [...columns.keys()]
      : replicaIdentity === 'index'
        ? idx.rows.filter((x) => x.indisreplident).map((x) => x.attname)
        : replicaIdentity === 'default'
          ? primaryKey
          : [];
  return { oid: r.oid, columns, primaryKey, replicaIdentity, identityColumns };
}
