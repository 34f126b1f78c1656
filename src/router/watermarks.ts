/**
 * Watermarks in the change stream (DBLog; Debezium's incremental snapshot): a backfill chunk is read
 * between a low and a high watermark, both logical decoding messages (`pg_logical_emit_message`)
 * that reach the bridge in the stream, in commit order with every other change. Every key the
 * stream changed between the two is dropped from the chunk: the stream carries a newer state of it,
 * and the chunk must never overwrite that. The rest is buffered at the high watermark, as if it
 * were a change committed there, so the slot is not confirmed past it before the chunk's outcomes
 * are stored.
 */
import type pg from 'pg';
import type { SourceChange } from '../mapping/changes.js';

/** The prefix of the bridge's own logical decoding messages. */
export const WATERMARK_PREFIX = 'tuzhan-cdc';

/** One chunk between its watermarks. */
export interface Window {
  id: string;
  source: string;
  /** The chunk, as changes; set before the high watermark is written. */
  rows: SourceChange[] | undefined;
  /** Keys of the source the stream changed since the low watermark. */
  readonly changed: Set<string>;
  collecting: boolean;
  /** Resolves with the high watermark's commit position once the chunk is buffered. */
  readonly buffered: Promise<bigint>;
  resolve(commitLsn: bigint): void;
}

/** What the router does with a chunk at its high watermark: buffer its changes at that position. */
export type BufferChunk = (source: string, changes: readonly SourceChange[]) => bigint;

export class Watermarks {
  private readonly windows = new Map<string, Window>();
  private collecting = 0;

  /** Registers a chunk's window before its low watermark is written. */
  open(id: string, source: string): Window {
    let resolve: (lsn: bigint) => void = () => {};
    const buffered = new Promise<bigint>((r) => (resolve = r));
    const w: Window = {
      id,
      source,
      rows: undefined,
      changed: new Set(),
      collecting: false,
      buffered,
      resolve,
    };
    this.windows.set(id, w);
    return w;
  }

  /** Forgets a window (its backfill stopped). */
  close(id: string): void {
    const w = this.windows.get(id);
    if (w?.collecting) this.collecting -= 1;
    this.windows.delete(id);
  }

  /** A key of `source` changed in the stream. */
  onChange(source: string, key: string): void {
    if (this.collecting === 0) return;
    for (const w of this.windows.values()) if (w.collecting && w.source === source) w.changed.add(key);
  }

  /**
   * A watermark reached the stream. Watermarks of windows this process did not open (a replay after
   * a restart) are ignored: their backfill redoes the chunk.
   */
  onMessage(content: string, buffer: BufferChunk): void {
    let mark: { w?: unknown; mark?: unknown };
    try {
      mark = JSON.parse(content) as typeof mark;
    } catch {
      return;
    }
    const w = typeof mark.w === 'string' ? this.windows.get(mark.w) : undefined;
    if (!w) return;
    if (mark.mark === 'low') {
      if (!w.collecting) this.collecting += 1;
      w.collecting = true;
      w.changed.clear();
      return;
    }
    if (mark.mark !== 'high' || !w.rows) return;
    // The window stays open until its backfill closes it, once the chunk's outcomes are stored: a
    // lost connection drops what the buffers hold and the replay brings this watermark again, so
    // the chunk is buffered again here (else the slot would be confirmed past it without it).
    if (w.collecting) this.collecting -= 1;
    w.collecting = false;
    const fresh = w.rows.filter((c) => !w.changed.has(c.key.text));
    w.resolve(buffer(w.source, fresh));
  }
}

/** Writes a watermark into the WAL, in a transaction of its own. */
export async function emitWatermark(
  db: Pick<pg.Pool, 'query'>,
  id: string,
  mark: 'low' | 'high',
): Promise<void> {
  await db.query('SELECT pg_logical_emit_message(true, $1, $2)', [
    WATERMARK_PREFIX,
    JSON.stringify({ w: id, mark }),
  ]);
}
