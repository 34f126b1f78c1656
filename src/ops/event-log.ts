/**
 * Logs the pipeline's events: one line per API request at info (SPEC section 9), retries and
 * state changes at warn. Failures of these listeners are logged, never thrown into the pipeline.
 */
import type { Logger } from 'pino';
import { listen, type BridgeEvents } from '../domain/events.js';

/** Subscribes a logger to the bridge's events. */
export function attachEventLogger(events: BridgeEvents, logger: Logger): void {
  const onError = (err: unknown): void => logger.error({ err }, 'event listener failed');
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
      if (e.outcome === 'ok' || e.outcome === 'partial') logger.info(fields, 'batch sent');
      else logger.warn(fields, 'batch not accepted');
    },
    onError,
  );
  listen(events, 'retry', (e) => logger.warn(e, 'request will be retried'), onError);
  let streaming: boolean | undefined;
  listen(
    events,
    'streaming',
    (up) => {
      if (up === streaming) return;
      streaming = up;
      if (up) logger.info('replication stream up');
      else logger.warn('replication stream down');
    },
    onError,
  );
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
}
