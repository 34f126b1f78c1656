/**
 * `npm run bench:status`: what storing one row's outcome costs the customer's database, for each
 * status-table design tried (docs/benchmark.md, "The status table"). For every design, on one
 * connection of a throwaway PostgreSQL: 100,000 outcomes written as 500-row statements shaped like
 * the bridge's status write (one statement and one commit per request), first for new keys, then
 * again for the same keys with other groups (the steady state: every change of a known row).
 * Reported per row: the backend's CPU (utime + stime from /proc), the WAL written (the server does
 * nothing else meanwhile, and no checkpoint comes between the passes, so no page is logged in
 * full), the share of HOT updates, and the table's size with its indexes.
 *
 *   npm run bench:status -- [--rows N] [--repeat N] [--only name,name]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { identityIndexStatements } from '../src/status/identity-indexes.js';
import { migrate } from '../src/status/migrate.js';
import { statusSql } from '../src/status/sql.js';
import { encodeStatusRows, statusRowParams } from '../src/status/status-store.js';
import { parseLsn } from '../src/util/lsn.js';
import { startPostgres } from '../src/throwaway/postgres.js';
import { median } from './common.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '3' },
    only: { type: 'string' },
  },
});
const ROWS = Number(values.rows);
const REPEAT = Math.max(1, Number(values.repeat));
const BATCH = 500;

interface Design {
  name: string;
  what: string;
  ddl: string;
  /** The write of one request: $1 source, $2 keys, $3 payloads, then the shared outcome columns. */
  write: string;
  /** How a request's keys and payloads travel: JSON arrays, or text[] literals. */
  params: 'json' | 'text[]';
  table: string;
  /** Run the write as a named prepared statement. */
  prepared?: boolean;
  /** Apply the real sql/ migrations into the schema instead of `ddl`. */
  migrations?: boolean;
  /** Payloads carry a phone and an openid besides the thirdId. */
  identities?: boolean;
}

const OUTCOME = `($5::text[])[r.t], ($6::text[])[r.t], ($7::int[])[r.t], ($8::text[])[r.t], ($9::pg_lsn[])[r.t], ($10::timestamptz[])[r.t]`;
const ROWS_JSON = `ROWS FROM (jsonb_array_elements($2::jsonb), jsonb_array_elements($3::jsonb), unnest($4::int[])) AS r(k, p, t)`;
const ROWS_TEXT = `ROWS FROM (unnest($2::text[]), unnest($3::text[]), unnest($4::int[])) AS r(k, p, t)`;
const UPDATE = `op = EXCLUDED.op, status = EXCLUDED.status, attempts = EXCLUDED.attempts, error = EXCLUDED.error,
  lsn = EXCLUDED.lsn, committed_at = EXCLUDED.committed_at, synced_at = EXCLUDED.synced_at, payload = EXCLUDED.payload`;

/**
 * The status write as an UPDATE of the keys that are there (found through the primary key by
 * `key = ANY(...)`; an UPDATE logs no row lock first, as ON CONFLICT DO UPDATE does), then INSERT
 * ... ON CONFLICT DO UPDATE of the others (new keys, and whatever a concurrent writer changed).
 */
function updateFirst(): string {
  const sid = `(SELECT id FROM sync_source WHERE name = $1)`;
  return `WITH i AS (
      SELECT r.k::text COLLATE "C" AS k, r.t, CASE WHEN json_typeof(r.p) <> 'null' THEN r.p END AS p
        FROM ROWS FROM (json_array_elements($2::json), json_array_elements($3::json), unnest($4::int[])) AS r(k, p, t)
    ), u AS (
      UPDATE sync_row t SET op = ($5::text[])[i.t], status = ($6::text[])[i.t], attempts = ($7::int[])[i.t],
             error = ($8::text[])[i.t], lsn = ($9::pg_lsn[])[i.t], committed_at = ($10::timestamptz[])[i.t],
             synced_at = now(), payload = i.p
        FROM i
       WHERE t.source_id = ${sid} AND t.key = ANY (ARRAY(SELECT k FROM i)) AND t.key = i.k
         AND (t.lsn IS NULL OR t.lsn <= ($9::pg_lsn[])[i.t])
      RETURNING t.key
    )
    INSERT INTO sync_row (source_id, key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
    SELECT ${sid}, i.k, ($5::text[])[i.t], ($6::text[])[i.t], ($7::int[])[i.t], ($8::text[])[i.t],
           ($9::pg_lsn[])[i.t], ($10::timestamptz[])[i.t], now(), i.p FROM i
     WHERE i.k NOT IN (SELECT key FROM u)
    ON CONFLICT (source_id, key) DO UPDATE SET ${UPDATE}
      WHERE sync_row.lsn IS NULL OR sync_row.lsn <= EXCLUDED.lsn`;
}

