/**
 * Helpers for tests that name a moment ("a request in flight", "before the commit was confirmed")
 * and must show they hit it: WAL positions taken inside transactions, the slot's confirmed
 * position, and requests the simulator received but has not answered.
 */
import pg from 'pg';
import type { SimulatorStats } from '../../src/simulator/server.js';
import type { TestDatabase } from './database.js';

/**
 * Runs statements in one transaction on a fresh connection; resolves with the WAL insert position
 * taken just before COMMIT. The commit record ends after it, so a slot confirmed past this position
 * has confirmed the transaction, and one at or before it has not.
 */
export async function commitReturningLsn(db: TestDatabase, statements: readonly string[]): Promise<string> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query('BEGIN');
    for (const s of statements) await c.query(s);
    const { rows } = await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await c.query('COMMIT');
    return (rows[0] as { lsn: string }).lsn;
  } finally {
    await c.end();
  }
}

/** The current WAL insert position (everything committed so far ends at or before it). */
export async function currentLsn(db: TestDatabase): Promise<string> {
  const { rows } = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  return (rows[0] as { lsn: string }).lsn;
}

/** Whether the slot's confirmed_flush_lsn is past `lsn` (false also when the slot is gone). */
export async function confirmedPast(db: TestDatabase, slot: string, lsn: string): Promise<boolean> {
  const { rows } = await db.query<{ past: boolean }>(
    `SELECT confirmed_flush_lsn > $2::pg_lsn AS past FROM pg_replication_slots WHERE slot_name = $1`,
    [slot, lsn],
  );
  return rows[0]?.past === true;
}

/**
 * batchAdd requests the simulator has received (body read or not) and not answered yet, for a
 * simulator with only `latencyMs` set: every other request has been answered, applied or not.
 * Read right after the bridge process died, a positive value proves a request was in flight at
 * its death (answers only grow, and nobody sends any more).
 */
export function unanswered(s: SimulatorStats): number {
  const answered =
    s.byOptType.add.requests +
    s.byOptType.update.requests +
    s.byOptType.delete.requests +
    s.rejected +
    s.authFailures +
    s.served429 +
    s.served500 +
    s.timeouts;
  return s.requests - answered;
}

/**
 * Waits out the bridge's acknowledgement timer (20 ms after its tracker moves) many times over, so
 * that a "the slot is not confirmed past it" read afterwards would see a position released too
 * early: read at once, the slot cannot show it yet. Not a synchronisation: nothing is awaited that
 * should happen, only a window in which something must not.
 */
export async function pastAckInterval(): Promise<void> {
  await new Promise((r) => setTimeout(r, 250));
}

/**
 * The position a spawned bridge would confirm next, from its /metrics (`confirmed_lsn_bytes`, set
 * when its position tracker moves): what its acknowledgement timer sends to the server a few
 * milliseconds later. Reading it instead of the slot needs no waiting for that timer: a position
 * released too early shows here at once. 0 before the tracker first moved.
 */
export async function trackedPosition(opsUrl: string): Promise<bigint> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const m = /^tuzhan_cdc_confirmed_lsn_bytes (\d+)$/m.exec(text);
  return m ? BigInt(m[1] as string) : 0n;
}
