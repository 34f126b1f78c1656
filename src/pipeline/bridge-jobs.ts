/**
 * The bridge's jobs (docs/design.md, "Jobs"): the handlers it runs for the jobs recorded for its
 * slot (backfills, retries of failed rows, approvals and rejections of held rows), and the web
 * console's retry and held-row buttons, all on the bridge's own lanes while it holds the slot.
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
import type { HeldAction, HeldParams, HeldResult } from './held.js';
import { runRetry, type RetryParams, type SourceRetry } from './retry-failed.js';
import type { Stages } from './stages.js';
import type { PlatformProbe } from './sources.js';

export interface BridgeJobsOptions {
  config: Config;
  logger: Logger;
  events: BridgeEvents;
  pool: pg.Pool;
  store: StatusStore;
  sent: SentMark;
  lanes: Lanes;
  /** Approves or rejects held rows on these lanes, telling the guard (./held.ts, ./stages.ts). */
  settleHeld: Stages['settleHeld'];
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
      approve: (job) => this.settleOnLanes('approve', (job.params ?? {}) as HeldParams),
      reject: (job) => this.settleOnLanes('reject', (job.params ?? {}) as HeldParams),
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
  retryFailed(params: RetryParams): Promise<SourceRetry[]> {
    return this.whereTheSlotIs('retry', params.source, { ...params }, () => this.retryOnLanes(params));
  }

  /** Approves or rejects held rows (the web console's buttons), as `retryFailed` retries. */
  settleHeld(action: HeldAction, params: HeldParams): Promise<HeldResult[]> {
    return this.whereTheSlotIs(action, params.source, { ...params }, () =>
      this.settleOnLanes(action, params),
    );
  }

  /** On this bridge's lanes while it holds the slot; else a job for the one that does, awaited. */
  private async whereTheSlotIs<T>(
    kind: JobKind,
    source: string | undefined,
    params: Record<string, unknown>,
    here: () => Promise<T>,
  ): Promise<T> {
    if (this.o.leadership.held) return here();
    const { slot, statusSchema } = this.o.config.postgres;
    const id = await requestJob(this.o.pool, statusSchema, slot, {
      kind,
      source: source ?? null,
      params,
      reason: 'requested',
    });
    return (await awaitJob(this.o.pool, statusSchema, id, { signal: this.o.signal })) as T;
  }

  /** Held rows settled on this bridge's own lanes, its guard told (the platform asked first). */
  private settleOnLanes(action: HeldAction, params: HeldParams): Promise<HeldResult[]> {
    const { platform } = this.o;
    const { check } = platform;
    return this.o.settleHeld(action, params, check ? { check: () => check.call(platform) } : undefined);
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
