/**
 * Creates and migrates the sync-status schema (docs/design.md, "The status schema") from the numbered files in `sql/`.
 *
 * Forward-only, graphile-worker style: each pending file runs in its own transaction under a
 * transaction-level advisory lock keyed by the schema name, re-checks inside the lock whether
 * another bridge applied it meanwhile, and is recorded in `<schema>.schema_migrations`. The
 * bootstrap (schema and migrations table) runs under the same lock, because `CREATE ... IF NOT
 * EXISTS` is not atomic: two sessions can both pass the existence check and one then fails on a
 * catalog unique index (23505 on pg_namespace_nspname_index or pg_type_typname_nsp_index).
 *
 * The files use unqualified names; the runner sets `SET LOCAL search_path TO <quoted schema>` in
 * the migration's transaction, so a mixed-case schema name needs no text substitution.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { BridgeError, ConfigError, errorMessage, isRetryablePgError } from '../errors.js';
import { guardCheckedOut, quoteIdent } from '../util/sql.js';

export interface Migration {
  /** The number the file name starts with: 1 for `001_status_schema.sql`. */
  id: number;
  /** The file name without `.sql`, as recorded in `schema_migrations.name`. */
  name: string;
  /** Absolute path of the file. */
  path: string;
}

export interface MigrateResult {
  /** Names of the migrations this call applied, in order; empty when the schema was up to date. */
  applied: string[];
}

/** A connection string, a connected `pg.Client`, or a `pg.Pool`. */
export type MigrateTarget = string | pg.ClientBase | pg.Pool;

const FILE_NAME = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/;

/**
 * First of the two advisory lock keys: tuzhan-cdc's own lock space, so the second key (from the
 * schema name) cannot collide with another application's single-bigint advisory locks (the one-key
 * and two-key forms never conflict with each other).
 */
const LOCK_CLASS = 0x747a_6364; // 'tzcd'

/** The package root: the nearest directory above this module holding both package.json and sql/. */
function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'sql'))) return dir;
    if (dirname(dir) === dir) {
      throw new BridgeError('MIGRATIONS_MISSING', `no sql/ directory found above ${start}`);
    }
  }
}

/**
 * Where the numbered migration files live: `<package root>/sql`, found by walking up from this
 * module, so it holds from `src/status/` (tsx, vitest) and from `dist/status/` (compiled) alike.
 */
export const MIGRATIONS_DIR: string = join(findPackageRoot(dirname(fileURLToPath(import.meta.url))), 'sql');

/** The migration files in `dir`, ordered by number; rejects duplicate numbers. */
export function listMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir)) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_NAME.exec(file);
    if (!m) {
      throw new BridgeError('MIGRATIONS_INVALID', `migration file ${file} is not named NNN_name.sql`);
    }
    migrations.push({ id: Number(m[1]), name: file.slice(0, -'.sql'.length), path: join(dir, file) });
  }
  migrations.sort((a, b) => a.id - b.id);
  for (let i = 1; i < migrations.length; i++) {
    const [prev, cur] = [migrations[i - 1], migrations[i]];
    if (prev && cur && prev.id === cur.id) {
      throw new BridgeError(
        'MIGRATIONS_INVALID',
        `migrations ${prev.name} and ${cur.name} share number ${cur.id}`,
      );
    }
  }
  return migrations;
}

/**
 * The second advisory lock key for a status schema: the first 4 bytes of SHA-256 of its name.
 * Computed here rather than with PostgreSQL's internal hashtext(), whose results are not
 * guaranteed to stay the same across major versions.
 */
export function migrationLockKey(statusSchema: string): number {
  return createHash('sha256').update(`tuzhan-cdc:status-schema:${statusSchema}`).digest().readInt32BE(0);
}

function checkSchemaName(statusSchema: string): void {
  const problems: string[] = [];
  if (statusSchema.length === 0) problems.push('postgres.statusSchema must not be empty');
  // PostgreSQL silently truncates longer names, which would put the tables somewhere unexpected.
  if (Buffer.byteLength(statusSchema, 'utf8') > 63) {
    problems.push(`postgres.statusSchema "${statusSchema}" is longer than 63 bytes`);
  }
  if (/^pg_/i.test(statusSchema) || statusSchema === 'information_schema') {
    problems.push(`postgres.statusSchema "${statusSchema}" is reserved for PostgreSQL's system schemas`);
  }
  if (statusSchema.includes('\0')) problems.push('postgres.statusSchema must not contain NUL');
  if (problems.length > 0) throw new ConfigError(problems);
}

/**
 * Brings `<statusSchema>` up to date: creates the schema and its `schema_migrations` table when
 * missing, then applies every pending `sql/NNN_*.sql` file in order, each in its own transaction.
 * Safe to run from several bridges at once: all succeed and each migration is applied once.
 *
 * @param target a connection string (a client is opened and closed here), a connected client
 *   (left connected, and must not be inside a transaction), or a pool (one client is borrowed).
 * @param statusSchema the schema name as configured, unquoted; any case.
 * @returns the names of the migrations applied by this call.
 * @throws ConfigError for an unusable schema name; BridgeError `MIGRATION_FAILED` naming the file
 *   (with the PostgreSQL error as `cause`); BridgeError `STATUS_SCHEMA_NEWER` when the database
 *   records migrations this version of the bridge does not know.
 */
