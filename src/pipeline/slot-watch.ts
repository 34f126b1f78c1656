/**
 * Watches the slot while the bridge streams: the WAL it keeps (lag in bytes and in seconds) and the
 * headroom before the server would invalidate it (docs/design.md, "First start and re-sync"). With `max_slot_wal_keep_size`
 * set, a warning is logged when the slot has used half, then 80%, of it; without a limit, when the
 * lag passes `postgres.lagWarnBytes`. Once lost, the slot cannot be streamed past: better to hear
 * of it before.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { BridgeEvents } from '../domain/events.js';
import { errorMessage } from '../errors.js';
import { describeFailover, readFailoverState } from '../source/failover.js';
import { readSlot } from '../source/slot.js';
import { formatBytes } from '../util/format.js';

export interface SlotWatchOptions {
  pool: pg.Pool;
  slot: string;
  /** Lag above which to warn when the server sets no `max_slot_wal_keep_size`. */
  lagWarnBytes: number;
  /** Commit time of the oldest change not yet confirmable (for the lag in seconds). */
  oldestOpen(): Date | null;
  events: BridgeEvents;
  logger: Logger;
  intervalMs?: number;
}

/** The share of `max_slot_wal_keep_size` a slot has used, from its `safe_wal_size`. */
export function walUsed(safeWalSize: number | null, maxKeepBytes: number): number | null {
  if (safeWalSize === null || maxKeepBytes <= 0) return null;
  return Math.min(1, Math.max(0, 1 - safeWalSize / maxKeepBytes));
}

const LEVELS = [0.8, 0.5];

/** Starts measuring every `intervalMs`; returns the stop. */
export function watchSlot(o: SlotWatchOptions): () => void {
  let warned = 0;
  let failoverReady: boolean | undefined;
  /** Failover readiness: logged once at start, then whenever it changes. */
  const failover = async (): Promise<void> => {
    const st = await readFailoverState(o.pool, o.slot);
    o.events.emit('failover', { ready: st.ready, slotFailover: st.slotFailover });
    if (st.ready === failoverReady) return;
    const lostIt = failoverReady === true;
    failoverReady = st.ready;
    o.logger[lostIt ? 'warn' : 'info']({ slot: o.slot, ready: st.ready }, describeFailover(st, o.slot));
  };
  const measure = async (): Promise<void> => {
    try {
      const slot = await readSlot(o.pool, o.slot);
      const res = await o.pool.query<{ max: string }>(
        `SELECT pg_size_bytes(current_setting('max_slot_wal_keep_size'))::text AS max`,
      );
      const maxKeep = Number(res.rows[0]?.max ?? -1);
      const oldest = o.oldestOpen();
      const lag = slot?.lagBytes ?? 0;
      o.events.emit('slotLag', {
        bytes: lag,
        seconds: oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0,
      });
      o.events.emit('walSafety', {
        walStatus: slot?.walStatus ?? null,
        safeWalSize: slot?.safeWalSize ?? null,
        maxKeepBytes: maxKeep,
      });
      const used = walUsed(slot?.safeWalSize ?? null, maxKeep);
      const level = used === null ? (lag >= o.lagWarnBytes ? 1 : 0) : (LEVELS.find((l) => used >= l) ?? 0);
      if (level > warned) {
        o.logger.warn(
          used === null
            ? { slot: o.slot, lag: formatBytes(lag), lagWarnBytes: o.lagWarnBytes }
            : {
                slot: o.slot,
                used: `${Math.round(used * 100)}%`,
                safeWalSize: formatBytes(slot?.safeWalSize ?? 0),
              },
          used === null
            ? 'the slot keeps more WAL than postgres.lagWarnBytes: the bridge is falling behind (is the platform answering?)'
            : `the slot has used ${Math.round(level * 100)}% of max_slot_wal_keep_size: past it the server invalidates the slot and a re-sync is needed`,
        );
      }
      warned = level;
      await failover();
    } catch (err) {
      o.logger.debug({ err: errorMessage(err) }, 'measuring the slot failed');
    }
  };
  // At once too: a first-start snapshot can take minutes, and its lag matters from the start.
  void measure();
  const timer = setInterval(() => void measure(), o.intervalMs ?? 5000);
  return () => clearInterval(timer);
}
