/**
 * A bridge's start, step by step, until it may stream: the startup checks (the server and every
 * source: src/source/checks.ts, through ./sources.ts), the platform asked before a first start
 * creates anything, the status schema migrated, the slot's leader lock (a standby waits here), the
 * publication, and the slot resumed or created with its snapshot synced (./first-start.ts).
 *
 * One signal stops it: the bridge's, aborted by a stop (SIGTERM) or a fatal error, whose reason it
 * carries. The standby wait and the snapshot listen to it; between the steps it is looked at, so a
 * stop at any moment ends the start with that reason, and nothing after the step in progress runs.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Batcher } from '../batching/batcher.js';
import type { Config } from '../config/types.js';
import type { BridgeEvents } from '../domain/events.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import type { Leadership } from '../source/leader.js';
import { ensurePublication, readSlot } from '../source/slot.js';
import { migrate } from '../status/migrate.js';
import type { SentMark } from '../status/sent-mark.js';
import type { StatusStore } from '../status/status-store.js';
import { prepareSlot } from './first-start.js';
import { watchSlot } from './slot-watch.js';
import { loadSources, probePlatform, sendsMessages, type PlatformProbe } from './sources.js';
import { watchStatus } from './status-watch.js';

export interface StartupOptions {
  config: Config;
  logger: Logger;
  events: BridgeEvents;
  pool: pg.Pool;
  store: StatusStore;
  sent: SentMark;
  leadership: Leadership;
  batcher: Batcher;
  /** Filled with the sources that passed their checks. */
  runtimes: Map<string, SourceRuntime>;
  platform: Partial<PlatformProbe>;
  /** `run --resync`: a new slot and every source re-synced. */
  resync: boolean;
  /** Commit time of the oldest change not confirmable yet (the slot's lag in seconds). */
  oldestOpen(): Date | null;
  lagIntervalMs?: number;
  statusIntervalMs?: number;
  signal: AbortSignal;
}

export interface Started {
  /** The slot's position to stream from. */
  position: bigint;
  /** Whether pgoutput sends logical decoding messages (watermarks; PostgreSQL 14+). */
  messages: boolean;
  /** Stops the watchers the start began (the slot's lag, the status counts). */
  unwatch(): void;
}

/** Runs the start; rejects with the signal's reason once it aborts, or with what failed. */
export async function startUp(o: StartupOptions): Promise<Started> {
  const { postgres, sources } = o.config;
  const { signal } = o;
  const watchers: Array<() => void> = [];
  const unwatch = (): void => {
    for (const w of watchers.splice(0)) w();
  };
  try {
    for (const rt of await loadSources(o.pool, o.config, o.store)) o.runtimes.set(rt.config.name, rt);
    signal.throwIfAborted();
    const messages = await sendsMessages(o.pool);
    if (!(await readSlot(o.pool, postgres.slot))) await probePlatform(o.platform);
    signal.throwIfAborted();
    await migrate(o.pool, postgres.statusSchema);
    watchers.push(
      watchStatus({
        pool: o.pool,
        statusSchema: postgres.statusSchema,
        sources: sources.map((s) => s.name),
        events: o.events,
        logger: o.logger,
        intervalMs: o.statusIntervalMs,
      }),
    );
    await o.leadership.acquire(signal);
    signal.throwIfAborted();
    await ensurePublication(o.pool, postgres.publication, sources);
    // Measured from here, so the lag shows during a first-start snapshot too: the WAL written
    // meanwhile waits in the slot, its changes for the snapshot to end.
    watchers.push(
      watchSlot({
        pool: o.pool,
        slot: postgres.slot,
        lagWarnBytes: postgres.lagWarnBytes,
        oldestOpen: o.oldestOpen,
        events: o.events,
        logger: o.logger,
        intervalMs: o.lagIntervalMs,
      }),
    );
    const position = await prepareSlot({
      pool: o.pool,
      store: o.store,
      resync: o.resync,
      config: o.config,
      runtimes: o.runtimes,
      batcher: o.batcher,
      sent: o.sent,
      logger: o.logger,
      events: o.events,
      signal,
    });
    signal.throwIfAborted();
    return { position, messages, unwatch };
  } catch (err) {
    unwatch();
    // Stopped mid-step (the standby wait, the snapshot): the stop's reason, not the step's words.
    if (signal.aborted) throw signal.reason;
    throw err;
  }
}
