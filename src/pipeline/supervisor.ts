/**
 * The supervisor (powersync's `WalStreamReplicationJob`): wires the stages, checks and prepares the
 * database, holds the slot's leader lock, runs one replication session after another (reconnecting,
 * re-syncing a lost slot when configured), and owns the lifecycle. `start` and `stop` return the
 * operation already in progress. One signal (`halt`, graphile-worker's abortSignal) goes from here
 * through the start (./startup.ts), the session loop and each session down to the stream: a stop
 * (the caller's `signal`, or `stop()`) or a fatal error aborts it, and its reason carries the error
 * that ended things, if one did. A second (`force`) aborts retries once a stop waited long enough.
 */
import type pg from 'pg';
import type { Batcher } from '../batching/batcher.js';
import type { PlatformSender } from '../delivery/delivery.js';
import type { Leadership } from '../source/leader.js';
import type { SentMark } from '../status/sent-mark.js';
import type { StatusStore } from '../status/status-store.js';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { createBridgeEvents, type BridgeEvents } from '../domain/events.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { errorMessage } from '../errors.js';
import { advanceSlot } from '../source/slot.js';
import { PositionTracker } from '../router/positions.js';
import { formatLsn } from '../util/lsn.js';
import { prepareSlot } from './first-start.js';
import { Router } from '../router/router.js';
import type { ReplicationSession } from './session.js';
import { runSessions, type SessionLoopHost } from './session-loop.js';
import { buildStages, drainOrGiveUp, type Stages } from './stages.js';
import type { HeldAction, HeldParams, HeldResult } from './held.js';
import { Outage } from './outage.js';
import type { RetryParams, SourceRetry } from './retry-failed.js';
import { BridgeJobs } from './bridge-jobs.js';
import { startUp, type Started } from './startup.js';
import type { Lanes } from '../batching/lanes.js';
import { Watermarks } from '../router/watermarks.js';
import type { PlatformProbe } from './sources.js';

export interface BridgeOptions {
  config: Config;
  logger: Logger;
  /** The platform; `check` (TuzhanClient's) lets a first start refuse before creating anything. */
  sender: PlatformSender & Partial<PlatformProbe>;
  events?: BridgeEvents;
  /** How often the slot lag is measured. */
  lagIntervalMs?: number;
  /** How often the failed / retrying / accepted rows are counted in sync_status. */
  statusIntervalMs?: number;
  /** `run --resync`: drop the slot, create a new one and re-sync every source from its snapshot. */
  resync?: boolean;
  /**
   * The stop (SIGTERM): once it aborts, the bridge stops as `stop()` does, at whatever moment of its
   * start or of streaming; a start in progress then rejects with the stop's reason.
   */
  signal?: AbortSignal;
}

/** The reason of `halt` for a stop that was asked for (anything else is a fatal error). */
class StopRequested extends Error {
  constructor() {
    super('stop requested');
  }
}

export class Bridge {
  readonly events: BridgeEvents;
  private readonly config: Config;
  private readonly logger: Logger;
  private readonly pool: pg.Pool;
  private readonly store: StatusStore;
  private readonly sent: SentMark;
  private readonly leadership: Leadership;
  private readonly batcher: Batcher;
  private readonly runtimes = new Map<string, SourceRuntime>();
  private router: Router | undefined;
  private readonly watermarks = new Watermarks();
  private messages = false;
  private readonly jobs: BridgeJobs;
  /** The job runner, once streaming has begun. */
  private running: Promise<void> | undefined;
  private tracker = new PositionTracker(0n);
  private session: ReplicationSession | undefined;
  private readonly halt = new AbortController();
  private readonly force = new AbortController();
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  private unwatch: (() => void) | undefined;
  private unwatchStatus: (() => void) | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  /** Since when a snapshot (first start, re-sync) runs: changes committed meanwhile wait for it. */
  private syncingSince: Date | undefined;
  /** The replication stream's outages, logged once each (not per attempt). */
  private readonly outage: Outage;

