/**
 * Which shape of the status write (src/status/status-write.ts) a source's next request gets, from
 * what its recent writes found in sync_row:
 *
 * - `new`, a plain INSERT, after a run of writes that found none of their keys in the table (a
 *   first start, a backlog of new customers): the cheapest for new keys, and it fails as a whole on
 *   a key the table holds (a unique violation, nothing written), when the request is written again
 *   as an upsert;
 * - `insert`, the upsert, while most keys written are new;
 * - `update`, once fewer than half are (a CRM's steady state).
 *
 * After a failed `new`, STREAK writes must find only new keys before the next one is tried, so a
 * source that mixes new and known keys pays for a failed statement at most once per STREAK + 1
 * writes, and one that writes only known keys never again. Each failure leaves one error line in
 * PostgreSQL's log (`duplicate key value violates unique constraint "sync_row_pkey"`).
 */
import type { WriteShape } from './status-write.js';

/** Writes of new keys only, in a row, before the plain INSERT is used (or tried again). */
export const STREAK = 4;

interface SourceState {
  /** The share of recently written rows that were new keys (starts at 1: a first start). */
  share: number;
  /** Writes in a row that found none of their keys in the table. */
  streak: number;
}

export class WriteShapes {
  private readonly state = new Map<string, SourceState>();

  private of(source: string): SourceState {
    let s = this.state.get(source);
    if (!s) this.state.set(source, (s = { share: 1, streak: 0 }));
    return s;
  }

  choose(source: string): WriteShape {
    const s = this.of(source);
    if (s.streak >= STREAK) return 'new';
    return s.share < 0.5 ? 'update' : 'insert';
  }

  /** A write stored `written` rows, `inserted` of them new keys. */
  wrote(source: string, written: number, inserted: number): void {
    if (written <= 0) return;
    const s = this.of(source);
    s.share = s.share * 0.5 + (inserted / written) * 0.5;
    s.streak = inserted === written ? s.streak + 1 : 0;
  }

  /** A `new` write met a key the table holds: it wrote nothing, and the upsert writes it instead. */
  collided(source: string): void {
    this.of(source).streak = 0;
  }
}

/** The unique violation of sync_row's primary key: a plain INSERT met a key the table holds. */
export function isKeyTaken(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return e?.code === '23505' && e.constraint === 'sync_row_pkey';
}
