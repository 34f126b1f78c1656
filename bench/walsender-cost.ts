/**
 * `npm run bench:walsender`: what the bridge's own status writes cost the walsender of its slot.
 * The walsender reads and parses every WAL record of the server, and queues every heap change of
 * its database until the commit, when pgoutput drops those of unpublished tables; on PostgreSQL
 * 16+, a session with a replication origin, read with pgoutput's `origin 'none'`, is dropped
 * before it is queued (decode.c's FilterByOrigin). Three variants, each in a fresh database of one
 * throwaway server, the slot drained by a bare consumer once everything is written (the baseline
 * of `npm run bench`):
 *
 * - `bare`: 200,000 source rows in 2,000 transactions of 100;
 * - `ledger`: the same, and after every 5 source transactions one 500-row status write of the
 *   bridge's own statement on another connection (as many status rows as source rows);
 * - `ledger-origin` (PostgreSQL 16+): the same, the status connection with a replication origin
 *   and the slot read with `origin 'none'`.
 *
 * Reported per source row: the walsender's CPU (from /proc), the WAL it read, and what it decoded
 * for pgoutput (pg_stat_replication_slots).
 *
 *   npm run bench:walsender -- [--repeat N]   (TUZHAN_TEST_PG_MAJOR picks the server's major)
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PgoutputPlugin } from 'pg-logical-replication';
import { migrate } from '../src/status/migrate.js';
import { statusSql } from '../src/status/sql.js';
import { encodeStatusRows, statusRowParams } from '../src/status/status-store.js';
import { startPostgres } from '../src/throwaway/postgres.js';
import { parseLsn } from '../src/util/lsn.js';
import { quoteIdent } from '../src/util/sql.js';
import { STATUS_SCHEMA, TABLE_SQL, cpuTimes, insertLsn, median } from './common.js';
import { backends, pgRoleSplit, postmasterPid, slotDecoded } from './pg-roles.js';
import { drainBaseline } from './throughput.js';

const { values } = parseArgs({ options: { repeat: { type: 'string', default: '3' } } });
const REPEAT = Math.max(1, Number(values.repeat) || 1);
const TXS = 2000;
const ROWS_PER_TX = 100;
const STATUS_ROWS = 500;
const ROWS = TXS * ROWS_PER_TX;
const ORIGIN = 'bench_status_writes';

type Variant = 'bare' | 'ledger' | 'ledger-origin';

/** pgoutput asked for changes without an origin only (PostgreSQL 16+). */
class NoOriginPgoutput extends PgoutputPlugin {
  override start(client: Parameters<PgoutputPlugin['start']>[0], slot: string, lsn: string) {
    return client.query(
      `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL ${lsn} (proto_version '1', publication_names 'bench', origin 'none')`,
    );
  }
}

/** One request's status rows, as the bridge stores them (keys {"id":"n"}, synced). */
function statusParams(from: number, lsn: bigint): unknown[] {
  const committedAt = new Date();
  const rows = [];
  for (let i = from; i < from + STATUS_ROWS; i++)
    rows.push({
      rowKey: JSON.stringify({ id: String(i) }),
      op: 'add' as const,
      status: 'synced' as const,
      attempts: 1,
      error: null,
      lsn,
      committedAt,
      payload: { thirdId: `c-${i}`, groups: ['vip', 'north'] },
    });
  return statusRowParams('customers', encodeStatusRows(rows));
}

interface Result {
  variant: Variant;
  walsenderUsPerRow: number;
  walBytesPerRow: number;
  decodedBytesPerRow: number;
  decodedTxns: number;
}