const DESIGNS: Design[] = [
  {
    name: 'jsonb-key',
    what: '(source, row_key jsonb), payload jsonb (migration 001)',
    table: 's',
    params: 'json',
    ddl: `CREATE TABLE s (source text NOT NULL, row_key jsonb NOT NULL, op text NOT NULL, status text NOT NULL,
      attempts int NOT NULL DEFAULT 0, error text, lsn pg_lsn, committed_at timestamptz,
      synced_at timestamptz NOT NULL DEFAULT now(), payload jsonb, PRIMARY KEY (source, row_key));
      CREATE INDEX ON s (status, source) WHERE status <> 'synced';`,
    write: `INSERT INTO s (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT $1, r.k, ${OUTCOME}, now(), NULLIF(r.p, 'null'::jsonb) FROM ${ROWS_JSON}
      ON CONFLICT (source, row_key) DO UPDATE SET ${UPDATE} WHERE s.lsn IS NULL OR s.lsn <= EXCLUDED.lsn`,
  },
  {
    name: 'text-key',
    what: '(source, row_key text COLLATE "C"), payload jsonb',
    table: 's',
    params: 'text[]',
    ddl: `CREATE TABLE s (source text NOT NULL, row_key text COLLATE "C" NOT NULL, op text NOT NULL, status text NOT NULL,
      attempts int NOT NULL DEFAULT 0, error text, lsn pg_lsn, committed_at timestamptz,
      synced_at timestamptz NOT NULL DEFAULT now(), payload jsonb, PRIMARY KEY (source, row_key));
      CREATE INDEX ON s (status, source) WHERE status <> 'synced';`,
    write: `INSERT INTO s (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT $1, r.k, ${OUTCOME}, now(), r.p::jsonb FROM ${ROWS_TEXT}
      ON CONFLICT (source, row_key) DO UPDATE SET ${UPDATE} WHERE s.lsn IS NULL OR s.lsn <= EXCLUDED.lsn`,
  },
  {
    name: 'hash-key',
    what: '(source, 64-bit hash of the key), row_key and payload jsonb',
    table: 's',
    params: 'text[]',
    ddl: `CREATE TABLE s (source text NOT NULL, h bigint NOT NULL, row_key jsonb NOT NULL, op text NOT NULL, status text NOT NULL,
      attempts int NOT NULL DEFAULT 0, error text, lsn pg_lsn, committed_at timestamptz,
      synced_at timestamptz NOT NULL DEFAULT now(), payload jsonb, PRIMARY KEY (source, h));
      CREATE INDEX ON s (status, source) WHERE status <> 'synced';`,
    write: `INSERT INTO s (source, h, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT $1, hashtextextended(r.k, 0), r.k::jsonb, ${OUTCOME}, now(), r.p::jsonb FROM ${ROWS_TEXT}
      ON CONFLICT (source, h) DO UPDATE SET ${UPDATE} WHERE s.lsn IS NULL OR s.lsn <= EXCLUDED.lsn`,
  },
  {
    name: 'compact-char',
    what: 'as sync_row, but op/status "char" and attempts int2 (the partial index no longer serves status = \'failed\' through a view)',
    table: 'r',
    params: 'text[]',
    ddl: `CREATE TABLE r (lsn pg_lsn, committed_at timestamptz, synced_at timestamptz NOT NULL DEFAULT now(),
      source_id int2 NOT NULL, attempts int2 NOT NULL DEFAULT 0, op "char" NOT NULL, status "char" NOT NULL,
      key text COLLATE "C" NOT NULL, payload json, error text, PRIMARY KEY (source_id, key));
      CREATE INDEX ON r (status, source_id) WHERE status <> 's';`,
    write: `INSERT INTO r (source_id, key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT $1::int2, r.k, ($5::"char"[])[r.t], ($6::"char"[])[r.t], ($7::int2[])[r.t], ($8::text[])[r.t],
             ($9::pg_lsn[])[r.t], ($10::timestamptz[])[r.t], now(), r.p::json FROM ${ROWS_TEXT}
      ON CONFLICT (source_id, key) DO UPDATE SET ${UPDATE} WHERE r.lsn IS NULL OR r.lsn <= EXCLUDED.lsn`,
  },
  {
    name: 'sync_row',
    what: "sync_row (migrations 007, 009: fillfactor 90), the bridge's `insert` shape (statusSql().writeRequest), unprepared",
    table: 'sync_row',
    params: 'json',
    migrations: true,
    ddl: '',
    write: statusSql('d').writeRequest(false),
  },
  {
    name: 'sync_row-007',
    what: "the write of migration 007's bridge (INSERT ... ON CONFLICT DO UPDATE, nothing returned), fillfactor 100 as before 009",
    table: 'sync_row',
    params: 'json',
    migrations: true,
    prepared: true,
    ddl: 'ALTER TABLE sync_row SET (fillfactor = 100)',
    write: `INSERT INTO sync_row (source_id, key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT (SELECT id FROM sync_source WHERE name = $1), r.k::text, ${OUTCOME}, now(),
             CASE WHEN json_typeof(r.p) <> 'null' THEN r.p END
        FROM ROWS FROM (json_array_elements($2::json), json_array_elements($3::json), unnest($4::int[])) AS r(k, p, t)
      ON CONFLICT (source_id, key) DO UPDATE SET ${UPDATE}
      WHERE sync_row.lsn IS NULL OR sync_row.lsn <= EXCLUDED.lsn`,
  },
  {
    name: 'sync_row-prepared',
    what: 'what the bridge runs while most keys are new: the `insert` shape as a named prepared statement (parsed and planned once per connection)',
    table: 'sync_row',
    params: 'json',
    migrations: true,
    prepared: true,
    ddl: '',
    write: statusSql('d').writeRequest(false),
  },
  ...[100, 70, 50].map((ff): Design => ({
    name: `sync_row-ff${ff}`,
    what: `sync_row-prepared with fillfactor ${ff} instead of 90`,
    table: 'sync_row',
    params: 'json',
    migrations: true,
    prepared: true,
    ddl: `ALTER TABLE sync_row SET (fillfactor = ${ff})`,
    write: statusSql('d').writeRequest(false),
  })),
  ...[100, 90, 50].map((ff): Design => ({
    name: `update-first-ff${ff}`,
    what: `fillfactor ${ff}; the keys that are there by UPDATE (no row lock logged), the others by INSERT ... ON CONFLICT; planned at every write`,
    table: 'sync_row',
    params: 'json',
    migrations: true,
    ddl: `ALTER TABLE sync_row SET (fillfactor = ${ff})`,
    write: updateFirst(),
  })),
  {
    name: 'sync_row-3ids',
    what: 'sync_row-prepared, each payload carrying a thirdId, a phone and an openid (the baseline of the next)',
    table: 'sync_row',
    params: 'json',
    migrations: true,
    prepared: true,
    identities: true,
    ddl: '',
    write: statusSql('d').writeRequest(false),
  },
  {
    name: 'sync_row+identities',
    what: 'the same with the optional identity indexes and statistics (sql/optional/identity-indexes.sql)',
    table: 'sync_row',
    params: 'json',
    migrations: true,
    prepared: true,
    identities: true,
    ddl: identityIndexStatements().join(';\n'),
    write: statusSql('d').writeRequest(false),
  },
  {
    name: 'identities-json',
    what: 'the same indexes and statistics on `payload ->> ...` (json, no cast): not matched by queries of the view',
    table: 'sync_row',
    params: 'json',
    migrations: true,
    prepared: true,
    identities: true,
    ddl: identityIndexStatements()
      .map((x) => x.replaceAll('payload::jsonb', 'payload'))
      .join(';\n'),
    write: statusSql('d').writeRequest(false),
  },
  {
    name: 'identities-full',
    what: 'the same cast expressions, indexes not partial (one evaluation per index instead of two)',
    table: 'sync_row',
    params: 'json',
    migrations: true,
    prepared: true,
    identities: true,
    ddl: identityIndexStatements()
      .map((x) => x.replace(/\s+WHERE \(payload::jsonb ->> '\w+'\) IS NOT NULL/, ''))
      .join(';\n'),
    write: statusSql('d').writeRequest(false),
  },
  {
    name: 'sync_row-merge',
    what: 'sync_row written with MERGE (PostgreSQL 15+) instead of INSERT ... ON CONFLICT',
    table: 'sync_row',
    params: 'json',
    migrations: true,
    ddl: '',
    write: `MERGE INTO sync_row t
      USING (SELECT (SELECT id FROM sync_source WHERE name = $1) AS source_id, r.k::text AS key,
                    ($5::text[])[r.t] AS op, ($6::text[])[r.t] AS status, ($7::int[])[r.t] AS attempts,
                    ($8::text[])[r.t] AS error, ($9::pg_lsn[])[r.t] AS lsn, ($10::timestamptz[])[r.t] AS committed_at,
                    CASE WHEN json_typeof(r.p) <> 'null' THEN r.p END AS payload
               FROM ROWS FROM (json_array_elements($2::json), json_array_elements($3::json), unnest($4::int[])) AS r(k, p, t)) s
         ON t.source_id = s.source_id AND t.key = s.key
      WHEN MATCHED AND (t.lsn IS NULL OR t.lsn <= s.lsn) THEN UPDATE SET op = s.op, status = s.status,
           attempts = s.attempts, error = s.error, lsn = s.lsn, committed_at = s.committed_at, synced_at = now(), payload = s.payload
      WHEN NOT MATCHED THEN INSERT (source_id, key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
           VALUES (s.source_id, s.key, s.op, s.status, s.attempts, s.error, s.lsn, s.committed_at, now(), s.payload)`,
  },
  {
    name: 'per-request',
    what: 'one row per request, keys and payloads as JSON arrays (no per-row lookup: for scale only)',
    table: 'q',
    params: 'json',
    ddl: `CREATE TABLE q (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source text NOT NULL, keys jsonb NOT NULL,
      payloads jsonb, op text, status text, lsn pg_lsn, committed_at timestamptz, synced_at timestamptz DEFAULT now());`,
    write: `INSERT INTO q (source, keys, payloads, op, status, lsn, committed_at)
      SELECT $1, $2::jsonb, $3::jsonb, ($5::text[])[1], ($6::text[])[1], ($9::pg_lsn[])[1], ($10::timestamptz[])[1]
       WHERE $4::int[] IS NOT NULL AND $7::int[] IS NOT NULL AND $8::text[] IS NOT NULL`,
  },
];

