/** What the simulator counts (`GET /__sim/stats`, `Simulator.stats()`): requests by fate, rows by outcome. */
import type { OptType } from '../tuzhan/types.js';

type Outcome = 'synced' | 'failed' | 'accepted';

export interface SimulatorStats {
  /** batchAdd requests received, whatever their fate. */
  requests: number;
  /** Requests that passed auth and validation, and their rows by outcome, per optType. */
  byOptType: Record<OptType, { requests: number; rows: number } & Record<Outcome, number>>;
  rejected: number;
  authFailures: number;
  tokenFetches: number;
  tokenRefusals: number;
  /** Every 429, and those of them that the sustained quota (`rateLimit`) answered. */
  served429: number;
  quotaRefused: number;
  served500: number;
  /** Requests applied and then answered 503 (applyThenFailRate). */
  appliedThenFailed: number;
  timeouts: number;
  customersWithState: number;
}

/** Every count at zero. */
export function emptyStats(): SimulatorStats {
  const opt = () => ({ requests: 0, rows: 0, synced: 0, failed: 0, accepted: 0 });
  return {
    requests: 0,
    byOptType: { add: opt(), update: opt(), delete: opt() },
    rejected: 0,
    authFailures: 0,
    tokenFetches: 0,
    tokenRefusals: 0,
    served429: 0,
    quotaRefused: 0,
    served500: 0,
    appliedThenFailed: 0,
    timeouts: 0,
    customersWithState: 0,
  };
}