async function run(adminUrl: string, variant: Variant, n: number): Promise<Result> {
  const name = `walsender_${variant.replace('-', '_')}_${n}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const db = new pg.Client({ connectionString: url, application_name: 'bench' });
  const writer = new pg.Client({ connectionString: url, application_name: 'bench status' });
  await db.connect();
  await writer.connect();
  const slot = 'bench_walsender';
  try {
    await db.query(TABLE_SQL);
    await db.query('CREATE PUBLICATION bench FOR TABLE crm.customer');
    await migrate(writer, STATUS_SCHEMA);
    const sql = statusSql(STATUS_SCHEMA);
    await writer.query(sql.ensureSource, ['customers']);
    if (variant === 'ledger-origin') {
      await writer.query(
        `SELECT pg_replication_origin_create($1) WHERE pg_replication_origin_oid($1) IS NULL`,
        [ORIGIN],
      );
      await writer.query('SELECT pg_replication_origin_session_setup($1)', [ORIGIN]);
    }
    const write = sql.writeRequest(false);
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    const from = parseLsn(await insertLsn(db));
    for (let t = 0; t < TXS; t++) {
      if (variant !== 'bare' && t % (STATUS_ROWS / ROWS_PER_TX) === 0)
        await writer.query(write, statusParams(t * ROWS_PER_TX + 1, from));
      const first = t * ROWS_PER_TX + 1;
      await db.query(
        `INSERT INTO crm.customer SELECT g, 'c-' || g, 'vip,north' FROM generate_series($1::bigint, $2::bigint) g`,
        [first, first + ROWS_PER_TX - 1],
      );
    }
    const target = parseLsn(await insertLsn(db));
    const before = cpuTimes();
    const postmaster = await postmasterPid(db, before);
    let after = before;
    const plugin =
      variant === 'ledger-origin'
        ? new NoOriginPgoutput({ protoVersion: 1, publicationNames: ['bench'] })
        : undefined;
    const drained = await drainBaseline(url, slot, 'bench', target, () => (after = cpuTimes()), plugin);
    if (drained.rows !== ROWS) throw new Error(`${variant}: drained ${drained.rows} rows, expected ${ROWS}`);
    const split = pgRoleSplit(before, after, postmaster, await backends(db));
    for (let i = 0; i < 200; i++) {
      const r = await db.query<{ active: boolean }>(
        'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      if (!r.rows[0]?.active) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const decoded = await slotDecoded(db, slot);
    await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
    return {
      variant,
      walsenderUsPerRow: (split.walsender * 1e6) / ROWS,
      walBytesPerRow: Number(target - from) / ROWS,
      decodedBytesPerRow: decoded.bytes / ROWS,
      decodedTxns: decoded.txns,
    };
  } finally {
    await writer.end();
    await db.end();
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
}

async function serverVersionNum(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    return Number(r.rows[0]?.v ?? 0);
  } finally {
    await c.end();
  }
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const server = await startPostgres({
  log,
  settings: { max_wal_size: '8GB', checkpoint_timeout: '30min', synchronous_commit: 'on' },
});
const results: Result[] = [];
try {
  const major = Math.floor((await serverVersionNum(server.url)) / 10_000);
  const variants: Variant[] = major >= 16 ? ['bare', 'ledger', 'ledger-origin'] : ['bare', 'ledger'];
  // Interleaved, so that the machine's load falls on every variant alike.
  for (let i = 0; i < REPEAT; i++)
    for (const v of variants) {
      const r = await run(server.url, v, i);
      log(`${v} run ${i + 1}: walsender ${r.walsenderUsPerRow.toFixed(2)} µs a row`);
      results.push(r);
    }
  log('');
  log(`${server.version}; medians of ${REPEAT}; per source row (${ROWS} rows)`);
  log(
    `${'variant'.padEnd(16)}${['walsender µs', 'WAL bytes', 'decoded bytes', 'decoded txns'].map((h) => h.padStart(15)).join('')}`,
  );
  for (const v of variants) {
    const xs = results.filter((r) => r.variant === v);
    const m = (f: (r: Result) => number): number => median(xs.map(f));
    log(
      `${v.padEnd(16)}${[
        m((r) => r.walsenderUsPerRow).toFixed(2),
        m((r) => r.walBytesPerRow).toFixed(0),
        m((r) => r.decodedBytesPerRow).toFixed(0),
        m((r) => r.decodedTxns).toFixed(0),
      ]
        .map((c) => c.padStart(15))
        .join('')}`,
    );
  }
  process.stdout.write(`${JSON.stringify({ postgres: server.version, repeat: REPEAT, results })}\n`);
} finally {
  await server.stop();
}
