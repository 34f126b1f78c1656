/**
 * The startup checks of `run` and the findings of `check`: the server (wal_level, the REPLICATION
 * attribute, the publication and who may change it, the status schema, the slot and its WAL
 * headroom) and each source (its table, columns, key and replica identity), judged from the plain
 * reads of ./catalog.ts and ./slot.ts. Every finding that fails carries its fix.
 */
import type pg from 'pg';
import type { Config, SourceConfig } from '../config/types.js';
import { closest } from '../config/closest.js';
import { formatBytes } from '../util/format.js';
import { quoteIdent, quoteTable } from '../util/sql.js';
import { mappedColumns, oldImageColumns } from '../mapping/columns.js';
import { describeTable, type TableInfo } from './catalog.js';
import { failoverFindings } from './failover.js';
import type { Finding } from './finding.js';
import { readPublication, readSlot, type SlotState } from './slot.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export type { Finding } from './finding.js';

export interface SourceFindings {
  findings: Finding[];
  /** Key columns, when the table and key could be resolved. */
  keyColumns?: string[];
  table?: TableInfo;
}

/** ` (did you mean "mobile"?)`, or with several columns missing, which hint is for which. */
function didYouMean(hints: ReadonlyArray<readonly [string, string]>, missing: number): string {
  if (hints.length === 0) return '';
  if (missing === 1) return ` (did you mean "${hints[0]?.[1]}"?)`;
  return ` (did you mean ${hints.map(([c, h]) => `"${h}" for "${c}"`).join(', ')}?)`;
}

/** Checks one source against the catalog. */
export async function checkSource(db: Queryable, source: SourceConfig): Promise<SourceFindings> {
  const name = `source ${source.name}`;
  const qualified = quoteTable(source.schema, source.tableName);
  const table = await describeTable(db, source.schema, source.tableName);
  if (!table) {
    return {
      findings: [
        {
          check: `${name}: table`,
          ok: false,
          detail: `table ${qualified} does not exist`,
          fix: `create it, or correct sources[].table (written as schema.table)`,
        },
      ],
    };
  }
  const findings: Finding[] = [];
  // Reading a table takes USAGE on its schema as well: without it the snapshot fails, though
  // has_table_privilege says yes.
  const priv = await db.query<{ sel: boolean; usage: boolean }>(
    `SELECT has_table_privilege(c.oid, 'SELECT') AS sel, has_schema_privilege(c.relnamespace, 'USAGE') AS usage
       FROM pg_class c WHERE c.oid = $1`,
    [table.oid],
  );
  const { sel = false, usage = false } = priv.rows[0] ?? {};
  const schema = quoteIdent(source.schema);
  findings.push({
    check: `${name}: SELECT privilege`,
    ok: sel && usage,
    detail:
      sel && usage
        ? `can read ${qualified}`
        : `the bridge's role ${sel ? 'has SELECT on' : 'cannot SELECT from'} ${qualified}${usage ? '' : `${sel ? ' but' : ' and'} lacks USAGE on schema ${schema}`}`,
    fix: [
      ...(usage ? [] : [`GRANT USAGE ON SCHEMA ${schema} TO <bridge role>;`]),
      ...(sel ? [] : [`GRANT SELECT ON ${qualified} TO <bridge role>`]),
    ].join(' '),
  });

  const missing = [...mappedColumns(source), ...(source.key ?? [])].filter((c) => !table.columns.has(c));
  // Column names are case-sensitive (quoted), so a near miss is worth naming.
  const hints = missing
    .map((c) => [c, closest(c, table.columns.keys())] as const)
    .filter((h): h is readonly [string, string] => h[1] !== undefined);
  findings.push({
    check: `${name}: columns`,
    ok: missing.length === 0,
    detail: missing.length
      ? `${qualified} has no column ${missing.map((c) => `"${c}"`).join(', ')}${didYouMean(hints, missing.length)}`
      : 'all mapped columns exist',
    fix: 'correct sources[].columns / key / where, or add the column',
  });

  const keyColumns = source.key ? [...source.key] : table.primaryKey;
  findings.push({
    check: `${name}: key`,
    ok: keyColumns.length > 0,
    detail: keyColumns.length
      ? `key (${keyColumns.join(', ')})`
      : `${qualified} has no primary key and no key is configured`,
    fix: `add a primary key, or set sources[].key`,
  });

  const identity = new Set(table.identityColumns);
  const keyInIdentity = keyColumns.every((c) => identity.has(c));
  const needed = oldImageColumns(source);
  const mappedInIdentity = needed.every((c) => identity.has(c));
  const fullFix = `ALTER TABLE ${qualified} REPLICA IDENTITY FULL;`;
  if (missing.length > 0 || keyColumns.length === 0) {
    // Judged once the columns and the key exist: a fix for a column that is not there helps nobody.
  } else if (!keyInIdentity) {
    findings.push({
      check: `${name}: replica identity`,
      ok: false,
      detail: `REPLICA IDENTITY ${table.replicaIdentity.toUpperCase()} of ${qualified} does not carry the key (${keyColumns.join(', ')}), so deletes cannot be traced to a row`,
      fix: `run: ${fullFix}`,
    });
  } else if (!mappedInIdentity && source.deleteLookup !== 'state' && source.mode !== 'row') {
    findings.push({
      check: `${name}: replica identity`,
      ok: false,
      detail: `deletes and identity changes of ${qualified} cannot be translated: REPLICA IDENTITY ${table.replicaIdentity.toUpperCase()} carries only (${table.identityColumns.join(', ') || 'nothing'}), not ${needed
        .filter((c) => !identity.has(c))
        .map((c) => `"${c}"`)
        .join(', ')}`,
      fix: `run: ${fullFix} (or set deleteLookup: state on the source)`,
    });
  } else {
    findings.push({
      check: `${name}: replica identity`,
      ok: true,
      detail: mappedInIdentity
        ? `REPLICA IDENTITY ${table.replicaIdentity.toUpperCase()} carries what deletes need (${needed.join(', ')})`
        : source.deleteLookup === 'state'
          ? `deletes use the bridge's state (deleteLookup: state)`
          : `deletes and group changes take the groups to remove from what sync_status recorded as sent (a read per flush; ${fullFix} spares it)`,
    });
  }
  return { findings, keyColumns, table };
}