/** One request's parameters: keys {"id":"n"}, payloads like the bench's rows, one outcome tuple. */
function params(d: Design, from: number, lsn: number, groups: string): unknown[] {
  const now = new Date();
  const keys: string[] = [];
  const payloads: string[] = [];
  for (let i = from; i < from + BATCH; i++) {
    keys.push(JSON.stringify({ id: String(i) }));
    payloads.push(
      JSON.stringify(
        d.identities
          ? {
              thirdId: `c-${i}`,
              phone: String(13_800_000_000 + i),
              openid: `oX9a-${i}-wx`,
              groups,
            }
          : { thirdId: `c-${i}`, groups },
      ),
    );
  }
  const list =
    d.params === 'json'
      ? [`[${keys.join(',')}]`, `[${payloads.join(',')}]`]
      : [keys, payloads].map((xs) => `{${xs.map((x) => `"${x.replace(/["\\]/g, '\\$&')}"`).join(',')}}`);
  const compact = d.table === 'r';
  if (d.migrations) {
    const e = encodeStatusRows(
      keys.map((k, i) => ({
        rowKey: k,
        op: 'add',
        status: 'synced',
        attempts: 1,
        error: null,
        lsn: BigInt(lsn),
        committedAt: now,
        payload: JSON.parse(payloads[i] as string) as unknown,
      })),
    );
    return statusRowParams('customers', e);
  }
  return [
    compact ? '1' : 'customers',
    ...list,
    `{${new Array(BATCH).fill(1).join(',')}}`,
    compact ? '{a}' : '{add}',
    compact ? '{s}' : '{synced}',
    '{1}',
    '{NULL}',
    `{0/${lsn.toString(16)}}`,
    `{"${now.toISOString()}"}`,
  ];
}

