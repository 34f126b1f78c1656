/**
 * The daemon's job runner (docs/design.md, "Jobs"): while this process holds the slot, it takes the
 * jobs recorded for the slot (`<statusSchema>.job`, src/status/jobs.ts), one of each kind at a time
 * (a long backfill never holds up a retry), runs each with the handler of its kind, and stores how
 * it ended and its result for whoever asked. A job left `running` by a daemon that died is taken
 * again by the next: handlers are safe to run twice (a backfill resumes after its last stored key; a
 * retry reads the failed rows again).
 *
 * A kind is added by giving the runner its handler (the supervisor does, src/pipeline/supervisor.ts).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { BridgeError, errorMessage } from '../errors.js';
import { claimJob, finishJob, nextJobs, readJob, type Job, type JobKind } from '../status/jobs.js';
import { sleep } from '../util/backoff.js';

/** Runs a job; resolves with its result (stored as JSON), rejects with why it failed. */
export type JobHandler = (job: Job, signal: AbortSignal) => Promise<unknown>;

/** A handler stopped by the daemon's stop, not failed: the job stays open and is taken again. */
export class JobStopped extends Error {
  constructor() {
    super('stopped with the bridge; taken again at the next start');
  }
}

export interface JobRunnerOptions {
  pool: pg.Pool;
  statusSchema: string;
  slot: string;
  handlers: Partial<Record<JobKind, JobHandler>>;
  /** Whether this process may take jobs now (it holds the slot's leader lock). */
  mayRun(): boolean;
  logger: Logger;
  signal: AbortSignal;
  pollMs?: number;
}

/** Runs the slot's jobs until `signal` aborts; never rejects (a failure is stored on its job). */
export async function runJobs(o: JobRunnerOptions): Promise<void> {
  const running = new Map<JobKind, Promise<void>>();
  const kinds = Object.keys(o.handlers) as JobKind[];
  while (!o.signal.aborted) {
    if (o.mayRun()) {
      const idle = kinds.filter((k) => !running.has(k));
      const jobs = idle.length
        ? await nextJobs(o.pool, o.statusSchema, o.slot, idle).catch((err: unknown) => {
            o.logger.debug({ err: errorMessage(err) }, 'reading the jobs failed');
            return [];
          })
        : [];
      for (const job of jobs) {
        const run = runOne(o, job).finally(() => running.delete(job.kind));
        running.set(job.kind, run);
      }
    }
    await sleep(o.pollMs ?? 1000, o.signal);
  }
  await Promise.all(running.values());
}

async function runOne(o: JobRunnerOptions, job: Job): Promise<void> {
  const handler = o.handlers[job.kind] as JobHandler;
  const log = { job: job.id, kind: job.kind, source: job.source ?? undefined };
  try {
    if (!(await claimJob(o.pool, o.statusSchema, job.id))) return;
    const result = await handler(job, o.signal);
    await finishJob(o.pool, o.statusSchema, job.id, { status: 'done', result });
  } catch (err) {
    if (err instanceof JobStopped || o.signal.aborted) return;
    o.logger.error({ ...log, err: errorMessage(err) }, `${job.kind} failed`);
    await finishJob(o.pool, o.statusSchema, job.id, { status: 'failed', error: errorMessage(err) }).catch(
      (e: unknown) => o.logger.warn({ ...log, err: errorMessage(e) }, 'storing how a job ended failed'),
    );
  }
}

export interface AwaitJobOptions {
  /** Stops waiting (the job goes on): rejects with BridgeError `JOB_LEFT`. */
  signal?: AbortSignal;
  pollMs?: number;
  /**
   * Asked every few polls while nobody has taken the job: may run it (claiming it first) and
   * resolve with its result; undefined to go on waiting.
   */
  whilePending?(): Promise<{ result: unknown } | undefined>;
}

/** Waits for a job to end: resolves with its result, rejects with its error (BridgeError). */
export async function awaitJob(
  pool: pg.Pool,
  statusSchema: string,
  id: string,
  o: AwaitJobOptions = {},
): Promise<unknown> {
  for (let tick = 1; ; tick++) {
    const job = await readJob(pool, statusSchema, id);
    if (!job) throw new BridgeError('JOB_GONE', `job ${id} is gone`);
    if (job.status === 'done') return job.result;
    if (job.status === 'failed' || job.status === 'cancelled')
      throw new BridgeError('JOB_FAILED', job.error ?? `job ${id} was ${job.status}`);
    if (job.status === 'pending' && tick % 8 === 0) {
      const ran = await o.whilePending?.();
      if (ran) return ran.result;
    }
    await sleep(o.pollMs ?? 250, o.signal);
    if (o.signal?.aborted)
      throw new BridgeError(
        'JOB_LEFT',
        `${job.kind} job ${id} goes on in the bridge; \`tuzhan-cdc status\` shows it`,
      );
  }
}