/**
 * Server-level checks: wal_level, the REPLICATION attribute, the publication (and ownership of
 * the tables it must hold), the status schema, and the slot (its plugin and its database).
 */
export async function checkServer(db: Queryable, config: Config): Promise<Finding[]> {
  const findings: Finding[] = [];
  const s = await db.query<{
    wal_level: string;
    rolreplication: boolean;
    rolsuper: boolean;
    rds: boolean;
    can_create: boolean;
    version: string;
    db: string;
  }>(
    `SELECT current_setting('wal_level') AS wal_level, r.rolreplication, r.rolsuper,
            -- Amazon RDS and Aurora grant replication as membership in rds_replication.
            coalesce((SELECT pg_has_role(current_user, g.oid, 'MEMBER') FROM pg_roles g
                       WHERE g.rolname = 'rds_replication'), false) AS rds,
            has_database_privilege(current_database(), 'CREATE') AS can_create,
            current_setting('server_version') AS version, current_database() AS db
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const row = s.rows[0];
  if (!row) throw new Error('cannot read the current role');
  findings.push({
    check: 'wal_level',
    ok: row.wal_level === 'logical',
    detail: `wal_level is ${row.wal_level} (PostgreSQL ${row.version})`,
    fix: `ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`,
  });
  findings.push({
    check: 'replication privilege',
    ok: row.rolreplication || row.rolsuper || row.rds,
    detail:
      row.rolreplication || row.rolsuper || row.rds
        ? `the role may stream replication${row.rds && !row.rolreplication ? ' (rds_replication)' : ''}`
        : 'the role lacks the REPLICATION attribute',
    fix: `ALTER ROLE <bridge role> WITH REPLICATION;`,
  });
  const pub = await db.query<{ owner_ok: boolean; puballtables: boolean }>(
    `SELECT pg_has_role(pubowner, 'USAGE') AS owner_ok, puballtables FROM pg_publication WHERE pubname = $1`,
    [config.postgres.publication],
  );
  const p = pub.rows[0];
  if (!p) {
    findings.push({
      check: 'publication',
      ok: row.can_create || row.rolsuper,
      detail:
        row.can_create || row.rolsuper
          ? `publication ${config.postgres.publication} will be created`
          : `publication ${config.postgres.publication} does not exist and the role may not create it`,
      fix: `GRANT CREATE ON DATABASE <db> TO <bridge role>; or create the publication as its owner`,
    });
  } else {
    findings.push({
      check: 'publication',
      ok: p.owner_ok && !p.puballtables,
      detail: p.puballtables
        ? `publication ${config.postgres.publication} is FOR ALL TABLES; the bridge manages its own table list`
        : p.owner_ok
          ? `publication ${config.postgres.publication} exists`
          : `publication ${config.postgres.publication} is owned by another role`,
      fix: `use another postgres.publication name, or ALTER PUBLICATION ... OWNER TO <bridge role>`,
    });
  }
  findings.push(...(await checkPublicationTables(db, config, row.rolsuper)));
  findings.push(await checkStatusSchema(db, config.postgres.statusSchema, row.can_create || row.rolsuper));
  const sl = await readSlot(db, config.postgres.slot);
  const slotName = config.postgres.slot;
  if (!sl) {
    findings.push({ check: 'replication slot', ok: true, detail: `slot ${slotName} will be created` });
  } else if (sl.database !== row.db) {
    // Slot names are cluster-wide: another database's slot can neither be streamed nor replaced from here.
    findings.push({
      check: 'replication slot',
      ok: false,
      detail: `slot ${slotName} belongs to database ${sl.database}, not ${row.db}`,
      fix: `choose another postgres.slot (slot names are unique across the whole server)`,
    });
  } else {
    findings.push({
      check: 'replication slot',
      ok: sl.plugin === 'pgoutput',
      detail: `slot ${slotName} exists (${sl.plugin}, ${sl.active ? 'active' : 'inactive'})`,
      fix: `the slot must use pgoutput: choose another postgres.slot or drop it (tuzhan-cdc teardown)`,
    });
    findings.push(headroomFinding(sl));
  }
  findings.push(...(await failoverFindings(db, config)));
  return findings;
}

/**
 * Unless the publication already holds exactly the source tables, the bridge runs `CREATE
 * PUBLICATION ... FOR TABLE` or `ALTER PUBLICATION ... SET TABLE` at start, and PostgreSQL lets only
 * a table's owner (or a member of the owning role) add it to a publication (CREATE PUBLICATION,
 * "Notes"). So either the role owns the tables, or a DBA made the publication for it.
 */
async function checkPublicationTables(db: Queryable, config: Config, superuser: boolean): Promise<Finding[]> {
  const { publication } = config.postgres;
  const state = await readPublication(db, publication, config.sources);
  if (state?.holdsSources) {
    return [
      {
        check: 'publication tables',
        ok: true,
        detail: `publication ${publication} holds exactly the source tables; it is used as it is`,
      },
    ];
  }
  if (superuser) return [];
  const res = await db.query<{ schema: string; name: string; owner: string; superuser: boolean }>(
    `SELECT s.schema, s.name, r.rolname AS owner, r.rolsuper AS superuser
       FROM unnest($1::text[], $2::text[]) AS s(schema, name)
       JOIN pg_namespace n ON n.nspname = s.schema
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.name
       JOIN pg_roles r ON r.oid = c.relowner
      WHERE NOT pg_has_role(c.relowner, 'USAGE')`,
    [config.sources.map((s) => s.schema), config.sources.map((s) => s.tableName)],
  );
  if (res.rows.length === 0) {
    return [{ check: 'publication tables', ok: true, detail: 'the role owns every source table' }];
  }
  const tables = [...new Set(res.rows.map((r) => quoteTable(r.schema, r.name)))];
  const all = [...new Set(config.sources.map((s) => quoteTable(s.schema, s.tableName)))].join(', ');
  const pub = quoteIdent(publication);
  // What a DBA runs once, as a superuser or the tables' owner; the bridge then uses the publication
  // as it is. Membership in the owning role would do too, but it hands the bridge every right of the
  // owner (DROP TABLE included), and a superuser's membership makes the bridge a superuser: that is
  // offered only for owners that are not superusers, and second.
  const route = state
    ? `as a superuser (or a role owning the publication and the tables): ALTER PUBLICATION ${pub} SET TABLE ${all};`
    : `as a superuser (or the tables' owner): CREATE PUBLICATION ${pub} FOR TABLE ${all}; ALTER PUBLICATION ${pub} OWNER TO <bridge role>;`;
  const owners = [...new Set(res.rows.map((r) => quoteIdent(r.owner)))];
  const grant = res.rows.some((r) => r.superuser)
    ? ''
    : ` or, if the bridge may hold every right of the owner: GRANT ${owners.join(', ')} TO <bridge role>;`;
  return [
    {
      check: 'publication tables',
      ok: false,
      detail: `the role does not own ${tables.join(', ')}; only a table's owner may put it into publication ${publication}${state ? ', which does not hold exactly the source tables' : ''}`,
      fix: route + grant,
    },
  ];
}

/** The status schema exists and is usable, or the role may create it (migrations run at start). */
async function checkStatusSchema(db: Queryable, statusSchema: string, canCreate: boolean): Promise<Finding> {
  const res = await db.query<{ found: boolean; usage: boolean | null; writable: boolean | null }>(
    `SELECT n.oid IS NOT NULL AS found, has_schema_privilege(n.oid, 'USAGE') AS usage,
            (SELECT bool_and(has_table_privilege(c.oid, 'INSERT, UPDATE')) FROM pg_class c
              WHERE c.relnamespace = n.oid AND c.relkind = 'r'
                AND c.relname IN ('sync_row', 'sync_source', 'sync_status')) AS writable
       FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1`,
    [statusSchema],
  );
  const r = res.rows[0];
  const schema = quoteIdent(statusSchema);
  if (!r?.found) {
    return {
      check: 'status schema',
      ok: canCreate,
      detail: canCreate
        ? `schema ${schema} will be created`
        : `schema ${schema} does not exist and the role may not create it`,
      fix: `GRANT CREATE ON DATABASE <db> TO <bridge role>; or create the schema and apply sql/*.sql by hand (docs/status-schema.md)`,
    };
  }
  const ok = r.usage === true && r.writable !== false;
  return {
    check: 'status schema',
    ok,
    detail: ok
      ? `schema ${schema} exists`
      : `the role cannot ${r.usage ? 'write to' : 'use'} schema ${schema}`,
    fix: `GRANT USAGE, CREATE ON SCHEMA ${schema} TO <bridge role>; GRANT INSERT, UPDATE, SELECT ON ALL TABLES IN SCHEMA ${schema} TO <bridge role>;`,
  };
}

/** The slot's WAL headroom: lost means a re-sync; unreserved or extended, a slot falling behind. */
export function headroomFinding(sl: SlotState): Finding {
  const room =
    sl.safeWalSize === null
      ? 'no max_slot_wal_keep_size'
      : `${formatBytes(sl.safeWalSize)} before invalidation`;
  if (sl.walStatus === 'lost')
    return {
      check: 'WAL headroom',
      ok: false,
      detail: `the server invalidated slot ${sl.name} (wal_status lost): the changes since its confirmed position are gone`,
      fix: 'tuzhan-cdc run --resync (a new slot; every source re-synced)',
    };
  const behind = sl.walStatus === 'unreserved' || sl.walStatus === 'extended';
  return {
    check: 'WAL headroom',
    ok: sl.walStatus !== 'unreserved',
    detail: `wal_status ${sl.walStatus ?? 'unknown'}, ${room}, slot keeps ${formatBytes(sl.lagBytes ?? 0)}`,
    ...(behind
      ? {
          fix: 'start the bridge so it confirms, or raise max_slot_wal_keep_size before the server invalidates the slot',
        }
      : {}),
  };
}
