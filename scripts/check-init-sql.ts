/**
 * Applies docker/crm-init.sql to a fresh throwaway PostgreSQL the way the postgres image does (as
 * the superuser, in a new `crm` database), then proves the bridge's role can do its job there:
 * log in, read the tables, create its schema, the publication and a pgoutput slot.
 * Usage: node --import tsx scripts/check-init-sql.ts [file]
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { startPostgres } from '../src/throwaway/postgres.js';

const file = process.argv[2] ?? 'docker/crm-init.sql';
const sql = readFileSync(file, 'utf8');
if (/^\s*\\/m.test(sql)) throw new Error(`${file}: psql meta-commands are not allowed`);

function withDb(url: string, database: string, user?: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (user) {
    u.username = user;
    u.password = 'tuzhan_cdc';
  }
  return u.toString();
}

async function query(url: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

// A cluster of our own (never TEST_DATABASE_URL): the script creates cluster-wide roles.
const server = await startPostgres({ prefer: ['local', 'docker', 'embedded'] });
try {
  await query(server.url, 'CREATE DATABASE crm');
  const crm = withDb(server.url, 'crm');
  await query(crm, sql);

  const { rows } = await query(
    crm,
    `SELECT c.relname, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'crm' AND c.relkind = 'r' ORDER BY 1`,
  );
  const identities = Object.fromEntries(rows.map((r) => [r.relname, r.relreplident]));
  if (identities.customer_profile !== 'f' || identities.member_group !== 'f')
    throw new Error(`expected REPLICA IDENTITY FULL on both tables, got ${JSON.stringify(identities)}`);

  const bridge = withDb(server.url, 'crm', 'tuzhan_cdc');
  const counts = await query(
    bridge,
    `SELECT (SELECT count(*) FROM crm.customer_profile)::int AS profiles,
            (SELECT count(*) FROM crm.member_group)::int AS memberships,
            (SELECT count(*) FROM crm.customer_profile WHERE "Group Names" IS NOT NULL)::int AS grouped`,
  );
  const c = counts.rows[0] as { profiles: number; memberships: number; grouped: number };
  if (c.profiles === 0 || c.memberships === 0 || c.grouped === 0)
    throw new Error(`no sample rows: ${JSON.stringify(c)}`);

  // What the bridge does on first start, as the bridge's role.
  await query(bridge, 'CREATE SCHEMA tuzhan_sync');
  await query(bridge, 'CREATE PUBLICATION tuzhan_cdc FOR TABLE crm.customer_profile, crm.member_group');
  await query(bridge, 'ALTER PUBLICATION tuzhan_cdc SET TABLE crm.customer_profile, crm.member_group');
  await query(bridge, `SELECT pg_create_logical_replication_slot('tuzhan_cdc', 'pgoutput')`);
  await query(bridge, `SELECT pg_drop_replication_slot('tuzhan_cdc')`);

  console.log(
    `${file}: applies cleanly on ${server.version}; ${c.profiles} profiles, ${c.memberships} memberships; ` +
      'tuzhan_cdc can read, create its schema, the publication and a slot',
  );
} finally {
  await server.stop();
}
