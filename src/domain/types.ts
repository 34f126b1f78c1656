/**
 * Words every stage shares: what the platform is asked to do, what became of a source row, and what
 * waits for an outcome. Types only, no behaviour.
 */

/** The platform's operations (publicParams.optType). */
export type OptType = 'add' | 'update' | 'delete';

/** A source row's latest outcome, as sync_status records it. */
export type RowStatus = 'synced' | 'failed' | 'retrying' | 'accepted' | 'skipped' | 'held';

/** Something that waits for an outcome to be stored: a transaction of the position tracker. */
export interface Holder {
  hold(n: number): void;
  release(n: number): void;
  /**
   * False while the transaction's COMMIT has not been read, so more of its changes may follow
   * (the removal guard judges a transaction whole). Absent: complete (a snapshot, a backfill chunk).
   */
  readonly committed?: boolean;
}
