/**
 * How far each source's changes may have been sent to the platform (`<statusSchema>.sent_position`).
 * Raised, durably, before a flush's requests leave; so after a crash or a dropped connection a
 * replayed change at or before the mark may already have reached the platform, and one after it
 * provably has not. Coalescing needs that distinction (src/batching/coalesce.ts): only a key whose
 * changes never left may be coalesced as if the platform were where its buffer starts.
 *
 * A change's position is its transaction's commit LSN and its index among that transaction's row
 * changes: both are the same on every replay, and the index keeps a large transaction that is
 * flushed in parts from counting as sent as a whole.
 */
import type pg from 'pg';
import { formatLsn, parseLsn } from '../util/lsn.js';
import { statusSql, type StatusSql } from './sql.js';

/** How a query is run with the status store's retries. */
export type RetryingQuery = <T>(what: string, fn: () => Promise<T>) => Promise<T>;

interface Position {
  lsn: bigint;
  seq: number;
}

const NOTHING: Position = { lsn: 0n, seq: -1 };
/** The largest `seq` PostgreSQL's bigint column and a JS number both hold exactly. */
const LAST_SEQ = Number.MAX_SAFE_INTEGER;

export class SentMark {
  private readonly marks = new Map<string, Position>();
  /** Per source, reads of rows to send outside the stream's order that are not yet covered. */
  private readonly reading = new Map<string, number>();
  private readonly sql: StatusSql;

  constructor(
    private readonly pool: Pick<pg.Pool, 'query'>,
    statusSchema: string,
    private readonly slot: string,
    private readonly withRetry: RetryingQuery,
  ) {
    this.sql = statusSql(statusSchema);
  }

  /** Whether a change of `source` at this position can never have reached the platform. */
  isFresh(source: string, lsn: bigint, seq: number): boolean {
    // While rows are read to be sent outside the stream's order, any change may be among them.
    return !this.reading.get(source) && this.pastMark(source, lsn, seq);
  }

  private pastMark(source: string, lsn: bigint, seq: number): boolean {
    const m = this.marks.get(source) ?? NOTHING;
    return lsn > m.lsn || (lsn === m.lsn && seq > m.seq);
  }

  /**
   * Reads the stored marks. A source of a slot that streamed before marks existed (an upgrade) has
   * none: then anything up to the server's current position may have been sent.
   */
  async load(sources: readonly string[], resuming: boolean): Promise<void> {
    const res = await this.pool.query<{ source: string; lsn: string; seq: string }>(this.sql.sentPositions, [
      this.slot,
    ]);
    this.marks.clear();
    for (const r of res.rows) this.marks.set(r.source, { lsn: parseLsn(r.lsn), seq: Number(r.seq) });
    const unknown = sources.filter((s) => !this.marks.has(s));
    if (resuming && unknown.length > 0) await this.coverServerPosition(unknown);
  }

  /** Records that changes of `source` up to this position may be sent from now on; durable on return. */
  async cover(source: string, lsn: bigint, seq: number): Promise<void> {
    if (!this.pastMark(source, lsn, seq)) return;
    await this.withRetry('recording the sent position', () =>
      this.pool.query(this.sql.coverSent, [this.slot, source, formatLsn(lsn), seq]),
    );
    if (this.pastMark(source, lsn, seq)) this.marks.set(source, { lsn, seq });
  }

  /**
   * Marks every change of these sources up to `lsn` (whole transactions) as maybe sent, and none
   * after it: a snapshot's end, at the slot's consistent point, also for sources whose tables were
   * empty (with no mark, the next start would count everything up to the server position as sent).
   */
  async coverThrough(sources: readonly string[], lsn: bigint): Promise<void> {
    for (const source of sources) await this.cover(source, lsn, LAST_SEQ);
  }

  /**
   * Runs `read`, which reads current rows of these sources to send them outside the stream's order
   * (`retry-failed`, an approval), then covers everything committed so far: past every change the
   * read could see, even one committed while it ran (a cover before the read leaves those fresh,
   * and a flush would drop a state the read sent as never sent: the platform keeps it). Until the
   * cover is durable, no change of these sources counts as fresh, for a flush planned meanwhile.
   * The caller sends what it read only after this returns.
   */
  async coverRead<T>(sources: readonly string[], read: () => Promise<T>): Promise<T> {
    for (const s of sources) this.reading.set(s, (this.reading.get(s) ?? 0) + 1);
    try {
      const result = await read();
      await this.coverServerPosition(sources);
      return result;
    } finally {
      for (const s of sources) {
        const n = (this.reading.get(s) ?? 1) - 1;
        if (n === 0) this.reading.delete(s);
        else this.reading.set(s, n);
      }
    }
  }

  /**
   * Covers everything committed so far: an upgrade from a version without marks, a slot found
   * behind what the bridge confirmed.
   */
  async coverServerPosition(sources: readonly string[]): Promise<void> {
    const res = await this.pool.query<{ now: string }>(`SELECT pg_current_wal_insert_lsn()::text AS now`);
    const now = parseLsn((res.rows[0] as { now: string }).now);
    await this.coverThrough(sources, now);
  }
}
