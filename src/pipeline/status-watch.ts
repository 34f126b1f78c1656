/**
 * Counts the failed, retrying and accepted rows of `sync_status` every `intervalMs` (15 s by
 * default) and emits them, so the metrics show what the table holds now. Every configured source
 * gets every status, zeros included: an alert on `> 0` must see the value fall back to 0.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { BridgeEvents } from '../domain/events.js';
import { errorMessage } from '../errors.js';
import { COUNTED_STATUSES, readStatusCounts } from '../status/reads.js';

export interface StatusWatchOptions {
  pool: pg.Pool;
  statusSchema: string;
  sources: readonly string[];
  events: BridgeEvents;
  logger: Logger;
  intervalMs?: number;
}

/** Starts counting (once now, then every `intervalMs`); returns the stop. */
export function watchStatus(o: StatusWatchOptions): () => void {
  let running = false;
  const measure = async (): Promise<void> => {
    if (running) return; // a slow database: never two counts at once
    running = true;
    try {
      const found = await readStatusCounts(o.pool, o.statusSchema);
      const counts = new Map<string, { rows: number; oldest: number }>();
      for (const source of o.sources)
        for (const status of COUNTED_STATUSES) counts.set(`${source}\0${status}`, { rows: 0, oldest: 0 });
      for (const r of found) counts.set(`${r.source}\0${r.status}`, { rows: r.rows, oldest: r.oldest });
      o.events.emit(
        'statusRows',
        [...counts].map(([k, c]) => {
          const [source, status] = k.split('\0') as [string, (typeof COUNTED_STATUSES)[number]];
          return { source, status, ...c };
        }),
      );
    } catch (err) {
      o.logger.debug({ err: errorMessage(err) }, 'counting sync_status rows failed');
    } finally {
      running = false;
    }
  };
  void measure();
  const timer = setInterval(() => void measure(), o.intervalMs ?? 15_000);
  timer.unref();
  return () => clearInterval(timer);
}
