/**
 * `run --resync --dry-run` and `backfill --dry-run`: what a re-sync (every source) or a backfill (one
 * source, maybe filtered) would add to the platform and remove from it, per source, without sending
 * or writing anything. It reads the tables as they are now and plans each row as a re-sync does
 * (./snapshot-sync.ts's `restate`: what sync_status records as sent is the row's `before`), and, for
 * a whole source, the keys the table no longer holds (./stale-pass.ts). A real re-sync reads a new
 * slot's snapshot instead, so it sees the tables as they are when it runs.
 */
import pg from 'pg';
import { describeLimit, removalLimit } from '../config/guard.js';
import type { Config, FilterValue } from '../config/types.js';
import type { Image, SourceChange } from '../domain/change.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { readChunk } from '../source/snapshot.js';
import { HeldStore } from '../status/held.js';
import { silentLogger } from '../ops/logger.js';
import { StatusStore } from '../status/status-store.js';
import { formatCount } from '../util/format.js';
import { pgClientConfig } from '../util/pg-connection.js';
import { restate } from './snapshot-sync.js';
import { loadSources } from './sources.js';
import { staleChanges } from './stale-pass.js';

/** What a re-sync or backfill of one source would do. */
export interface DryRunResult {
  source: string;
  /** Rows of the table read (matching the filter). */
  rows: number;
  /** Rows that would get groups they do not have on the platform, and how many (customer, group) pairs. */
  add: { rows: number; groups: number };
  /** Rows whose groups would be removed (lost groups, or gone from the table), and how many pairs. */
  remove: { rows: number; groups: number };
  /** Keys sync_status shows on the platform that the table no longer holds (whole backfills only). */
  gone: number;
  /** Why its removals of gone keys would be held for a person, if they would. */
  held?: string;
}

export interface DryRunOptions {
  pool: pg.Pool;
  /** What was sent before; undefined before the status schema exists (nothing was). */
  store: StatusStore | undefined;
  statusSchema: string;
  filter?: Readonly<Record<string, FilterValue | readonly FilterValue[]>>;
  chunkSize?: number;
}

/** Plans a re-sync (or backfill) of one source without sending anything. */
export async function dryRun(o: DryRunOptions, rt: SourceRuntime): Promise<DryRunResult> {
  const out: DryRunResult = {
    source: rt.config.name,
    rows: 0,
    add: { rows: 0, groups: 0 },
    remove: { rows: 0, groups: 0 },
    gone: 0,
  };
  const table = { schema: rt.config.schema, name: rt.config.tableName };
  const chunk = o.chunkSize ?? 1000;
  let after: unknown[] | undefined;
  for (;;) {
    const read = await readChunk(
      o.pool,
      table,
      rt.mapper.columns,
      rt.mapper.keyColumns,
      after,
      o.filter,
      chunk,
    );
    out.rows += read.length;
    for (const c of await restate(rt, read, o.store)) count(out, c);
    const tail = read[read.length - 1];
    if (!tail || read.length < chunk) break;
    after = rt.mapper.keyColumns.map((k) => tail[k]);
  }
  if (!o.filter && o.store) {
    for await (const page of staleChanges({
      db: o.pool,
      statusSchema: o.statusSchema,
      rt,
      what: 'a re-sync',
    })) {
      for (const c of page) {
        out.gone += 1;
        count(out, c);
        if (c.hold !== undefined) out.held ??= c.hold;
      }
    }
  }
  return out;
}

/** Counts a change's pairs gained and lost between what was sent (`before`) and the row now. */
function count(out: DryRunResult, c: SourceChange): void {
  const before = typeof c.before === 'object' && c.before !== null ? c.before : null;
  const had = pairs(before);
  const has = pairs(c.after);
  const added = [...has].filter((p) => !had.has(p)).length;
  const removed = [...had].filter((p) => !has.has(p)).length;
  if (added) {
    out.add.rows += 1;
    out.add.groups += added;
  }
  if (removed) {
    out.remove.rows += 1;
    out.remove.groups += removed;
  }
}

function pairs(image: Image | null): Set<string> {
  if (!image || (image.error && !image.groupsError) || image.groupsError) return new Set();
  return new Set((image.groups ?? []).map((g) => `${JSON.stringify(image.identity)}\u0000${g}`));
}

/** One line per source: what it would add and remove, and whether the guard would hold it. */
export function describeDryRun(r: DryRunResult, limitWords?: string): string {
  const add = r.add.groups
    ? `add ${formatCount(r.add.groups)} group${r.add.groups === 1 ? '' : 's'} to ${formatCount(r.add.rows)} row${r.add.rows === 1 ? '' : 's'}`
    : 'add nothing';
  const remove = r.remove.groups
    ? `remove ${formatCount(r.remove.groups)} group${r.remove.groups === 1 ? '' : 's'} from ${formatCount(r.remove.rows)} row${r.remove.rows === 1 ? '' : 's'}`
    : 'remove nothing';
  const gone = r.gone ? `; ${formatCount(r.gone)} key${r.gone === 1 ? '' : 's'} gone from the table` : '';
  const held = r.held
    ? `; removing the gone keys would be held for a person: more than guard.maxRemovals${limitWords ? ` (${limitWords})` : ''}`
    : '';
  return `${r.source}: ${formatCount(r.rows)} row${r.rows === 1 ? '' : 's'} read; would ${add} and ${remove}${gone}${held}`;
}

/** The source's limit in words, as the guard would take it now. */
export async function limitWords(o: DryRunOptions, rt: SourceRuntime): Promise<string> {
  const rows = await new HeldStore(o.pool, o.statusSchema).sourceRows(rt.config.name);
  const limit = rt.config.guard.maxRemovals;
  return removalLimit(limit, rows) === null ? 'off' : describeLimit(limit, rows);
}

/**
 * The dry run of a command: every source's (or one's) plan, on connections of its own. The sources
 * are checked as a start checks them; a status schema not created yet means nothing was sent before.
 */
export async function dryRunCommand(
  config: Config,
  options: { source?: string; filter?: DryRunOptions['filter'] },
): Promise<string[]> {
  const pool = new pg.Pool({ ...pgClientConfig(config.postgres, 'tuzhan-cdc dry run'), max: 2 });
  pool.on('error', () => {});
  const { statusSchema } = config.postgres;
  const store = new StatusStore(pool, statusSchema, silentLogger());
  try {
    const runtimes = (await loadSources(pool, config, store)).filter(
      (rt) => options.source === undefined || rt.config.name === options.source,
    );
    const exists = await pool.query<{ ok: boolean }>(store.sql.exists, [statusSchema]);
    const o: DryRunOptions = { pool, store, statusSchema, filter: options.filter };
    const lines: string[] = [];
    for (const rt of runtimes) {
      if (!exists.rows[0]?.ok) {
        const r = await dryRun({ ...o, store: undefined }, rt);
        lines.push(describeDryRun(r));
        continue;
      }
      const r = await dryRun(o, rt);
      lines.push(describeDryRun(r, r.held ? await limitWords(o, rt) : undefined));
    }
    return lines;
  } finally {
    store.close();
    await pool.end().catch(() => {});
  }
}
