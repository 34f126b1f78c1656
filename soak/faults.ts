/**
 * Applies the soak's faults (soak/schedule.ts) to the running parts: the bridge process (through
 * Compose), the database (its backends, its server) and the platform (the simulator's faults).
 */
import pg from 'pg';
import { DEFAULT_FAULTS, type Faults } from '../src/simulator/faults.js';
import type { Simulator } from '../src/simulator/server.js';
import type { RunningPostgres } from '../src/throwaway/postgres.js';
import type { Compose } from './compose.js';
import type { Fault } from './schedule.js';

export interface Targets {
  compose: Compose;
  server: RunningPostgres;
  /** The soak database, as superuser. */
  url: string;
  slot: string;
  sim: Simulator;
}

/** Runs one query on a fresh connection, trying again while the server is away (a restart). */
export async function adminQuery<R extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
  timeoutMs = 120_000,
): Promise<pg.QueryResult<R>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new pg.Client({ connectionString: url, application_name: 'soak' });
    c.on('error', () => {});
    try {
      await c.connect();
      return await c.query<R>(sql, params);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await c.end().catch(() => {});
    }
  }
}

/** Platform faults under way, each undone at its end. */
const undo = new Set<NodeJS.Timeout>();

/** Sets a platform fault for `seconds`, then puts the field back. */
function forAWhile(sim: Simulator, f: Partial<Faults>, seconds: number): void {
  sim.setFaults(f);
  const reset = Object.fromEntries(Object.keys(f).map((k) => [k, DEFAULT_FAULTS[k as keyof Faults]]));
  const t = setTimeout(() => {
    undo.delete(t);
    sim.setFaults(reset as Partial<Faults>);
  }, seconds * 1000);
  undo.add(t);
}

/** Ends every platform fault now. */
export function clearPlatformFaults(sim: Simulator): void {
  for (const t of undo) clearTimeout(t);
  undo.clear();
  sim.setFaults({ ...DEFAULT_FAULTS });
}

/** Applies a fault; resolves once its action is done (a restart finished, a stop drained); says what it did. */
export async function apply(fault: Fault, t: Targets): Promise<string> {
  switch (fault.kind) {
    // A bridge between two lives (compose's restart delay) is killed once it is up again; a SIGTERM
    // drains for as long as it takes (the schedule goes on meanwhile: a SIGKILL may cut the drain).
    case 'sigkill':
      await t.compose.whenRunning();
      await t.compose.kill();
      return 'killed; compose restarts it';
    case 'sigterm':
      await t.compose.whenRunning();
      void t.compose.term();
      return 'SIGTERM sent; compose restarts it once it exits';
    case 'drop-walsender': {
      const r = await adminQuery<{ ok: boolean }>(
        t.url,
        `SELECT pg_terminate_backend(active_pid) AS ok FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
        [t.slot],
      );
      return r.rowCount ? 'walsender terminated' : 'no walsender: skipped';
    }
    case 'drop-connections': {
      const names = fault.lock ? ['tuzhan-cdc', 'tuzhan-cdc leader'] : ['tuzhan-cdc'];
      const r = await adminQuery(
        t.url,
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND application_name = ANY($1)`,
        [names],
      );
      return `${r.rowCount} connections terminated`;
    }
    case 'pg-crash':
    case 'pg-restart': {
      if (!t.server.restart) return 'this server cannot be restarted: skipped';
      const started = Date.now();
      await t.server.restart(fault.kind === 'pg-crash' ? 'immediate' : 'fast', 60);
      return `back after ${((Date.now() - started) / 1000).toFixed(1)}s`;
    }
    case 'errors':
      forAWhile(t.sim, { errorRate: fault.rate }, fault.seconds);
      return 'set';
    case 'throttle':
      t.sim.setFaults({ status429: fault.count, retryAfterSeconds: fault.retryAfterSeconds });
      return 'set';
    case 'slow':
      forAWhile(t.sim, { latencyMs: fault.ms }, fault.seconds);
      return 'set';
    case 'lost-answers':
      forAWhile(t.sim, { applyThenFailRate: fault.rate }, fault.seconds);
      return 'set';
    case 'timeouts':
      forAWhile(t.sim, { timeoutRate: fault.rate, timeoutApplies: true }, fault.seconds);
      return 'set';
  }
}
