/**
 * The status write: one request's outcomes (and its sync_batch row) in one statement, in two shapes
 * that store the same thing and differ only in what they cost the customer's database
 * (docs/benchmark.md, "The status table"):
 *
 * - `insert`: INSERT ... ON CONFLICT DO UPDATE. The cheapest for keys the table does not hold yet
 *   (a first start, a backlog of new customers). For a key it holds, PostgreSQL first locks the
 *   row and logs that lock (~55 bytes of WAL), then logs the update.
 * - `update`: UPDATE of the keys the table holds (found through the primary key), then the same
 *   INSERT ... ON CONFLICT for the others. No lock is logged: with room in the page (fillfactor,
 *   migration 009) a later change of a synced row costs one HOT update record, ~180 bytes. It is
 *   planned at every write (sent unnamed): a plan made while the table was small would scan it.
 * - `new`: the `insert` shape without its ON CONFLICT clause, for a request whose keys the table does
 *   not hold yet. It skips what an upsert pays for every row even when nothing conflicts (a look-up
 *   of the key, a speculative-insertion lock, a second WAL record confirming the insert): ~38% of
 *   the write's database CPU and ~48 bytes of WAL a row less (docs/benchmark.md, "Third round"). A
 *   key the table holds makes it fail whole with a unique violation, writing nothing; the store
 *   then writes the request as `insert` (src/status/write-shapes.ts).
 *
 * They return how many rows they wrote and how many of those were new, so the store can pick the
 * shape that fits what a source writes now. `insert` and `update` are correct for any keys; an
 * outcome never replaces that of a later change of the key (`lsn`): a replayed window may be cut
 * into flushes differently, and a bridge that just lost its lock may still be finishing.
 */
import type { OptType, RowStatus } from '../domain/types.js';
import { formatLsn } from '../util/lsn.js';
import { OP_CODE, STATUS_CODE } from './codes.js';
import { quoteIdent } from '../util/sql.js';

export type WriteShape = 'new' | 'insert' | 'update';

/**
 * What a row first written here holds in `room` (sql/012): 24 bytes its page gets back once the row
 * is rewritten (every rewrite stores ''), so the rewrites of a page's rows find free space above the
 * prune threshold and PostgreSQL prunes the page once for several of them. In one run each of the
 * `updates` bench: 16 bytes gave 187 bytes of WAL a row, 24 and 32 gave 182 (docs/benchmark.md).
 */
const ROOM = `repeat(' ', 24)`;

/**
 * $1 source, $2 keys (a JSON array of canonical key texts), $3 payloads (a JSON array), $4 each
 * row's tuple number in $5..$10 (op and status codes, attempts, error or '', lsn, committed_at: the
 * codes and '' are sql/011's, see codes.ts); with a batch,
 * $11..$20 its sync_batch columns. The source must be in sync_source. Keys and payloads go in as
 * json, which keeps their text: a key is stored exactly as the bridge built it, and nothing is
 * parsed into jsonb. Returns one row: `written`, `inserted`.
 */
export function statusWriteSql(schemaName: string, withBatch: boolean, shape: WriteShape): string {
  const schema = quoteIdent(schemaName);
  const row = `${schema}.sync_row`;
  const sourceId = `(SELECT id FROM ${schema}.sync_source WHERE name = $1)`;
  const batch = withBatch
    ? `b AS (
        INSERT INTO ${schema}.sync_batch
          (source, opt_type, rows, http_status, code, msg, api_status, success_num, fail_num, started_at, duration_ms)
        VALUES ($1, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
      ), `
    : '';
  const rows = `ROWS FROM (json_array_elements($2::json), json_array_elements($3::json), unnest($4::int[])) AS r(k, p, t)`;
  const payload = `CASE WHEN json_typeof(r.p) <> 'null' THEN r.p END`;
  const outcome = (x: string): string =>
    `($5::"char"[])[${x}.t], ($6::"char"[])[${x}.t], ($7::int[])[${x}.t], ($8::text[])[${x}.t], ($9::pg_lsn[])[${x}.t], ($10::timestamptz[])[${x}.t]`;
  const onConflict = `
        ON CONFLICT (source_id, key) DO UPDATE SET
          op_code = EXCLUDED.op_code, status_code = EXCLUDED.status_code, attempts = EXCLUDED.attempts, error = EXCLUDED.error,
          lsn = EXCLUDED.lsn, committed_at = EXCLUDED.committed_at, synced_at = EXCLUDED.synced_at,
          payload = EXCLUDED.payload, room = ''
        WHERE ${row}.lsn IS NULL OR ${row}.lsn <= EXCLUDED.lsn`;
  const upsert = (select: string, conflict = onConflict): string => `INSERT INTO ${row}
          (source_id, key, op_code, status_code, attempts, error, lsn, committed_at, synced_at, payload, room)
        ${select}${conflict}
        RETURNING xmax = 0 AS new`;
  if (shape !== 'update') {
    const select = `SELECT ${sourceId}, r.k::text, ${outcome('r')}, now(), ${payload}, ${ROOM} FROM ${rows}`;
    return `WITH ${batch}w AS (
        ${upsert(select, shape === 'new' ? '' : onConflict)}
      )
      SELECT count(*)::int AS written, (count(*) FILTER (WHERE new))::int AS inserted FROM w`;
  }
  return `WITH ${batch}i AS (
        SELECT r.k::text COLLATE "C" AS k, r.t, ${payload} AS p FROM ${rows}
      ), u AS (
        UPDATE ${row} t SET op_code = ($5::"char"[])[i.t], status_code = ($6::"char"[])[i.t], attempts = ($7::int[])[i.t],
               error = ($8::text[])[i.t], lsn = ($9::pg_lsn[])[i.t], committed_at = ($10::timestamptz[])[i.t],
               synced_at = now(), payload = i.p, room = ''
          FROM i
         WHERE t.source_id = ${sourceId} AND t.key = ANY (ARRAY(SELECT k FROM i)) AND t.key = i.k
           AND (t.lsn IS NULL OR t.lsn <= ($9::pg_lsn[])[i.t])
        RETURNING t.key
      ), w AS (
        ${upsert(`SELECT ${sourceId}, i.k, ${outcome('i')}, now(), i.p, ${ROOM} FROM i WHERE i.k NOT IN (SELECT key FROM u)`)}
      )
      SELECT ((SELECT count(*) FROM u) + count(*))::int AS written, (count(*) FILTER (WHERE new))::int AS inserted
        FROM w`;
}

