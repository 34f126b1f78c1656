/**
 * The supervisor's session loop (powersync's `WalStreamReplicationJob.replicate()`): one replication
 * session after another until the bridge stops. A session that fails is drained, its open
 * transactions forgotten, and the next one starts from the slot's confirmed position after a backoff
 * (`RETRY.reconnect`); a lost slot is re-synced when configured, or ends the bridge with the remedy;
 * the leader lock is taken again first when it was lost. The sessions themselves know nothing of
 * this (./session.ts).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Batcher } from '../batching/batcher.js';
import type { Config } from '../config/types.js';
import type { BridgeEvents } from '../domain/events.js';
import { BridgeError, errorMessage } from '../errors.js';
import type { PositionTracker } from '../router/positions.js';
import type { Router } from '../router/router.js';
import type { Leadership } from '../source/leader.js';
import { isSlotLostError, readSlot } from '../source/slot.js';
import type { SentMark } from '../status/sent-mark.js';
import { sleep } from '../util/backoff.js';
import { formatLsn } from '../util/lsn.js';
import { pgClientConfig } from '../util/pg-connection.js';
import { RETRY, retryDelay } from '../util/retry.js';
import { slotLostError } from './first-start.js';
import type { Outage } from './outage.js';
import { ReplicationSession } from './session.js';

/** What the loop uses of the bridge. */
export interface SessionLoopHost {
  config: Config;
  logger: Logger;
  events: BridgeEvents;
  pool: pg.Pool;
  leadership: Leadership;
  sent: SentMark;
  batcher: Batcher;
  outage: Outage;
  messages: boolean;
  /** The bridge's stop: the loop ends, the session takes no more messages. */
  signal: AbortSignal;
  router(): Router;
  /** The position tracker of now (a re-sync or a rebase replaces it). */
  tracker(): PositionTracker;
  /** Starts a new tracker from this position. */
  track(lsn: bigint): void;
  /** A new slot with every source re-synced; resolves with its position. */
  resyncSlot(): Promise<bigint>;
  /** A session starts: the supervisor stops it, or lets go of it. */
  onSession(session: ReplicationSession): void;
}

/** One session after another until the bridge stops: the supervisor's retry loop. */
export async function runSessions(h: SessionLoopHost): Promise<void> {
  const sources = h.config.sources.map((s) => s.name);
  for (let attempt = 1; !h.signal.aborted;) {
    if (!h.leadership.held) {
      try {
        await h.leadership.acquire(h.signal);
        // Another instance may have streamed meanwhile: its sent positions count too.
        await h.sent.load(sources, true);
      } catch (err) {
        if (h.signal.aborted) return;
        throw err;
      }
    }
    // Unreachable still: the session fails and the next attempt looks again.
    if (attempt > 1) await rebaseOnSlot(h, sources).catch(() => {});
    // A stop that came during the takeover or the rebase: no new session. The stop has already
    // stopped the session it knew of; one begun now would stream on unstopped, and the stop, which
    // waits for this loop, would hang until its timeout (exit 1 instead of a clean stop).
    if (h.signal.aborted) return;
    const session = newSession(h, () => (attempt = 1));
    h.onSession(session);
    try {
      await session.run(h.signal);
      return;
    } catch (err) {
      h.events.emit('streaming', false);
      if (h.signal.aborted) return;
      if (err instanceof BridgeError && !err.retryable) throw err;
      // The outage starts now, whatever happens next (its length is what gets logged).
      const first = h.outage.start();
      h.router().reset();
      if (isSlotLostError(err)) {
        const { slot, onSlotLost } = h.config.postgres;
        if (onSlotLost !== 'resync')
          throw slotLostError(slot, `cannot be streamed from (${errorMessage(err)})`);
        h.logger.warn(
          { err: errorMessage(err) },
          'the slot is lost; re-syncing every source from a new slot',
        );
        try {
          await h.batcher.drain();
          h.track(await h.resyncSlot());
        } catch (err) {
          // A stop cut the re-sync short: the bridge stops, it has not failed (the next start
          // finds the snapshot unfinished and starts it over).
          if (h.signal.aborted) return;
          throw err;
        }
        continue;
      }
      // Nothing received since the slot's confirmed position is lost: the server sends it again.
      // So reconnect at once rather than drain through a platform that may answer slowly: what
      // the buffers hold unsent is dropped (the replay brings it back), requests in flight finish
      // and store their outcomes on their own, and per-key order puts the replay behind them.
      h.batcher.discardBuffered();
      h.tracker().reset();
      const delayMs = retryDelay(RETRY.reconnect, attempt++);
      h.outage.lost(err, delayMs, first);
      await sleep(delayMs, h.signal);
    }
  }
}

/**
 * Before streaming again: a slot behind the position this bridge confirmed was restored from an
 * older state, a crash before the server's checkpoint or a promoted standby's synchronized copy
 * of a failover slot. After a promotion the positions past it are the new timeline's WAL, so the
 * slot's position is the truth; what was sent before may come again (covered as maybe sent).
 */
async function rebaseOnSlot(h: SessionLoopHost, sources: readonly string[]): Promise<void> {
  const { slot } = h.config.postgres;
  const at = (await readSlot(h.pool, slot))?.confirmedFlushLsn;
  if (!at || at >= h.tracker().confirmed) return;
  await h.sent.coverServerPosition(sources);
  h.logger.warn(
    { slot, confirmed: formatLsn(h.tracker().confirmed), slotConfirmed: formatLsn(at) },
    'the slot is behind what this bridge confirmed (a crash or a promoted standby): streaming from the slot',
  );
  h.track(at);
}

function newSession(h: SessionLoopHost, onWorking: () => void): ReplicationSession {
  const router = h.router();
  return new ReplicationSession({
    clientConfig: pgClientConfig(h.config.postgres, 'tuzhan-cdc'),
    slot: h.config.postgres.slot,
    publication: h.config.postgres.publication,
    messages: h.messages,
    columns: (relation) => router.columnsOf(relation),
    logger: h.logger,
    confirmed: () => h.tracker().confirmed,
    onIdlePosition: (lsn) => {
      if (!router.inTransaction && h.batcher.load === 0) h.tracker().confirmIdle(lsn);
    },
    onMessage: (msg) => router.handle(msg),
    onFirstMessage: onWorking,
    onStart: () => {
      h.outage.back();
      h.events.emit('streaming', true);
    },
  });
}
