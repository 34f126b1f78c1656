/**
 * The soak's fault schedule: a pure function of the seed and the run's length, so a seed that fails
 * runs the same faults at the same moments again (`npm run soak -- --minutes M --seed S`). What
 * happens between them (the writer's timing, the platform's answers) is the machine's; the plan is
 * the seed's.
 */
import { seededRandom } from '../src/demo/crm-sample.js';

/** The demo's seeded generator (mulberry32): the same seed, the same numbers. */
export const rng = seededRandom;

/** What a fault does. Platform faults last `seconds`; the others are one action. */
export type Fault =
  /** SIGKILL of the bridge process; restarted after a short delay, as compose would. */
  | { kind: 'sigkill' }
  /** SIGTERM (a deploy, `docker compose stop`): a clean stop, SIGKILL after the grace period. */
  | { kind: 'sigterm' }
  /** pg_terminate_backend of the walsender streaming the slot. */
  | { kind: 'drop-walsender' }
  /** pg_terminate_backend of the bridge's other connections (status writes; with `lock`, the leader lock's too). */
  | { kind: 'drop-connections'; lock: boolean }
  /** PostgreSQL crashes (immediate stop: no shutdown checkpoint) and starts again. */
  | { kind: 'pg-crash' }
  /** PostgreSQL restarts cleanly (fast shutdown). */
  | { kind: 'pg-restart' }
  /** A share of requests answered HTTP 500, unapplied. */
  | { kind: 'errors'; rate: number; seconds: number }
  /** The next `count` requests answered 429 with Retry-After. */
  | { kind: 'throttle'; count: number; retryAfterSeconds: number }
  /** Every answer late by `ms`. */
  | { kind: 'slow'; ms: number; seconds: number }
  /** A share of requests applied, then answered 503: the answer is lost after the platform applied it. */
  | { kind: 'lost-answers'; rate: number; seconds: number }
  /** A share of requests applied and never answered: the client's timeout gives up on them. */
  | { kind: 'timeouts'; rate: number; seconds: number };

export type FaultKind = Fault['kind'];

export interface Planned {
  /** Seconds after the start of the run. */
  at: number;
  fault: Fault;
}

export interface Plan {
  seed: number;
  seconds: number;
  /** Until then the bridge process itself is killed too; afterwards it lives to the end (its RSS is judged). */
  processPhaseSeconds: number;
  events: Planned[];
}

/** Faults that end the bridge process: only in the process phase. */
const PROCESS_FAULTS: readonly FaultKind[] = ['sigkill', 'sigterm'];

/** Relative weights: database and platform faults are the common case, crashes of either side rarer. */
const WEIGHTS: ReadonlyArray<[FaultKind, number]> = [
  ['sigkill', 3],
  ['sigterm', 2],
  ['drop-walsender', 3],
  ['drop-connections', 3],
  ['pg-crash', 2],
  ['pg-restart', 1],
  ['errors', 3],
  ['throttle', 2],
  ['slow', 2],
  ['lost-answers', 3],
  ['timeouts', 1],
];

/** Mean seconds between two faults. */
const MEAN_GAP_SECONDS = 12;
/** No fault in the first seconds (the first start's snapshot) nor in the last ones. */
const QUIET_START = 10;
const QUIET_END = 10;

/** The schedule of a run of `seconds` for `seed`. */
export function planFaults(seed: number, seconds: number): Plan {
  const next = rng(seed);
  const between = (lo: number, hi: number): number => lo + next() * (hi - lo);
  const int = (lo: number, hi: number): number => Math.floor(between(lo, hi + 1));
  // Long runs keep at most 5 minutes of process kills, so the last bridge lives long enough for its
  // memory to be judged; short ones a third of the run.
  const processPhaseSeconds = Math.min(seconds / 3, 300);
  const events: Planned[] = [];
  let at = QUIET_START;
  for (;;) {
    at += -Math.log(1 - next()) * MEAN_GAP_SECONDS;
    if (at >= seconds - QUIET_END) break;
    const allowed = WEIGHTS.filter(([k]) => at < processPhaseSeconds || !PROCESS_FAULTS.includes(k));
    const total = allowed.reduce((s, [, w]) => s + w, 0);
    let pick = next() * total;
    let kind = (allowed[0] as [FaultKind, number])[0];
    for (const [k, w] of allowed) {
      if ((pick -= w) < 0) {
        kind = k;
        break;
      }
    }
    // Platform faults end before the quiet end; a fault never outlasts the run.
    const span = (lo: number, hi: number): number =>
      Math.max(1, Math.min(Math.round(between(lo, hi)), Math.floor(seconds - QUIET_END - at)));
    const fault: Fault =
      kind === 'drop-connections'
        ? { kind, lock: next() < 0.5 }
        : kind === 'errors'
          ? { kind, rate: round2(between(0.3, 1)), seconds: span(3, 15) }
          : kind === 'throttle'
            ? { kind, count: int(2, 8), retryAfterSeconds: int(1, 2) }
            : kind === 'slow'
              ? { kind, ms: int(300, 3000), seconds: span(5, 20) }
              : kind === 'lost-answers'
                ? { kind, rate: round2(between(0.2, 0.6)), seconds: span(5, 15) }
                : kind === 'timeouts'
                  ? { kind, rate: round2(between(0.1, 0.4)), seconds: span(5, 15) }
                  : ({ kind } as Fault);
    events.push({ at: Math.round(at * 10) / 10, fault });
  }
  return { seed, seconds, processPhaseSeconds, events };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** One line per fault, for the log and for a failing seed's report. */
export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'drop-connections':
      return `drop-connections${f.lock ? ' (with the leader lock)' : ''}`;
    case 'errors':
      return `errors ${Math.round(f.rate * 100)}% for ${f.seconds}s`;
    case 'throttle':
      return `throttle: ${f.count} × 429 (Retry-After ${f.retryAfterSeconds}s)`;
    case 'slow':
      return `slow: +${f.ms} ms for ${f.seconds}s`;
    case 'lost-answers':
      return `lost answers (applied, then 503) ${Math.round(f.rate * 100)}% for ${f.seconds}s`;
    case 'timeouts':
      return `timeouts (applied, never answered) ${Math.round(f.rate * 100)}% for ${f.seconds}s`;
    default:
      return f.kind;
  }
}
