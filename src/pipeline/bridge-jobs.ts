/**
 * The bridge's jobs (docs/design.md, "Jobs"): the handlers it runs for the jobs recorded for its
 * slot (backfills, retries of failed rows; approvals of held rows join here), and the web console's
 * retry, all on the bridge's own lanes while it holds the slot.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Lanes } from '../batching/lanes.js';
import type { Config } from '../config/types.js';
import type { BridgeEvents } from '../domain/events.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import type { Watermarks } from '../router/watermarks.js';
import type { Leadership } from '../source/leader.js';
import { requestJob, type JobKind } from '../status/jobs.js';
import type { SentMark } from '../status/sent-mark.js';
import type { StatusStore } from '../status/status-store.js';
import { backfillHandler } from './backfill.js';
import { awaitJob, runJobs, type JobHandler } from './jobs.js';
import { runRetry, type RetryParams, type SourceRetry } from './retry-failed.js';
import type { PlatformProbe } from './sources.js';

export interface BridgeJobsOptions {
  config: Config;
  logger: Logger;
  events: BridgeEvents;
  pool: pg.Pool;
  store: StatusStore;
  sent: SentMark;
  lanes: Lanes;
  leadership: Leadership;
  runtimes: ReadonlyMap<string, SourceRuntime>;
  watermarks: Watermarks;
  platform: Partial<PlatformProbe>;
  /** The slot position the bridge has confirmed. */
  confirmed(): bigint;
  /** The bridge's stop: jobs stop taking work; a backfill stops between chunks. */
  signal: AbortSignal;
}

export class BridgeJobs {
  constructor(private readonly o: BridgeJobsOptions) {}

  /**
   * Runs the slot's jobs until the bridge stops. Backfills read between watermarks in the stream:
   * logical decoding messages, PostgreSQL 14+ (`messages`); without them they wait.
   */
  run(messages: boolean): Promise<void> {
    const o = this.o;
    const { postgres } = o.config;
    const handlers: Partial<Record<JobKind, JobHandler>> = {
      retry: (job) => this.retryOnLanes((job.params ?? {}) as RetryParams),
    };
    if (messages)
      handlers.backfill = backfillHandler({
        pool: o.pool,
        store: o.store,
        statusSchema: postgres.statusSchema,
        slot: postgres.slot,
        runtimes: o.runtimes,
        watermarks: o.watermarks,
        confirmed: o.confirmed,
        events: o.events,
        logger: o.logger,
        signal: o.signal,
      });
    return runJobs({
      pool: o.pool,
      statusSchema: postgres.statusSchema,
      slot: postgres.slot,
      handlers,
      mayRun: () => o.leadership.held,
      logger: o.logger,
      signal: o.signal,
    });
  }

  /**
   * Retries failed rows (the web console's Retry button) where the slot's requests are ordered: on
   * this bridge's lanes while it holds the slot, else as a job for the bridge that does (this one
   * is a standby), whose result it waits for.
   */
  async retryFailed(params: RetryParams): Promise<SourceRetry[]> {
    if (this.o.leadership.held) return this.retryOnLanes(params);
    const { slot, statusSchema } = this.o.config.postgres;
    const id = await requestJob(this.o.pool, statusSchema, slot, {
      kind: 'retry',
      source: params.source ?? null,
      params: { ...params },
      reason: 'requested',
    });
    return (await awaitJob(this.o.pool, statusSchema, id, { signal: this.o.signal })) as SourceRetry[];
  }

  /** The retry on this bridge's own lanes, in order with what it streams. */
  private retryOnLanes(params: RetryParams): Promise<SourceRetry[]> {
    const { config, pool, store, sent, lanes, platform } = this.o;
    const { check } = platform;
    return runRetry(
      { config, pool, store, sent, lanes },
      params,
      check ? { check: () => check.call(platform) } : undefined,
    );
  }
}
