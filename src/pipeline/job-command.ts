/**
 * A command's work where the slot's requests are ordered (docs/design.md, "Jobs"): while a daemon
 * holds the slot, the work is a job that daemon runs on its own lanes, and the command waits for its
 * result; with no daemon running, the command runs it itself, on connections and lanes of its own,
 * holding the slot's leader lock, so that a daemon starting meanwhile waits for it. When the daemon
 * that was asked stops before taking the job, the command takes it over the same way.
 */
import type pg from 'pg';
import { Lanes } from '../batching/lanes.js';
import { OrderedScheduler } from '../batching/scheduler.js';
import type { Config } from '../config/types.js';
import { Delivery } from '../delivery/delivery.js';
import { BridgeError, errorMessage } from '../errors.js';
import type { Leadership } from '../source/leader.js';
import { claimJob, finishJob, jobSql, requestJob, type JobKind } from '../status/jobs.js';
import type { StatusStore } from '../status/status-store.js';
import { TuzhanClient } from '../tuzhan/client.js';
import { silentLogger } from '../ops/logger.js';
import { awaitJob } from './jobs.js';

/** How often the job's state is read while the daemon runs it. */
const POLL_MS = 250;

export interface JobCommand<T> {
  config: Config;
  pool: pg.Pool;
  leadership: Leadership;
  kind: JobKind;
  source: string | null;
  params: Record<string, unknown>;
  /** What the work is called in the message to a daemon too old to run it ("retries"). */
  what: string;
  /** Runs the work here: the slot's lock is held (no daemon runs). */
  here(): Promise<T>;
  /** Told when the work was handed to the daemon as a job (its id). */
  onJob?(id: string): void;
  /** Stops waiting for the daemon's job (the job goes on there); rejects with `JOB_LEFT`. */
  signal?: AbortSignal;
}

/**
 * Hands the work to the daemon holding the slot and waits for its result. Should the daemon stop
 * before it takes the job, the slot's lock comes free: the job is taken here, as when no daemon runs.
 */
export async function inDaemon<T>(o: JobCommand<T>): Promise<T> {
  const { slot, statusSchema } = o.config.postgres;
  const { pool, leadership } = o;
  const ready = await pool.query<{ ok: boolean }>(jobSql(statusSchema).exists, [statusSchema]);
  if (!ready.rows[0]?.ok)
    throw new BridgeError(
      'NO_JOBS',
      `the bridge streaming from slot ${slot} is older than this command (it runs no ${o.what}): upgrade it, or stop it and try again`,
    );
  const id = await requestJob(pool, statusSchema, slot, {
    kind: o.kind,
    source: o.source,
    params: o.params,
    reason: 'requested',
  });
  o.onJob?.(id);
  const result = await awaitJob(pool, statusSchema, id, {
    signal: o.signal,
    pollMs: POLL_MS,
    // A pending job and a free lock: the daemon is gone. Take the job, as when no daemon runs.
    whilePending: async () => {
      if (!(await leadership.tryAcquire())) return undefined;
      if (!(await claimJob(pool, statusSchema, id))) {
        await leadership.release(); // taken meanwhile: its runner goes on, and a daemon may start
        return undefined;
      }
      try {
        const here = await o.here();
        await finishJob(pool, statusSchema, id, { status: 'done', result: here });
        return { result: here };
      } catch (err) {
        await finishJob(pool, statusSchema, id, { status: 'failed', error: errorMessage(err) }).catch(
          () => {},
        );
        throw err;
      }
    },
  });
  return result as T;
}

/** Lanes of a command's own (no daemon runs): its scheduler, and delivery to its own client. */
export async function withOwnLanes<T>(
  config: Config,
  store: StatusStore,
  run: (lanes: Lanes, client: TuzhanClient) => Promise<T>,
): Promise<T> {
  const client = new TuzhanClient(config.tuzhan, { logger: silentLogger() });
  try {
    const scheduler = new OrderedScheduler({ concurrency: config.tuzhan.concurrency, ratePerSecond: 0 });
    return await run(new Lanes(scheduler, new Delivery({ sender: client, store })), client);
  } finally {
    await client.close().catch(() => {});
  }
}