  constructor(private readonly o: BridgeOptions) {
    let lanes: Lanes;
    let settleHeld: Stages['settleHeld'];
    this.config = o.config;
    this.logger = o.logger;
    this.outage = new Outage(o.logger);
    this.events = o.events ?? createBridgeEvents();
    ({
      pool: this.pool,
      store: this.store,
      sent: this.sent,
      leadership: this.leadership,
      batcher: this.batcher,
      lanes,
      settleHeld,
    } = buildStages({
      config: this.config,
      logger: this.logger,
      sender: o.sender,
      events: this.events,
      runtimes: this.runtimes,
      force: this.force.signal,
      onDatabaseAway: (reason) => this.letGo(reason),
      onFatal: (err) => this.fail(err),
    }));
    this.jobs = new BridgeJobs({
      config: this.config,
      logger: this.logger,
      events: this.events,
      pool: this.pool,
      store: this.store,
      sent: this.sent,
      lanes,
      settleHeld,
      leadership: this.leadership,
      runtimes: this.runtimes,
      watermarks: this.watermarks,
      platform: o.sender,
      confirmed: () => this.tracker.confirmed,
      signal: this.halt.signal,
    });
    if (o.signal?.aborted) void this.stop();
    else o.signal?.addEventListener('abort', () => void this.stop(), { once: true });
  }

  /** The confirmed position (for tests and status). */
  get confirmedLsn(): bigint {
    return this.tracker.confirmed;
  }

  /** Settles when streaming ends: resolves after `stop`, rejects with a fatal error. */
  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /**
   * Checks, migrates, waits for the slot's leader lock, prepares publication and slot (with the
   * snapshot when the slot is new) and starts streaming. Resolves once streaming has begun.
   */
  start(): Promise<void> {
    return (this.starting ??= this.begin());
  }

  /**
   * Graceful stop: stop reading, drain buffers and requests, store outcomes, confirm the position,
   * close. After `timeoutMs`, or once `giveUp` aborts, pending retries are aborted (nothing unstored
   * is confirmed). A second call returns the stop in progress.
   */
  stop(timeoutMs = 30_000, giveUp?: AbortSignal): Promise<void> {
    return (this.stopping ??= this.end(timeoutMs, giveUp));
  }

  private get halted(): boolean {
    return this.halt.signal.aborted;
  }

  /** The error that ended the bridge, if one did. */
  private get fatal(): unknown {
    const reason: unknown = this.halt.signal.reason;
    return this.halted && !(reason instanceof StopRequested) ? reason : undefined;
  }

  /** A failure that must end the daemon: nothing more is confirmed; `done` rejects with it. */
  private fail(err: unknown): void {
    if (!this.halted) this.halt.abort(err);
    if (!this.force.signal.aborted) this.force.abort(err);
    void this.session?.stop().catch(() => {});
  }

  private async begin(): Promise<void> {
    // A re-sync or a first start: changes committed meanwhile wait for its snapshot.
    this.syncingSince = new Date();
    let started: Started;
    try {
      started = await startUp({
        config: this.config,
        logger: this.logger,
        events: this.events,
        pool: this.pool,
        store: this.store,
        sent: this.sent,
        leadership: this.leadership,
        batcher: this.batcher,
        runtimes: this.runtimes,
        platform: this.o.sender,
        resync: this.o.resync === true,
        oldestOpen: () => this.syncingSince ?? this.tracker.oldestOpenCommitTime(),
        lagIntervalMs: this.o.lagIntervalMs,
        statusIntervalMs: this.o.statusIntervalMs,
        signal: this.halt.signal,
      });
    } finally {
      this.syncingSince = undefined;
    }
    this.unwatch = started.unwatch;
    this.messages = started.messages;
    this.router = new Router({
      runtimes: this.runtimes,
      batcher: this.batcher,
      store: this.store,
      tracker: () => this.tracker,
      watermarks: this.watermarks,
      logger: this.logger,
      onUnchanged: (source, count) => this.events.emit('unchanged', { source, count }),
      jobs: { slot: this.config.postgres.slot, statusSchema: this.config.postgres.statusSchema },
    });
    this.track(started.position);
    this.loop = runSessions(this.loopHost()).then(() => {
      if (this.fatal !== undefined) throw this.fatal;
    });
    this.loop.catch(() => {});
    this.running = this.jobs.run(this.messages);
  }

