/**
 * Jobs (`<statusSchema>.job`, sql/008): work asked of the daemon that holds the slot, so that every
 * request it leads to goes through that daemon's per-key lanes (docs/design.md, "Jobs"). A command,
 * the web console or a standby records one; the daemon claims it, runs it, and stores its result,
 * which the one who asked reads back. Statements as pure functions of the schema name, and the
 * typed calls the rest of the code uses.
 */
import type pg from 'pg';
import { quoteIdent } from '../util/sql.js';

/** What a job does: a backfill of a source, a retry of failed rows, an approval of held rows. */
export const JOB_KINDS = ['backfill', 'retry', 'approve', 'reject'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export type JobStatus = 'pending' | 'running' | 'done' | 'failed' | 'cancelled';

/** A job as its runner and its requester see it. */
export interface Job {
  id: string;
  kind: JobKind;
  source: string | null;
  filter: Record<string, unknown> | null;
  params: Record<string, unknown> | null;
  status: JobStatus;
  /** Where a backfill resumes: the last key whose outcome is stored (its JSON), or null. */
  lastKey: string | null;
  done: number;
  total: number | null;
  result: unknown;
  error: string | null;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The statements on the job table of one status schema. */
export function jobSql(schemaName: string) {
  const job = `${quoteIdent(schemaName)}.job`;
  const columns = `id::text, kind, source, filter, params, status, last_key::text AS last_key,
    rows_done::text AS done, rows_total::text AS total, result, error`;
  return {
    /** $1 schema name: whether the job table exists yet (migration 008). */
    exists: `SELECT to_regclass(format('%I.job', $1::text)) IS NOT NULL AS ok`,

    /** $1 slot, $2 kind, $3 source (or null), $4 filter, $5 params, $6 reason: a job to run. */
    request: `INSERT INTO ${job} (slot, kind, source, filter, params, reason) VALUES ($1, $2, $3, $4, $5, $6)
      RETURNING id::text`,

    /** $1 slot, $2 kind, $3 source, $4 reason: a job asked for already (one request per TRUNCATE). */
    find: `SELECT id::text FROM ${job} WHERE slot = $1 AND kind = $2 AND source = $3 AND reason = $4 LIMIT 1`,

    /** $1 slot, $2 kinds: the oldest job of each kind still to run or finish (on job_open_idx). */
    next: `SELECT DISTINCT ON (kind) ${columns} FROM ${job}
      WHERE slot = $1 AND status IN ('pending', 'running') AND kind = ANY($2::text[]) ORDER BY kind, id`,

    /** $1 id: takes a job that is still to run or was left running by a runner that died. */
    claim: `UPDATE ${job} SET status = 'running', started_at = coalesce(started_at, now())
      WHERE id = $1 AND status IN ('pending', 'running') RETURNING id::text`,

    /** $1 id, $2 status (done, failed), $3 error, $4 result. */
    finish: `UPDATE ${job} SET status = $2, finished_at = now(), error = $3, result = $4 WHERE id = $1`,

    /** $1 slot, $2 source, $3 filter: a backfill of the source and filter still to run or running. */
    openBackfill: `SELECT id::text AS id FROM ${job}
      WHERE slot = $1 AND status IN ('pending', 'running') AND kind = 'backfill' AND source = $2
        AND filter IS NOT DISTINCT FROM $3::jsonb ORDER BY id LIMIT 1`,

    /** $1 slot: the sources with a re-sync a TRUNCATE asked for still to run or running. */
    openTruncateResyncs: `SELECT DISTINCT source FROM ${job}
      WHERE slot = $1 AND status IN ('pending', 'running') AND kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,

    /** $1 id: one job. */
    read: `SELECT ${columns} FROM ${job} WHERE id = $1`,
  };
}

interface JobRow {
  id: string;
  kind: JobKind;
  source: string | null;
  filter: Record<string, unknown> | null;
  params: Record<string, unknown> | null;
  status: JobStatus;
  last_key: string | null;
  done: string;
  total: string | null;
  result: unknown;
  error: string | null;
}

function jobOf(r: JobRow): Job {
  return {
    id: r.id,
    kind: r.kind,
    source: r.source,
    filter: r.filter,
    params: r.params,
    status: r.status,
    lastKey: r.last_key,
    done: Number(r.done),
    total: r.total === null ? null : Number(r.total),
    result: r.result,
    error: r.error,
  };
}

/** Records a job for the daemon of `slot`; resolves with its id. */
export async function requestJob(
  db: Queryable,
  schema: string,
  slot: string,
  job: {
    kind: JobKind;
    source: string | null;
    filter?: Record<string, unknown> | null;
    params?: Record<string, unknown> | null;
    reason: string;
  },
): Promise<string> {
  const res = await db.query<{ id: string }>(jobSql(schema).request, [
    slot,
    job.kind,
    job.source,
    job.filter ?? null,
    job.params ?? null,
    job.reason,
  ]);
  return (res.rows[0] as { id: string }).id;
}

/** A job asked for already with this slot, kind, source and reason: its id, or undefined. */
export async function findJob(
  db: Queryable,
  schema: string,
  job: { slot: string; kind: JobKind; source: string; reason: string },
): Promise<string | undefined> {
  const res = await db.query<{ id: string }>(jobSql(schema).find, [
    job.slot,
    job.kind,
    job.source,
    job.reason,
  ]);
  return res.rows[0]?.id;
}

/** The oldest open job of each of these kinds. */
export async function nextJobs(
  db: Queryable,
  schema: string,
  slot: string,
  kinds: readonly JobKind[],
): Promise<Job[]> {
  const res = await db.query<JobRow>(jobSql(schema).next, [slot, kinds]);
  return res.rows.map(jobOf);
}

/** Takes a job to run it; false when it is finished already (or gone). */
export async function claimJob(db: Queryable, schema: string, id: string): Promise<boolean> {
  const res = await db.query(jobSql(schema).claim, [id]);
  return (res.rowCount ?? 0) > 0;
}

/** Stores how a job ended. */
export async function finishJob(
  db: Queryable,
  schema: string,
  id: string,
  outcome: { status: 'done' | 'failed' | 'cancelled'; error?: string | null; result?: unknown },
): Promise<void> {
  await db.query(jobSql(schema).finish, [
    id,
    outcome.status,
    outcome.error ?? null,
    outcome.result === undefined ? null : JSON.stringify(outcome.result),
  ]);
}

/** One job, or undefined when it is gone. */
export async function readJob(db: Queryable, schema: string, id: string): Promise<Job | undefined> {
  const res = await db.query<JobRow>(jobSql(schema).read, [id]);
  const r = res.rows[0];
  return r ? jobOf(r) : undefined;
}

/**
 * Asks the daemon for a backfill of a source: the one writer of backfill requests (`tuzhan-cdc
 * backfill`, the console, a source new to the slot). A backfill of the same source and filter
 * still to run or running is returned instead of a second one.
 */
export async function requestBackfill(
  db: Queryable,
  schema: string,
  slot: string,
  backfill: { source: string; filter: Record<string, unknown> | null; reason: string },
): Promise<{ id: string; created: boolean }> {
  const open = await db.query<{ id: string }>(jobSql(schema).openBackfill, [
    slot,
    backfill.source,
    backfill.filter,
  ]);
  if (open.rows[0]) return { id: open.rows[0].id, created: false };
  const id = await requestJob(db, schema, slot, { kind: 'backfill', ...backfill });
  return { id, created: true };
}
