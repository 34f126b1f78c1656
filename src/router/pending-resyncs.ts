/**
 * Sources truncated with `onTruncate: resync` whose re-sync has not finished (docs/design.md,
 * "TRUNCATE"). Until it has, the platform still holds what the truncated rows had: a reload in
 * transactions of its own (TRUNCATE, then COPY, in autocommit) streams before the re-sync runs, and
 * a reloaded row planned as new would only add, leaving the groups the reload left out of it while
 * its outcome says `synced`, and the re-sync, which starts from that outcome, would leave them too.
 * So while a source is marked, a row inserted into it takes as its `before` what sync_status says
 * was sent for its key (a read per flush, as row mode pays for updates without REPLICA IDENTITY FULL).
 *
 * A TRUNCATE that asks for its re-sync marks its source. The job table says which re-syncs are still
 * to run: it is read at the first transaction of a session (a restart finds the marks again) and, while
 * any source is marked, at most once a second, so a mark goes once its re-sync is done.
 */
import { jobSql } from '../status/jobs.js';
import type { StatusStore } from '../status/status-store.js';

export class PendingResyncs {
  private readonly sources = new Set<string>();
  /** When the job table was last read; undefined: at the next transaction. */
  private readAt: number | undefined;

  constructor(
    private readonly o: {
      store: Pick<StatusStore, 'run'>;
      /** Where re-syncs are asked for; without it, none is (onTruncate: resync falls back to ignore). */
      jobs?: { slot: string; statusSchema: string };
      everyMs?: number;
    },
  ) {}

  /** Whether a re-sync of the source, asked for by a TRUNCATE, is still to finish. */
  has(source: string): boolean {
    return this.sources.has(source);
  }

  /** A TRUNCATE asked for a re-sync of the source. */
  mark(source: string): void {
    this.sources.add(source);
  }

  /** A new session: the job table is read again at its first transaction. */
  reset(): void {
    this.readAt = undefined;
  }

  /** At a transaction's BEGIN: a promise when the job table is read now (the stream waits for it). */
  refresh(): Promise<void> | undefined {
    const jobs = this.o.jobs;
    if (!jobs) return undefined;
    const now = Date.now();
    if (
      this.readAt !== undefined &&
      (this.sources.size === 0 || now - this.readAt < (this.o.everyMs ?? 1000))
    )
      return undefined;
    this.readAt = now;
    return this.o.store
      .run('reading the re-syncs TRUNCATEs asked for', (db) =>
        db.query<{ source: string }>(jobSql(jobs.statusSchema).openTruncateResyncs, [jobs.slot]),
      )
      .then((res) => {
        this.sources.clear();
        for (const r of res.rows) this.sources.add(r.source);
      });
  }
}
