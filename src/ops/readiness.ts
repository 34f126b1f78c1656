/**
 * Readiness as /readyz reports it (docs/design.md, "Interfaces"): the replication stream is up and the platform
 * does its job. Derived from the pipeline's events, so the ops server needs no handle on the
 * pipeline.
 */
import { listen, type BridgeEvents } from '../domain/events.js';

export interface Readiness {
  ready: boolean;
  checks: Record<string, boolean | string | number>;
}

export interface ReadinessOptions {
  /**
   * How long the platform may answer nothing but failures (5xx, 429, timeouts, unreachable,
   * refused credentials) before the bridge reports not ready (`tuzhan.notReadyAfterMs`).
   */
  notReadyAfterMs: number;
  now?: () => number;
}

/**
 * Tracks `streaming` and `request` events. Before the first request the platform's state is
 * `"unknown"`, which does not hold readiness back: an idle bridge with a static token may send
 * nothing for hours, and must not look broken meanwhile. Once requests fail and none has been
 * answered usefully (imported, or rejected for its data) for `notReadyAfterMs`, the bridge is not
 * ready until one is: a platform that answers only errors, or refuses the credentials, is not
 * being synced to, whatever the stream does.
 */
export class ReadinessTracker {
  private streaming = false;
  private apiReachable: boolean | undefined;
  /** When the current run of failed requests began; undefined while the last answer was useful. */
  private failingSince: number | undefined;
  private credentials: 'unknown' | 'accepted' | 'refused' = 'unknown';
  private readonly now: () => number;

  constructor(
    events: BridgeEvents,
    private readonly options: ReadinessOptions = { notReadyAfterMs: 30_000 },
  ) {
    this.now = options.now ?? Date.now;
    listen(events, 'streaming', (up) => {
      this.streaming = up;
    });
    listen(events, 'apiReachable', (up) => {
      this.apiReachable = up;
    });
    listen(events, 'request', (r) => {
      if (r.outcome === 'transient' || r.outcome === 'auth') {
        this.failingSince ??= this.now();
        if (r.outcome === 'auth') this.credentials = 'refused';
      } else {
        this.failingSince = undefined;
        this.credentials = 'accepted';
      }
    });
  }

  readiness(): Readiness {
    const failingMs = this.failingSince === undefined ? 0 : this.now() - this.failingSince;
    const platformOk = this.failingSince === undefined || failingMs < this.options.notReadyAfterMs;
    const checks: Readiness['checks'] = {
      streaming: this.streaming,
      apiReachable: this.apiReachable ?? 'unknown',
      platformOk,
      credentials: this.credentials,
    };
    if (this.failingSince !== undefined) checks.failingForSeconds = Math.round(failingMs / 1000);
    return { ready: this.streaming && platformOk, checks };
  }
}