export async function migrate(
  target: MigrateTarget,
  statusSchema: string,
  options: { dir?: string } = {},
): Promise<MigrateResult> {
  checkSchemaName(statusSchema);
  const migrations = listMigrations(options.dir);
  if (typeof target === 'string') {
    const client = new pg.Client({ connectionString: target });
    await client.connect();
    try {
      return await migrateWith(client, statusSchema, migrations);
    } finally {
      await client.end();
    }
  }
  if (target instanceof pg.Pool) {
    const client = await target.connect();
    const unguard = guardCheckedOut(client);
    let broken: Error | undefined;
    try {
      return await migrateWith(client, statusSchema, migrations);
    } catch (err) {
      // A client whose ROLLBACK failed may still be inside a transaction: do not reuse it.
      if (err instanceof BridgeError && err.code === 'MIGRATION_ROLLBACK_FAILED') broken = err;
      throw err;
    } finally {
      unguard();
      client.release(broken);
    }
  }
  return migrateWith(target, statusSchema, migrations);
}

async function migrateWith(
  client: pg.ClientBase,
  statusSchema: string,
  migrations: Migration[],
): Promise<MigrateResult> {
  const lockKey = migrationLockKey(statusSchema);
  const schema = quoteIdent(statusSchema);
  const applied: string[] = [];

  const done = await inTransaction(client, 'bootstrap', async () => {
    await lock(client, lockKey);
    return bootstrap(client, statusSchema);
  });
  const known = new Set(migrations.map((m) => m.id));
  const unknown = [...done].filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new BridgeError(
      'STATUS_SCHEMA_NEWER',
      `schema ${schema} records migrations ${unknown.join(', ')} that this version of tuzhan-cdc does not have; ` +
        'it was migrated by a newer version: run that version (migrations are forward-only)',
    );
  }

  for (const migration of migrations) {
    if (done.has(migration.id)) continue;
    const sql = readFileSync(migration.path, 'utf8');
    const ran = await inTransaction(client, migration.name, async () => {
      await lock(client, lockKey);
      // Another bridge may have applied it while we waited for the lock.
      const { rowCount } = await client.query(`SELECT 1 FROM ${schema}.schema_migrations WHERE id = $1`, [
        migration.id,
      ]);
      if (rowCount) return false;
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(sql).catch((err: unknown) => {
        throw withLine(err, sql);
      });
      await client.query(`INSERT INTO ${schema}.schema_migrations (id, name) VALUES ($1, $2)`, [
        migration.id,
        migration.name,
      ]);
      return true;
    });
    if (ran) applied.push(migration.name);
  }
  return { applied };
}

async function lock(client: pg.ClientBase, key: number): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, key]);
}

/**
 * Creates the schema and `schema_migrations` when missing and returns the applied ids. Runs under
 * the lock. Both are looked up first instead of using IF NOT EXISTS, which checks the CREATE
 * privilege before existence: a DBA may pre-create the schema (and apply the files by hand) for a
 * bridge role that may not create anything.
 */
async function bootstrap(client: pg.ClientBase, statusSchema: string): Promise<Set<number>> {
  const schema = quoteIdent(statusSchema);
  const { rows: found } = await client.query<{ has_schema: boolean; has_table: boolean }>(
    `SELECT n.oid IS NOT NULL AS has_schema, c.oid IS NOT NULL AS has_table
       FROM (SELECT 1) AS one
       LEFT JOIN pg_namespace n ON n.nspname = $1
       LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'schema_migrations'`,
    [statusSchema],
  );
  if (!found[0]?.has_schema) {
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(
      `COMMENT ON SCHEMA ${schema} IS 'tuzhan-cdc: sync status of the CRM -> Tuzhan bridge (see sync_summary, sync_failures)'`,
    );
  }
  if (!found[0]?.has_table) {
    await client.query(
      `CREATE TABLE ${schema}.schema_migrations (
         id integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    await client.query(
      `COMMENT ON TABLE ${schema}.schema_migrations IS 'tuzhan-cdc: the sql/NNN_*.sql files applied to this schema'`,
    );
  }
  const { rows } = await client.query<{ id: number }>(`SELECT id FROM ${schema}.schema_migrations`);
  return new Set(rows.map((r) => r.id));
}

/** Runs `fn` in a transaction; on failure rolls back and names `what` in the error. */
async function inTransaction<T>(client: pg.ClientBase, what: string, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      throw new BridgeError(
        'MIGRATION_ROLLBACK_FAILED',
        `migration ${what} failed and could not be rolled back`,
        {
          cause: rollbackErr,
        },
      );
    }
    const step = what === 'bootstrap' ? 'creating the status schema' : `migration ${what}.sql`;
    throw new BridgeError('MIGRATION_FAILED', `${step} failed: ${errorMessage(err)}`, {
      cause: err,
      retryable: isRetryablePgError(err),
    });
  }
}

/** Adds the line of the failing statement to a PostgreSQL error that carries a `position`. */
function withLine(err: unknown, sql: string): unknown {
  const position = Number((err as { position?: unknown } | null)?.position);
  if (!(err instanceof Error) || !Number.isInteger(position) || position < 1) return err;
  // `position` counts characters (not bytes) from 1 in the whole multi-statement string.
  const line = [...sql]
    .slice(0, position - 1)
    .join('')
    .split('\n').length;
  err.message = `line ${line}: ${err.message}`;
  return err;
}