  /**
   * Retries failed rows (the web console's Retry button) where the slot's requests are ordered:
   * this bridge's lanes, or the active bridge's when this one is a standby.
   */
  retryFailed(params: RetryParams): Promise<SourceRetry[]> {
    return this.jobs.retryFailed(params);
  }

  /** Approves or rejects held rows (the console's buttons), as `retryFailed` does its retry. */
  settleHeld(action: HeldAction, params: HeldParams): Promise<HeldResult[]> {
    return this.jobs.settleHeld(action, params);
  }

  /** A new slot, every source re-synced from its snapshot (a lost slot, `onSlotLost: resync`). */
  private async resyncSlot(): Promise<bigint> {
    this.syncingSince = new Date();
    try {
      const { pool, store, config, runtimes, batcher, sent, logger, events } = this;
      const signal = this.halt.signal;
      return await prepareSlot({
        pool,
        store,
        config,
        runtimes,
        batcher,
        sent,
        logger,
        events,
        signal,
        resync: true,
      });
    } finally {
      this.syncingSince = undefined;
    }
  }

  /** A position tracker from `lsn`, confirming to the server as it moves. */
  private track(lsn: bigint): void {
    this.tracker = new PositionTracker(lsn);
    this.tracker.onAdvance((at) => {
      this.events.emit('confirmed', { lsn: formatLsn(at) });
      this.ackTimer ??= setTimeout(() => {
        this.ackTimer = undefined;
        this.session?.sendStatus();
      }, 20);
    });
  }

  /** The bridge as the session loop sees it. */
  private loopHost(): SessionLoopHost {
    return {
      config: this.config,
      logger: this.logger,
      events: this.events,
      pool: this.pool,
      leadership: this.leadership,
      sent: this.sent,
      batcher: this.batcher,
      outage: this.outage,
      messages: this.messages,
      signal: this.halt.signal,
      router: () => this.router as Router,
      tracker: () => this.tracker,
      track: (lsn) => this.track(lsn),
      resyncSlot: () => this.resyncSlot(),
      onSession: (session) => (this.session = session),
    };
  }

  /**
   * Lets go of the replication connection at once, without draining: the server is shutting down
   * (its walsender would wait for confirmations the bridge cannot give while outcomes cannot be
   * stored, holding the shutdown hostage), or the leader lock is gone. The session loop drains what
   * it holds, waits for the lock, and streams again from the slot's confirmed position.
   */
  private letGo(reason: string): void {
    if (this.halted || !this.session?.letGo(reason)) return;
    this.logger.warn(
      { reason },
      'letting go of the replication connection; streaming again once the database is back',
    );
  }

  private async end(timeoutMs: number, giveUp?: AbortSignal): Promise<void> {
    if (!this.halted) this.halt.abort(new StopRequested());
    this.unwatch?.();
    this.unwatchStatus?.();
    const timer = setTimeout(
      () => this.force.abort(new Error(`stop took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
    // The caller knows nothing more can be delivered (the platform refuses the credentials): what is
    // unanswered stays unconfirmed, as after the timeout, without waiting for it.
    const onGiveUp = (): void => this.force.abort(giveUp?.reason);
    if (giveUp?.aborted) onGiveUp();
    else giveUp?.addEventListener('abort', onGiveUp, { once: true });
    try {
      // A stop during the start waits for it to give up (the snapshot and the standby wait listen).
      await this.starting?.catch(() => {});
      if (this.fatal === undefined)
        await drainOrGiveUp(this.batcher, this.force.signal, this.logger, timeoutMs, giveUp);
      await this.session?.stop();
      await this.loop?.catch(() => {});
      await this.running;
      if (this.tracker.confirmed > 0n) {
        await advanceSlot(this.pool, this.config.postgres.slot, this.tracker.confirmed, formatLsn).catch(
          (err: unknown) =>
            this.logger.warn({ err: errorMessage(err) }, 'confirming the final position failed'),
        );
      }
    } finally {
      clearTimeout(timer);
      giveUp?.removeEventListener('abort', onGiveUp);
      clearTimeout(this.ackTimer);
      if (!this.force.signal.aborted) this.force.abort(new StopRequested());
      this.store.close();
      await this.leadership.release();
      await this.pool.end().catch(() => {});
    }
  }
}
