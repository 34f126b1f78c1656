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
import { SentMark } from '../status/sent-mark.js';
import { StatusStore } from '../status/status-store.js';
import { pgClientConfig } from '../util/pg-connection.js';

export interface Stages {
  pool: pg.Pool;
  store: StatusStore;
  sent: SentMark;
  leadership: Leadership;
  batcher: Batcher;
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
  });
  const batcher: Batcher = new Batcher(config.batching, dispatcher, (buffered, inflight) =>
    events.emit('buffer', { buffered, inflight }),
  );
  return { pool, store, sent, leadership, batcher, lanes };
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
