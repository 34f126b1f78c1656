/**
 * What the database says about a source table: its columns, primary key and replica identity, and
 * which columns the bridge maps. Plain reads; the checks that judge them are in ./checks.ts.
 */
import type pg from 'pg';
import type { SourceConfig } from '../config/types.js';
import { IDENTITY_FIELDS } from '../config/types.js';

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

/** Columns a source maps (identities, groups) and filters on. */
export function mappedColumns(source: SourceConfig): string[] {
  const cols = IDENTITY_FIELDS.map((f) => source.columns[f]).filter((c): c is string => c !== undefined);
  cols.push(source.columns.groups);
  cols.push(...Object.keys(source.where ?? {}));
  return [...new Set(cols)];
}

/**
 * The mapped columns an old row (a DELETE's, or an UPDATE's before image) must carry. Row mode
 * clears a gone identity whole, so the identities (and the filter) are enough, not the groups;
 * membership mode removes one pair, so its group too.
 */
export function oldImageColumns(source: SourceConfig): string[] {
  const cols = IDENTITY_FIELDS.map((f) => source.columns[f]).filter((c): c is string => c !== undefined);
  if (source.mode === 'membership') cols.push(source.columns.groups);
  cols.push(...Object.keys(source.where ?? {}));
  return [...new Set(cols)];
}
