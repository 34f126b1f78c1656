/**
 * Readiness as /readyz reports it (SPEC section 9): the replication stream is up and the platform
 * answers. Derived from the pipeline's events, so the ops server needs no handle on the pipeline.
 */
import { listen, type BridgeEvents } from './events.js';

export interface Readiness {
  ready: boolean;
  checks: Record<string, boolean | string>;
}

/**
 * Tracks `streaming` and `apiReachable` events. Before the first request the platform's state is
 * `"unknown"`, which does not hold readiness back: an idle bridge with a static token may send
 * nothing for hours, and must not look broken meanwhile. Any request that fails to reach the
 * platform (network error, timeout) turns it false until one gets an answer again.
 */
export class ReadinessTracker {
  private streaming = false;
  private apiReachable: boolean | undefined;

  constructor(events: BridgeEvents) {
    listen(events, 'streaming', (up) => {
      this.streaming = up;
    });
    listen(events, 'apiReachable', (up) => {
      this.apiReachable = up;
    });
  }

  readiness(): Readiness {
    const api = this.apiReachable ?? 'unknown';
    return {
      ready: this.streaming && api !== false,
      checks: { streaming: this.streaming, apiReachable: api },
    };
  }
}