/** n_tup_hot_upd / n_tup_upd of a table, with this backend's pending statistics flushed first. */
async function hotShare(c: pg.Client, table: string): Promise<number> {
  await c.query('SELECT pg_stat_force_next_flush()');
  const r = await c.query<{ upd: string; hot: string }>(
    `SELECT n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables
      WHERE relid = $1::regclass`,
    [table],
  );
  const upd = Number(r.rows[0]?.upd ?? 0);
  return upd ? Number(r.rows[0]?.hot ?? 0) / upd : 0;
}

function backendCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Measure {
  newUs: number;
  existingUs: number;
  /** WAL bytes per row written by each pass. */
  walNew: number;
  walExisting: number;
  /** Share of the second pass's updates that were HOT. */
  hot: number;
  bytesNew: number;
  bytesAfterUpdates: number;
}

async function measure(url: string, d: Design): Promise<Measure> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('DROP SCHEMA IF EXISTS d CASCADE');
    // Every page of the design is created after this: none is logged in full (no checkpoint comes
    // in between, 30 min apart), so the WAL figures are the records themselves.
    await c.query('CHECKPOINT');
    if (d.migrations) {
      await migrate(c, 'd');
      await c.query('SET search_path TO d');
      // One by one: CREATE INDEX CONCURRENTLY runs outside a transaction only.
      for (const statement of d.ddl.split(/;\n/).filter((x) => x.trim())) await c.query(statement);
    } else await c.query(`CREATE SCHEMA d; SET search_path TO d; ${d.ddl}`);
    await c.query('SET search_path TO d');
    const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
    const size = async (): Promise<number> =>
      Number(
        (await c.query<{ n: string }>('SELECT pg_total_relation_size($1::regclass)::text AS n', [d.table]))
          .rows[0]?.n,
      ) / ROWS;
    if (d.migrations) await c.query(statusSql('d').ensureSource, ['customers']);
    const walAt = async (): Promise<bigint> =>
      parseLsn(
        (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l ?? '0/0',
      );
    const pass = async (lsnBase: number, groups: string): Promise<{ us: number; wal: number }> => {
      const w0 = await walAt();
      const t0 = backendCpuSeconds(pid);
      for (let from = 1; from <= ROWS; from += BATCH) {
        const values = params(d, from, lsnBase + from, groups);
        await c.query(
          d.prepared ? { name: `w${lsnBase}`, text: d.write, values } : { text: d.write, values },
        );
      }
      const us = ((backendCpuSeconds(pid) - t0) * 1e6) / ROWS;
      return { us, wal: Number((await walAt()) - w0) / ROWS };
    };
    const first = await pass(0x1000000, 'vip,north');
    const bytesNew = await size();
    const second = await pass(0x2000000, 'vip,south');
    const hot = await hotShare(c, d.table);
    await c.query(`VACUUM ${d.table}`);
    return {
      newUs: first.us,
      existingUs: second.us,
      walNew: first.wal,
      walExisting: second.wal,
      hot,
      bytesNew,
      bytesAfterUpdates: await size(),
    };
  } finally {
    await c.query('DROP SCHEMA IF EXISTS d CASCADE').catch(() => {});
    await c.end();
  }
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const chosen = values.only ? DESIGNS.filter((d) => values.only?.split(',').includes(d.name)) : DESIGNS;
const server = await startPostgres({
  log,
  settings: { synchronous_commit: 'on', max_wal_size: '8GB', checkpoint_timeout: '30min' },
});
const results = new Map<string, Measure[]>();
try {
  for (let i = 0; i < REPEAT; i++) {
    for (const d of chosen) {
      const m = await measure(server.url, d);
      log(`${d.name} run ${i + 1}: ${JSON.stringify(m)}`);
      results.set(d.name, [...(results.get(d.name) ?? []), m]);
    }
  }
} finally {
  await server.stop();
}

log('');
log(`${ROWS} rows, ${BATCH}-row statements, medians of ${REPEAT}; ${server.version}`);
log(
  'design               new keys µs/row  existing µs/row  WAL new B/row  WAL existing B/row  HOT  bytes/row  after updates+VACUUM',
);
for (const d of chosen) {
  const ms = results.get(d.name) ?? [];
  const m = (f: (x: Measure) => number): number => median(ms.map(f));
  log(
    `${d.name.padEnd(21)}${m((x) => x.newUs)
      .toFixed(1)
      .padStart(15)}${m((x) => x.existingUs)
      .toFixed(1)
      .padStart(17)}${m((x) => x.walNew)
      .toFixed(0)
      .padStart(15)}${m((x) => x.walExisting)
      .toFixed(0)
      .padStart(20)}${m((x) => x.hot)
      .toFixed(2)
      .padStart(5)}${m((x) => x.bytesNew)
      .toFixed(0)
      .padStart(11)}${m((x) => x.bytesAfterUpdates)
      .toFixed(0)
      .padStart(22)}   ${d.what}`,
  );
}
