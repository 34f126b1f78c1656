/**
 * One log line when what the bridge learned of the platform's quota moves a lot, never one per step:
 * the first refusal (the quota found), a move of a quarter or more after a refusal (the quota fell,
 * or a probe found it higher), no limit any more; and the concurrency leaving its maximum or coming
 * back to it. A probe's own steps up are not news until the platform's answer says where it ends.
 */
import type { Logger } from 'pino';
import { listen, type BridgeEvents } from '../domain/events.js';

/** A move of the rate by at least this share of the last one logged is news. */
export const NEWS_SHARE = 0.25;

const perSecond = (r: number | null): string => (r === null ? 'no limit' : `${r.toFixed(r < 10 ? 2 : 1)}/s`);

export function attachRateLogger(
  events: BridgeEvents,
  logger: Logger,
  onError: (err: unknown) => void,
): void {
  let logged: number | null = null;
  let concurrencyReduced = false;
  listen(
    events,
    'requestRate',
    (e) => {
      const c = e.change;
      const fields = {
        rate: e.rate,
        quota: e.quota,
        concurrency: e.concurrency,
        refused: e.refused,
        why: c?.why,
      };
      if (c?.what === 'rate' && (c.why !== 'probe' || e.rate === null)) {
        const moved =
          e.rate === null || logged === null
            ? e.rate !== logged
            : Math.abs(e.rate - logged) >= NEWS_SHARE * logged;
        if (!moved) return;
        logger.info(
          fields,
          e.rate === null
            ? 'request rate: no limit any more (the platform took everything asked of it)'
            : `request rate: ${perSecond(e.rate)} (platform quota about ${perSecond(e.quota)}, learned from its refusals; was ${perSecond(logged)}; ${c.why})`,
        );
        logged = e.rate;
      } else if (c?.what === 'concurrency') {
        const reduced = e.concurrency < e.maxConcurrency;
        if (reduced === concurrencyReduced) return;
        concurrencyReduced = reduced;
        logger.info(
          fields,
          reduced
            ? `requests in flight: at most ${e.concurrency} of ${e.maxConcurrency} (the platform is struggling: ${c.why})`
            : `requests in flight: back to ${e.maxConcurrency}`,
        );
      }
    },
    onError,
  );
}