/** One row of sync_status. */
export interface StatusRow {
  /** Canonical JSON text of the key columns. */
  rowKey: string;
  op: OptType;
  status: RowStatus;
  attempts: number;
  error: string | null;
  lsn: bigint;
  committedAt: Date;
  payload: unknown;
}

/** The parameters of a status write: see `encodeStatusRows`. */
export interface EncodedStatusRows {
  /** JSON array of the rows' keys (their canonical JSON texts, as they are: stored verbatim). */
  keys: string;
  /** JSON array of the rows' payloads (null for none). */
  payloads: string;
  /** int[] literal: each row's outcome tuple (1-based) in the arrays below. */
  tupleOf: string;
  ops: string;
  statuses: string;
  attempts: string;
  errors: string;
  lsns: string;
  committedAts: string;
}

/**
 * A request's status rows in the compact form the status write takes: keys and payloads as two
 * JSON arrays, and the rest (op, status, attempts, error, LSN, commit time), which rows of a
 * request mostly share, as a short table of distinct tuples that each row points into. This runs
 * for every row the bridge syncs: it builds ~60 bytes of text per row, and PostgreSQL parses the
 * LSN and timestamp once per tuple rather than once per row (see docs/benchmark.md).
 */
export function encodeStatusRows(rows: readonly StatusRow[]): EncodedStatusRows {
  const n = rows.length;
  const keys = new Array<string>(n);
  const payloads = new Array<string>(n);
  const tupleOf = new Array<number>(n);
  const ops: string[] = [];
  const statuses: string[] = [];
  const attempts: number[] = [];
  const errors: string[] = [];
  const lsns: string[] = [];
  const committedAts: string[] = [];
  const seen = new Map<string, number>();
  let prev: StatusRow | undefined;
  let prevTuple = 0;
  for (let i = 0; i < n; i++) {
    const r = rows[i] as StatusRow;
    keys[i] = r.rowKey;
    payloads[i] = r.payload === null || r.payload === undefined ? 'null' : JSON.stringify(r.payload);
    if (prev === undefined || !sameTuple(prev, r)) {
      const id = `${r.op}\u0000${r.status}\u0000${r.attempts}\u0000${r.lsn}\u0000${r.committedAt.getTime()}\u0000${r.error === null ? 'N' : `E${r.error}`}`;
      let t = seen.get(id);
      if (t === undefined) {
        ops.push(OP_CODE[r.op]);
        statuses.push(STATUS_CODE[r.status]);
        attempts.push(r.attempts);
        // No error is stored as '' (sql/011: a row without NULLs has no null bitmap).
        errors.push(r.error === null ? '""' : arrayElement(r.error));
        lsns.push(formatLsn(r.lsn));
        committedAts.push(`"${r.committedAt.toISOString()}"`);
        t = ops.length;
        seen.set(id, t);
      }
      prev = r;
      prevTuple = t;
    }
    tupleOf[i] = prevTuple;
  }
  return {
    keys: `[${keys.join(',')}]`,
    payloads: `[${payloads.join(',')}]`,
    tupleOf: `{${tupleOf.join(',')}}`,
    ops: `{${ops.join(',')}}`,
    statuses: `{${statuses.join(',')}}`,
    attempts: `{${attempts.join(',')}}`,
    errors: `{${errors.join(',')}}`,
    lsns: `{${lsns.join(',')}}`,
    committedAts: `{${committedAts.join(',')}}`,
  };
}

/** `writeRequest`'s parameters $1..$10 (statusSql().writeRequest): the source, then the rows. */
export function statusRowParams(source: string, e: EncodedStatusRows): unknown[] {
  return [
    source,
    e.keys,
    e.payloads,
    e.tupleOf,
    e.ops,
    e.statuses,
    e.attempts,
    e.errors,
    e.lsns,
    e.committedAts,
  ];
}

function sameTuple(a: StatusRow, b: StatusRow): boolean {
  return (
    a.op === b.op &&
    a.status === b.status &&
    a.attempts === b.attempts &&
    a.error === b.error &&
    a.lsn === b.lsn &&
    a.committedAt.getTime() === b.committedAt.getTime()
  );
}

/** A text as an element of a PostgreSQL array literal: double-quoted, `"` and `\` escaped. */
function arrayElement(text: string): string {
  return `"${text.replace(/["\\]/g, '\\$&')}"`;
}
