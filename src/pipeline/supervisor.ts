/**
 * The supervisor (powersync's `WalStreamReplicationJob`): wires the stages, checks and prepares the
 * database, holds the slot's leader lock, runs one replication session after another (reconnecting,
 * re-syncing a lost slot when configured), and owns the lifecycle. `start` and `stop` return the
 * operation already in progress; one signal (`halt`) ends reading, and its reason carries the fatal
 * error that ended things, if any; a second (`force`) aborts retries once a stop has waited long
 * enough.
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
import { BridgeError, errorMessage } from '../errors.js';
import { advanceSlot, ensurePublication, isSlotLostError, readSlot } from '../source/slot.js';
import { migrate } from '../status/migrate.js';
import { PositionTracker } from '../router/positions.js';
import { sleep } from '../util/backoff.js';
import { formatLsn } from '../util/lsn.js';
import { pgClientConfig } from '../util/pg-connection.js';
import { RETRY, retryDelay } from '../util/retry.js';
import { prepareSlot, slotLostError } from './first-start.js';
import { Router } from '../router/router.js';
import { ReplicationSession } from './session.js';
import { watchSlot } from './slot-watch.js';
import { watchStatus } from './status-watch.js';
import { buildStages, type Stages } from './stages.js';
import type { HeldAction, HeldParams, HeldResult } from './held.js';
import { backfillHandler } from './backfill.js';
import { awaitJob, runJobs, type JobHandler } from './jobs.js';
import { runRetry, type RetryParams, type SourceRetry } from './retry-failed.js';
import type { Lanes } from '../batching/lanes.js';
import { requestJob, type JobKind } from '../status/jobs.js';
import { Watermarks } from '../router/watermarks.js';
import { loadSources, probePlatform, sendsMessages, type PlatformProbe } from './sources.js';

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
  private jobs: Promise<void> | undefined;
  private readonly lanes: Lanes;
  private readonly settleOnLanes: Stages['settleHeld'];
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
  /** The replication stream is down since, after so many attempts (logged once, not per attempt). */
  private outage: { since: number; attempts: number } | undefined;

  constructor(private readonly o: BridgeOptions) {
    this.config = o.config;
    this.logger = o.logger;
    this.events = o.events ?? createBridgeEvents();
    ({
      pool: this.pool,
      store: this.store,
      sent: this.sent,
      leadership: this.leadership,
      batcher: this.batcher,
      lanes: this.lanes,
      settleHeld: this.settleOnLanes,
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
    const { postgres, sources } = this.config;
    const loaded = await loadSources(this.pool, this.config, this.store);
    for (const rt of loaded) this.runtimes.set(rt.config.name, rt);
    this.router = new Router({
      runtimes: this.runtimes,
      batcher: this.batcher,
      store: this.store,
      tracker: () => this.tracker,
      watermarks: this.watermarks,
      logger: this.logger,
      onUnchanged: (source, count) => this.events.emit('unchanged', { source, count }),
      jobs: { slot: postgres.slot, statusSchema: postgres.statusSchema },
    });
    this.messages = await sendsMessages(this.pool);
    if (!(await readSlot(this.pool, postgres.slot))) await probePlatform(this.o.sender);
    await migrate(this.pool, postgres.statusSchema);
    this.unwatchStatus = watchStatus({
      pool: this.pool,
      statusSchema: postgres.statusSchema,
      sources: sources.map((s) => s.name),
      events: this.events,
      logger: this.logger,
      intervalMs: this.o.statusIntervalMs,
    });
    await this.leadership.acquire(this.halt.signal);
    await ensurePublication(this.pool, postgres.publication, sources);
    // Measured from here, so the lag shows during a first-start snapshot too: the WAL written
    // meanwhile waits in the slot, its changes for the snapshot to end.
    this.unwatch = watchSlot({
      pool: this.pool,
      slot: postgres.slot,
      lagWarnBytes: postgres.lagWarnBytes,
      oldestOpen: () => this.syncingSince ?? this.tracker.oldestOpenCommitTime(),
      events: this.events,
      logger: this.logger,
      intervalMs: this.o.lagIntervalMs,
    });
    this.track(await this.prepareSlot(this.o.resync === true));
    this.loop = this.runSessions().then(() => {
      if (this.fatal !== undefined) throw this.fatal;
    });
    this.loop.catch(() => {});
    const handlers: Partial<Record<JobKind, JobHandler>> = {
      retry: (job) => this.retryOnLanes((job.params ?? {}) as RetryParams),
      approve: (job) => this.settleHeld('approve', (job.params ?? {}) as HeldParams),
      reject: (job) => this.settleHeld('reject', (job.params ?? {}) as HeldParams),
    };
    // Backfills read between watermarks in the stream: logical decoding messages, PostgreSQL 14+.
    if (this.messages)
      handlers.backfill = backfillHandler({
        pool: this.pool,
        store: this.store,
        statusSchema: postgres.statusSchema,
        slot: postgres.slot,
        runtimes: this.runtimes,
        watermarks: this.watermarks,
        confirmed: () => this.tracker.confirmed,
        events: this.events,
        logger: this.logger,
        signal: this.halt.signal,
      });
    this.jobs = runJobs({
      pool: this.pool,
      statusSchema: postgres.statusSchema,
      slot: postgres.slot,
      handlers,
      mayRun: () => this.leadership.held,
      logger: this.logger,
      signal: this.halt.signal,
    });
  }

  /**
   * Retries failed rows (the web console's Retry button) where the slot's requests are ordered: on
   * this bridge's lanes while it holds the slot, else as a job for the bridge that does (this one
   * is a standby), whose result it waits for.
   */
  async retryFailed(params: RetryParams): Promise<SourceRetry[]> {
    if (this.leadership.held) return this.retryOnLanes(params);
    const { slot, statusSchema } = this.config.postgres;
    const id = await requestJob(this.pool, statusSchema, slot, {
      kind: 'retry',
      source: params.source ?? null,
      params: { ...params },
      reason: 'requested',
    });
    return (await awaitJob(this.pool, statusSchema, id, { signal: this.halt.signal })) as SourceRetry[];
  }

  /**
   * Approves or rejects held rows (the jobs of `tuzhan-cdc held`, the console's buttons) on this
   * bridge's lanes while it holds the slot, else as a job for the bridge that does.
   */
  async settleHeld(action: HeldAction, params: HeldParams): Promise<HeldResult[]> {
    const { check } = this.o.sender;
    if (this.leadership.held)
      return this.settleOnLanes(
        action,
        params,
        check ? { check: () => check.call(this.o.sender) } : undefined,
      );
    const { slot, statusSchema } = this.config.postgres;
    const id = await requestJob(this.pool, statusSchema, slot, {
      kind: action,
      source: params.source ?? null,
      params: { ...params },
      reason: 'requested',
    });
    return (await awaitJob(this.pool, statusSchema, id, { signal: this.halt.signal })) as HeldResult[];
  }

  /** The retry on this bridge's own lanes, in order with what it streams. */
  private retryOnLanes(params: RetryParams): Promise<SourceRetry[]> {
    const { check } = this.o.sender;
    return runRetry(
      { config: this.config, pool: this.pool, store: this.store, sent: this.sent, lanes: this.lanes },
      params,
      check ? { check: () => check.call(this.o.sender) } : undefined,
    );
  }

  /** Resumes the slot, or (re)creates it and syncs every source from its snapshot. */
  private async prepareSlot(resync: boolean): Promise<bigint> {
    this.syncingSince = new Date();
    try {
      return await this.prepare(resync);
    } finally {
      this.syncingSince = undefined;
    }
  }

  private prepare(resync: boolean): Promise<bigint> {
    return prepareSlot({
      pool: this.pool,
      store: this.store,
      resync,
      config: this.config,
      runtimes: this.runtimes,
      batcher: this.batcher,
      sent: this.sent,
      logger: this.logger,
      events: this.events,
      signal: this.halt.signal,
    });
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

  /** One session after another until stopped: the supervisor's retry loop. */
  private async runSessions(): Promise<void> {
    const sources = this.config.sources.map((s) => s.name);
    for (let attempt = 1; !this.halted;) {
      if (!this.leadership.held) {
        try {
          await this.leadership.acquire(this.halt.signal);
        } catch (err) {
          if (this.halted) return;
          throw err;
        }
        // Another instance may have streamed meanwhile: its sent positions count too.
        await this.sent.load(sources, true);
      }
      // Unreachable still: the session fails and the next attempt looks again.
      if (attempt > 1) await this.rebaseOnSlot(sources).catch(() => {});
      const session = this.newSession(() => (attempt = 1));
      this.session = session;
      try {
        await session.run(() => this.halted);
        return;
      } catch (err) {
        this.events.emit('streaming', false);
        if (this.halted) return;
        if (err instanceof BridgeError && !err.retryable) throw err;
        await this.batcher.drain();
        this.router?.reset();
        if (isSlotLostError(err)) {
          const { slot, onSlotLost } = this.config.postgres;
          if (onSlotLost !== 'resync')
            throw slotLostError(slot, `cannot be streamed from (${errorMessage(err)})`);
          this.logger.warn(
            { err: errorMessage(err) },
            'the slot is lost; re-syncing every source from a new slot',
          );
          this.track(await this.prepareSlot(true));
          continue;
        }
        // What was received but not confirmed is sent again by the server: finish what we hold
        // (done above), forget open transactions, and start from the slot's confirmed position.
        this.tracker.reset();
        const delayMs = retryDelay(RETRY.reconnect, attempt++);
        // Once per outage at warn; every further attempt at debug, and one line when it is back.
        const first = this.outage === undefined;
        this.outage ??= { since: Date.now(), attempts: 0 };
        this.outage.attempts += 1;
        this.logger[first ? 'warn' : 'debug'](
          { err: errorMessage(err), delayMs, attempt: this.outage.attempts },
          first
            ? 'replication stream lost; draining and reconnecting'
            : 'replication stream still down; reconnecting',
        );
        await sleep(delayMs, this.halt.signal);
      }
    }
  }

  /**
   * Before streaming again: a slot behind the position this bridge confirmed was restored from an
   * older state, a crash before the server's checkpoint or a promoted standby's synchronized copy
   * of a failover slot. After a promotion the positions past it are the new timeline's WAL, so the
   * slot's position is the truth; what was sent before may come again (covered as maybe sent).
   */
  private async rebaseOnSlot(sources: readonly string[]): Promise<void> {
    const { slot } = this.config.postgres;
    const at = (await readSlot(this.pool, slot))?.confirmedFlushLsn;
    if (!at || at >= this.tracker.confirmed) return;
    await this.sent.coverServerPosition(sources);
    this.logger.warn(
      { slot, confirmed: formatLsn(this.tracker.confirmed), slotConfirmed: formatLsn(at) },
      'the slot is behind what this bridge confirmed (a crash or a promoted standby): streaming from the slot',
    );
    this.track(at);
  }

  private newSession(onWorking: () => void): ReplicationSession {
    const router = this.router as Router;
    return new ReplicationSession({
      clientConfig: pgClientConfig(this.config.postgres, 'tuzhan-cdc'),
      slot: this.config.postgres.slot,
      publication: this.config.postgres.publication,
      messages: this.messages,
      columns: (relation) => router.columnsOf(relation),
      logger: this.logger,
      confirmed: () => this.tracker.confirmed,
      onIdlePosition: (lsn) => {
        if (!router.inTransaction && this.batcher.load === 0) this.tracker.confirmIdle(lsn);
      },
      onMessage: (msg) => router.handle(msg),
      onFirstMessage: onWorking,
      onStart: () => {
        if (this.outage) {
          this.logger.info(
            {
              downSeconds: Math.round((Date.now() - this.outage.since) / 1000),
              attempts: this.outage.attempts,
            },
            'replication stream back',
          );
          this.outage = undefined;
        }
        this.events.emit('streaming', true);
      },
    });
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
    this.session?.pause();
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
      if (this.fatal === undefined) await this.drain(timeoutMs, giveUp);
      await this.session?.stop();
      await this.loop?.catch(() => {});
      await this.jobs;
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

  /** Drains buffers and requests, or gives up when `force` aborts (what is unanswered stays unconfirmed). */
  private async drain(timeoutMs: number, giveUp?: AbortSignal): Promise<void> {
    const forced = new Promise<false>((resolve) => {
      if (this.force.signal.aborted) resolve(false);
      this.force.signal.addEventListener('abort', () => resolve(false), { once: true });
    });
    const drained = await Promise.race([
      this.batcher.drain().then(
        () => true,
        (err: unknown) => {
          this.logger.warn({ err: errorMessage(err) }, 'drain failed');
          return true;
        },
      ),
      forced,
    ]);
    if (!drained && !giveUp?.aborted)
      this.logger.warn({ timeoutMs }, 'stopping without a full drain: timed out');
  }
}
