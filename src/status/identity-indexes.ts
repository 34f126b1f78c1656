/**
 * The optional identity indexes of the status storage (sql/optional/identity-indexes.sql): the
 * console's search by phone, openid, unionid or thirdId uses them when the DBA has created them.
 * The demo creates them, and tests do, by running the same file a DBA runs with psql.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR } from './migrate.js';
import { quoteIdent } from '../util/sql.js';

/** The file a DBA runs with psql. */
export const IDENTITY_INDEX_FILE = join(MIGRATIONS_DIR, 'optional', 'identity-indexes.sql');

/** The file's statements, one by one (CREATE INDEX CONCURRENTLY runs outside a transaction only). */
export function identityIndexStatements(file: string = IDENTITY_INDEX_FILE): string[] {
  const text = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => !line.startsWith('--'))
    .join('\n');
  return text
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Creates the identity indexes in a status schema, as `psql -f` would; a no-op where they exist. */
export async function createIdentityIndexes(url: string, schemaName: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'tuzhan-cdc identity indexes' });
  await client.connect();
  try {
    await client.query(`SET search_path TO ${quoteIdent(schemaName)}`);
    for (const statement of identityIndexStatements()) await client.query(statement);
  } finally {
    await client.end();
  }
}
