/**
 * Logs the pipeline's events. Each request at debug, and at info a summary of what was sent every
 * `summaryIntervalMs` (one line a minute by default, none while nothing happens): a first-start
 * snapshot or a backlog sends hundreds of requests a minute, and an operator's log must not drown
 * in them. Whole-batch rejections are warnings; transient and credential failures are logged by
 * the platform client (one line per retry, one error per refusal streak), so only at debug here.
 * Failures of these listeners are logged, never thrown into the pipeline.
 */
import type { Logger } from 'pino';
import { listen, type BridgeEvents } from '../domain/events.js';
import type { RowStatus } from '../domain/types.js';
import { attachRateLogger } from './rate-log.js';

export interface EventLogOptions {
  /** How often the info summary is written; default 60 s. 0: never. */
  summaryIntervalMs?: number;
}

interface Window {
  requests: number;
  rejected: number;
  rows: Partial<Record<RowStatus, number>>;
  sources: Set<string>;
}

const emptyWindow = (): Window => ({ requests: 0, rejected: 0, rows: {}, sources: new Set() });

/** Subscribes a logger to the bridge's events; returns the function that stops the summaries. */
export function attachEventLogger(
  events: BridgeEvents,
  logger: Logger,
  options: EventLogOptions = {},
): () => void {
  const onError = (err: unknown): void => logger.error({ err }, 'event listener failed');
  let window = emptyWindow();
  listen(
    events,
    'request',
    (e) => {
      const fields = {
        source: e.source,
        optType: e.optType,
        rows: e.rows,
        outcome: e.outcome,
        httpStatus: e.httpStatus,
        code: e.code,
        durationMs: Math.round(e.durationMs),
      };
      if (e.outcome === 'ok' || e.outcome === 'partial') {
        window.requests += 1;
        window.sources.add(e.source);
        logger.debug(fields, 'batch sent');
      } else if (e.outcome === 'rejected') {
        window.rejected += 1;
        logger.warn(fields, 'batch rejected by the platform');
      } else {
        logger.debug(fields, 'batch not accepted');
      }
    },
    onError,
  );
  listen(
    events,
    'rows',
    (e) => {
      window.rows[e.status] = (window.rows[e.status] ?? 0) + e.count;
      window.sources.add(e.source);
    },
    onError,
  );
  listen(events, 'retry', (e) => logger.debug(e, 'request will be retried'), onError);
  attachRateLogger(events, logger, onError);
  let reachable: boolean | undefined;
  listen(
    events,
    'apiReachable',
    (up) => {
      if (up === reachable) return;
      // Only transitions: the first success is not news, a loss and a recovery are.
      if (!up) logger.warn('platform unreachable');
      else if (reachable === false) logger.info('platform reachable again');
      reachable = up;
    },
    onError,
  );

  const intervalMs = options.summaryIntervalMs ?? 60_000;
  if (intervalMs <= 0) return () => {};
  let last = Date.now();
  const timer = setInterval(() => {
    const w = window;
    window = emptyWindow();
    const seconds = Math.round((Date.now() - last) / 1000);
    last = Date.now();
    const stored = Object.values(w.rows).reduce((a, b) => a + (b ?? 0), 0);
    if (w.requests === 0 && w.rejected === 0 && stored === 0) return;
    const rows = Object.entries(w.rows)
      .map(([status, n]) => `${n} ${status}`)
      .join(', ');
    logger.info(
      { seconds, requests: w.requests, rejected: w.rejected, rows: w.rows, sources: [...w.sources].sort() },
      `sent ${w.requests} request${w.requests === 1 ? '' : 's'} in the last ${seconds} s; rows: ${rows || 'none'}`,
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
