/**
 * Backfills while streaming goes on (docs/design.md, "Jobs"). The daemon watches
 * `<statusSchema>.backfill` for its slot and runs one backfill at a time: the source's rows in
 * key-ordered chunks, each read between two watermarks in the change stream (src/pipeline/
 * watermarks.ts) so a chunk never overwrites a newer streamed change, and each chunk's state set
 * like a re-sync's (src/pipeline/snapshot-sync.ts: sync_status's record is `before`, restated). A
 * full backfill then removes, between watermarks too, the keys sync_status shows on the platform
 * that the table no longer holds. The last key done and the rows done are stored once the chunk's
 * outcomes are (the slot is confirmed past its high watermark), so a restart resumes after it.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { FilterValue } from '../config/types.js';
import type { BridgeEvents } from '../domain/events.js';
import type { SourceChange } from '../mapping/changes.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { countMatching, estimateRows, readChunk } from '../source/snapshot.js';
import type { StatusStore } from '../status/status-store.js';
import { sleep } from '../util/backoff.js';
import { JobStopped, type JobHandler } from './jobs.js';
import { restate } from './snapshot-sync.js';
import { staleChanges } from './stale-pass.js';
import { emitWatermark, type Watermarks } from '../router/watermarks.js';

type Filter = Record<string, FilterValue | FilterValue[]>;

export interface BackfillOptions {
  pool: pg.Pool;
  store: StatusStore;
  statusSchema: string;
  slot: string;
  runtimes: ReadonlyMap<string, SourceRuntime>;
  watermarks: Watermarks;
  /** The slot position the bridge has confirmed (every outcome before it is stored). */
  confirmed(): bigint;
  events: BridgeEvents;
  logger: Logger;
  signal: AbortSignal;
  chunkSize?: number;
}

interface Progress {
  id: string;
  source: string;
  filter: Filter | null;
  lastKey: unknown[] | undefined;
  done: number;
}

/**
 * The backfill jobs' handler (src/pipeline/jobs.ts runs it): resolves once every row has its outcome
 * stored; rejects with JobStopped when the bridge stops first (the job resumes at the next start).
 */
export function backfillHandler(o: BackfillOptions): JobHandler {
  return async (job) => {
    const rt = job.source === null ? undefined : o.runtimes.get(job.source);
    if (!rt) throw new Error(`source ${job.source ?? '(none)'} is not in the config`);
    const lastKey = job.lastKey
      ? rt.mapper.keyColumns.map((c) => (JSON.parse(job.lastKey as string) as Record<string, unknown>)[c])
      : undefined;
    const progress: Progress = {
      id: job.id,
      source: rt.config.name,
      filter: job.filter as Filter | null,
      lastKey,
      done: job.done,
    };
    await run(o, progress);
    if (o.signal.aborted) throw new JobStopped();
    return { rows: progress.done };
  };
}

async function run(o: BackfillOptions, job: Progress): Promise<void> {
  const sql = o.store.sql;
  const rt = o.runtimes.get(job.source);
  if (!rt) throw new Error(`source ${job.source} is not in the config`);
  const table = { schema: rt.config.schema, name: rt.config.tableName };
  const total = job.filter
    ? await countMatching(o.pool, table, job.filter)
    : await estimateRows(o.pool, table);
  await o.pool.query(sql.startBackfill, [job.id, total]);
  o.logger.info(
    { backfill: job.id, source: job.source, from: job.lastKey ?? null, total },
    'backfill running',
  );
  const token = randomBytes(4).toString('hex');
  const chunkSize = o.chunkSize ?? 1000;
  for (let n = 0; ; n++) {
    if (o.signal.aborted) return;
    let rows = 0;
    let last: Record<string, unknown> | undefined;
    await between(o, `${job.id}:${token}:${n}`, job.source, async () => {
      const read = await readChunk(
        o.pool,
        table,
        rt.mapper.columns,
        rt.mapper.keyColumns,
        job.lastKey,
        job.filter ?? undefined,
        chunkSize,
      );
      rows = read.length;
      const tail = read[read.length - 1];
      if (tail) last = Object.fromEntries(rt.mapper.keyColumns.map((c) => [c, tail[c]]));
      return restate(rt, read, o.store);
    });
    if (o.signal.aborted) return;
    if (last) {
      job.lastKey = rt.mapper.keyColumns.map((c) => (last as Record<string, unknown>)[c]);
      job.done += rows;
      await o.pool.query(sql.backfillProgress, [job.id, JSON.stringify(last), job.done]);
      o.events.emit('progress', { source: job.source, kind: 'backfill', done: job.done, total });
    }
    if (rows < chunkSize) break;
  }
  // A full backfill also removes what the table no longer holds (a filtered one cannot tell),
  // judged whole by the guard first (./stale-pass.ts).
  if (!job.filter) {
    const what = `backfill ${job.id}`;
    const pages = staleChanges({ db: o.pool, statusSchema: o.statusSchema, rt, what, page: chunkSize });
    for (let n = 0; ; n++) {
      let more = false;
      await between(o, `${job.id}:${token}:stale${n}`, job.source, async () => {
        const page = await pages.next();
        more = page.done !== true;
        return page.done ? [] : page.value;
      });
      if (!more || o.signal.aborted) break;
    }
  }
  if (o.signal.aborted) return;
  o.logger.info({ backfill: job.id, source: job.source, rows: job.done }, 'backfill done');
}

/**
 * Reads between a low and a high watermark, hands the changes to the stream's router (which drops
 * the keys the stream changed in between and buffers the rest at the high watermark), and resolves
 * once their outcomes are stored (the slot is confirmed past the high watermark).
 */
async function between(
  o: BackfillOptions,
  id: string,
  source: string,
  read: () => Promise<SourceChange[]>,
): Promise<void> {
  const window = o.watermarks.open(id, source);
  try {
    await emitWatermark(o.pool, id, 'low');
    window.rows = await read();
    await emitWatermark(o.pool, id, 'high');
    const at = await Promise.race([window.buffered, aborted(o.signal)]);
    if (at === undefined) return;
    while (o.confirmed() <= at && !o.signal.aborted) await sleep(50, o.signal);
  } finally {
    o.watermarks.close(id);
  }
}

function aborted(signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(undefined);
    signal.addEventListener('abort', () => resolve(undefined), { once: true });
  });
}
