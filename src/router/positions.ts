/**
 * Which position may be confirmed to the slot (docs/design.md, "Positions"; powersync's WalStream discipline).
 * Every transaction is tracked from its BEGIN; each of its source-row changes is held until the
 * change's outcome is stored. The confirmable position is the end LSN of the latest transaction
 * such that it and every transaction before it are committed (COMMIT received) and hold nothing.
 */
import type { Holder } from '../domain/types.js';

export class Tx implements Holder {
  pending = 0;
  endLsn: bigint | null = null;
  constructor(
    readonly tracker: PositionTracker,
    readonly commitLsn: bigint,
    readonly commitTime: Date,
  ) {}

  hold(n: number): void {
    this.pending += n;
  }

  get committed(): boolean {
    return this.endLsn !== null;
  }

  release(n: number): void {
    this.pending -= n;
    if (this.pending < 0) throw new Error('released more changes than were held');
    if (this.pending === 0 && this.endLsn !== null) this.tracker.advance();
  }
}

export class PositionTracker {
  private queue: Tx[] = [];
  private head = 0;
  private confirmedLsn: bigint;
  private readonly listeners = new Set<(lsn: bigint) => void>();

  constructor(startLsn: bigint) {
    this.confirmedLsn = startLsn;
  }

  /** The highest position whose transactions all have stored outcomes. */
  get confirmed(): bigint {
    return this.confirmedLsn;
  }

  /** Transactions begun and not yet confirmable. */
  get open(): number {
    return this.queue.length - this.head;
  }

  /** Commit time of the oldest transaction not yet confirmable (for the lag in seconds). */
  oldestOpenCommitTime(): Date | null {
    return this.queue[this.head]?.commitTime ?? null;
  }

  onAdvance(listener: (lsn: bigint) => void): void {
    this.listeners.add(listener);
  }

  begin(commitLsn: bigint, commitTime: Date): Tx {
    const tx = new Tx(this, commitLsn, commitTime);
    this.queue.push(tx);
    return tx;
  }

  commit(tx: Tx, endLsn: bigint): void {
    tx.endLsn = endLsn;
    if (tx.pending === 0) this.advance();
  }

  /**
   * Positions where nothing is open (a keepalive's position while idle) may be confirmed directly.
   * Never moves backwards.
   */
  confirmIdle(lsn: bigint): boolean {
    if (this.open > 0 || lsn <= this.confirmedLsn) return false;
    this.set(lsn);
    return true;
  }

  /** Forgets open transactions (after a lost connection the server sends them again). */
  reset(): void {
    this.queue = [];
    this.head = 0;
  }

  /** Pops finished transactions from the front and moves the confirmed position. */
  advance(): void {
    let moved: bigint | null = null;
    while (this.head < this.queue.length) {
      const tx = this.queue[this.head] as Tx;
      if (tx.endLsn === null || tx.pending > 0) break;
      this.head += 1;
      if (tx.endLsn > this.confirmedLsn) moved = tx.endLsn;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (moved !== null) this.set(moved);
  }

  private set(lsn: bigint): void {
    this.confirmedLsn = lsn;
    for (const l of this.listeners) l(lsn);
  }
}
