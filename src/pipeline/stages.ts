/**
 * The stages the supervisor runs, wired once: the pool and status store on the CRM database, the
 * sent positions, the leader lock, and the buffers -> dispatcher -> delivery chain. The supervisor
 * hears what it must act on through the callbacks.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { Batcher } from '../batching/batcher.js';
import { Dispatcher } from '../batching/dispatcher.js';
import { Lanes } from '../batching/lanes.js';
import { OrderedScheduler } from '../batching/scheduler.js';
import type { Config } from '../config/types.js';
import type { BridgeEvents } from '../domain/events.js';
import { Delivery, type PlatformSender } from '../delivery/delivery.js';
import { errorMessage, isConnectionLoss } from '../errors.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { Leadership } from '../source/leader.js';
import type { RemovalGuard } from '../batching/guard.js';
import type { RemovalLimit } from '../config/guard.js';
import { HeldStore } from '../status/held.js';
import { settleHeld, type HeldAction, type HeldParams, type HeldResult } from './held.js';
import type { PlatformProbe } from './sources.js';
import { SentMark } from '../status/sent-mark.js';
import { StatusStore } from '../status/status-store.js';
import { pgClientConfig } from '../util/pg-connection.js';

export interface Stages {
  pool: pg.Pool;
  store: StatusStore;
  sent: SentMark;
  leadership: Leadership;
  batcher: Batcher;
  held: HeldStore;
  /** The dispatcher's removal guard (held keys), told of an operator's decisions. */
  guard: RemovalGuard | undefined;
  /** Approves or rejects held rows on these lanes, telling the guard (./held.ts). */
  settleHeld(action: HeldAction, params: HeldParams, platform?: PlatformProbe): Promise<HeldResult[]>;
  /** The dispatcher's lanes and delivery, for the senders outside the stream (jobs, the console). */
  lanes: Lanes;
}

export interface StagesOptions {
  config: Config;
  logger: Logger;
  sender: PlatformSender;
  events: BridgeEvents;
  runtimes: ReadonlyMap<string, SourceRuntime>;
  /** Aborts the platform's retries (a forced stop). */
  force: AbortSignal;
  /** The database is gone or going away: let go of the replication connection. */
  onDatabaseAway(reason: string): void;
  /** An outcome could not be stored (or another unexpected failure): stop. */
  onFatal(err: unknown): void;
}

export function buildStages(o: StagesOptions): Stages {
  const { config, logger, events } = o;
  const { postgres } = config;
  const pool = new pg.Pool({ ...pgClientConfig(postgres, 'tuzhan-cdc'), max: config.tuzhan.concurrency + 4 });
  pool.on('error', (err) => {
    logger.warn({ err: errorMessage(err) }, 'idle database connection failed');
    if (isConnectionLoss(err)) o.onDatabaseAway(`the database closed a connection: ${errorMessage(err)}`);
  });
  const store = new StatusStore(pool, postgres.statusSchema, logger, (err) =>
    o.onDatabaseAway(`cannot store outcomes: ${errorMessage(err)}`),
  );
  const leadership = new Leadership({
    clientConfig: pgClientConfig(postgres, 'tuzhan-cdc leader'),
    slot: postgres.slot,
    logger,
  });
  leadership.onLost((reason) => o.onDatabaseAway(`lost the slot's leader lock: ${reason}`));
  const sent = new SentMark(pool, postgres.statusSchema, postgres.slot, (what, fn) =>
    store.withRetry(what, fn),
  );
  // The platform client enforces ratePerSecond on every attempt; the scheduler orders and bounds
  // concurrency only.
  const scheduler = new OrderedScheduler({ concurrency: config.tuzhan.concurrency, ratePerSecond: 0 });
  const held = new HeldStore(pool, postgres.statusSchema, (what, fn) => store.withRetry(what, fn));
  const lanes = new Lanes(scheduler, new Delivery({ sender: o.sender, store, events }));
  const dispatcher = new Dispatcher({
    maxBatchSize: config.batching.maxBatchSize,
    sent,
    sources: o.runtimes,
    delivery: lanes.delivery,
    state: store,
    scheduler,
    logger,
    onDone: (n) => batcher.done(n),
    onUnchanged: (source, count) => events.emit('unchanged', { source, count }),
    signal: o.force,
    onFatal: o.onFatal,
    held,
    limits: sourceLimits(config),
    // Half of the buffered rows may wait for a transaction's COMMIT; the rest keeps flowing.
    capacity: Math.max(1, Math.floor(config.batching.maxBufferedRows / 2)),
    onHeld: (source, count) => events.emit('rows', { source, op: 'delete', status: 'held', count }),
  });
  const batcher: Batcher = new Batcher(config.batching, dispatcher, (buffered, inflight) =>
    events.emit('buffer', { buffered, inflight }),
  );
  const guard = dispatcher.guard;
  return {
    pool,
    store,
    sent,
    leadership,
    batcher,
    held,
    guard,
    lanes,
    settleHeld: (action, params, platform) =>
      settleHeld({ config, pool, store, sent, lanes, held, guard }, action, params, platform),
  };
}

/** Each source's removal limit: its own `guard`, else the top level's. */
export function sourceLimits(config: Config): Map<string, RemovalLimit> {
  return new Map(config.sources.map((s) => [s.name, s.guard.maxRemovals]));
}

/**
 * Drains buffers and requests, or gives up when `force` aborts (a stop waited `timeoutMs`, or the
 * platform refuses the credentials: `giveUp`): what is unanswered stays unconfirmed.
 */
export async function drainOrGiveUp(
  batcher: Batcher,
  force: AbortSignal,
  logger: Logger,
  timeoutMs: number,
  giveUp?: AbortSignal,
): Promise<void> {
  const forced = new Promise<false>((resolve) => {
    if (force.aborted) resolve(false);
    force.addEventListener('abort', () => resolve(false), { once: true });
  });
  const drained = await Promise.race([
    batcher.drain().then(
      () => true,
      (err: unknown) => {
        logger.warn({ err: errorMessage(err) }, 'drain failed');
        return true;
      },
    ),
    forced,
  ]);
  if (!drained && !giveUp?.aborted) logger.warn({ timeoutMs }, 'stopping without a full drain: timed out');
}
