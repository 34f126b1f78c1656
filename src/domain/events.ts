/**
 * Typed events the pipeline emits; metrics and logs subscribe. A failing listener never crashes
 * the daemon: `listen` wraps every listener.
 */
import { EventEmitter } from 'node:events';
import type { OptType, RowStatus } from './types.js';

export type { RowStatus } from './types.js';

export interface BridgeEventMap {
  /** One API request finished (any outcome). */
  request: [
    {
      source: string;
      optType: OptType;
      rows: number;
      /** ok: status 1; partial: some rows failed or accepted; rejected: whole batch; transient; auth. */
      outcome: 'ok' | 'partial' | 'rejected' | 'transient' | 'auth';
      httpStatus?: number;
      code?: string;
      durationMs: number;
    },
  ];
  /** Outcomes stored for `count` source rows. */
  rows: [{ source: string; op: OptType; status: RowStatus; count: number }];
  /** `count` changes of a source changed nothing the platform sees: no request, no outcome stored. */
  unchanged: [{ source: string; count: number }];
  /** A request will be tried again after `delayMs`. */
  retry: [
    { source: string; reason: 'transient' | 'auth' | 'rejected-split'; attempt: number; delayMs: number },
  ];
  /** Rows held in buffers and in requests in flight. */
  buffer: [{ buffered: number; inflight: number }];
  /** Slot lag, as read from pg_replication_slots. */
  slotLag: [{ bytes: number; seconds: number }];
  /** The slot's WAL headroom: wal_status, safe_wal_size (null: no limit), max_slot_wal_keep_size (-1: none). */
  walSafety: [{ walStatus: string | null; safeWalSize: number | null; maxKeepBytes: number }];
  /** Whether the slot would survive a promotion of a standby (failover slot, standbys streaming). */
  failover: [{ ready: boolean; slotFailover: boolean | null }];
  /** Whether the replication stream is up. */
  streaming: [boolean];
  /** Whether the last request reached the platform (any answer counts). */
  apiReachable: [boolean];
  /** Rows of a source synced by the snapshot or a backfill so far, and the estimate of all. */
  progress: [{ source: string; kind: 'snapshot' | 'backfill'; done: number; total: number }];
  /** The confirmed position moved. */
  confirmed: [{ lsn: string }];
  /**
   * What the platform's answers taught the limiter changed (src/tuzhan/limiter.ts): the requests a
   * second allowed (null: no limit), the learned quota (null: nothing refused yet), the concurrency,
   * refusals so far; `change` says what moved and why, when something did.
   */
  requestRate: [
    {
      rate: number | null;
      quota: number | null;
      concurrency: number;
      maxConcurrency: number;
      refused: number;
      change?: { what: 'rate' | 'concurrency'; from: number; to: number; why: string };
    },
  ];
  /** Rows of sync_status per source in the statuses that wait or failed, as counted just now. */
  statusRows: [
    Array<{
      source: string;
      status: 'failed' | 'retrying' | 'accepted' | 'held';
      rows: number;
      /** Seconds since the oldest of them was stored (0 without rows). */
      oldest: number;
    }>,
  ];
}

export type BridgeEvents = EventEmitter<BridgeEventMap>;

export function createBridgeEvents(): BridgeEvents {
  return new EventEmitter<BridgeEventMap>();
}

/** Subscribes a listener that can never throw into the emitter (errors go to `onError`). */
export function listen<K extends keyof BridgeEventMap>(
  events: BridgeEvents,
  name: K,
  listener: (...args: BridgeEventMap[K]) => void,
  onError: (err: unknown) => void = () => {},
): void {
  events.on(
    name as never,
    ((...args: BridgeEventMap[K]) => {
      try {
        listener(...args);
      } catch (err) {
        onError(err);
      }
    }) as never,
  );
}
