/**
 * A re-sync's removal of the keys sync_status shows on the platform that the table no longer holds
 * (./snapshot-sync.ts at a first start after `teardown` or `run --resync`; ./backfill.ts for a full
 * backfill, and the re-sync after a TRUNCATE). A gone key loses only the groups no live row of the
 * source holds for its customer (./live-groups.ts: a reload under new keys keeps what it put back),
 * and the removals are judged whole, against the source's guard.maxRemovals, before any is sent:
 * counted in a first pass, and when there are too many, every one of them comes out held for a
 * person (`tuzhan-cdc held`) rather than sent.
 */
import type pg from 'pg';
import { describeLimit, removalLimit } from '../config/guard.js';
import type { Image, RowKey, SourceChange } from '../domain/change.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { HeldStore } from '../status/held.js';
import { withoutLiveGroups } from './live-groups.js';
import { statusSql } from '../status/sql.js';
import { imageFromPayload } from '../tuzhan/rows.js';

export interface StalePass {
  /** Where to read: the snapshot's client (in its transaction), or the pool. */
  db: Pick<pg.ClientBase, 'query'>;
  statusSchema: string;
  rt: SourceRuntime;
  /** What removes, for the reason a held row gives: "a re-sync", "backfill 12 (TRUNCATE at 0/…)". */
  what: string;
  page?: number;
}

/** Whether a stale key's change removes anything (it may keep every group: another row holds them). */
function removes(c: SourceChange): boolean {
  return c.before !== null && typeof c.before === 'object' && (c.before.groups?.length ?? 0) > 0;
}

/** The deletes of the gone keys, page by page, held with their reason when they are too many. */
export async function* staleChanges(o: StalePass): AsyncGenerator<SourceChange[]> {
  let removals = 0;
  for await (const page of trimmedPages(o)) removals += page.filter(removes).length;
  if (removals === 0) {
    // Nothing to remove, but the gone keys still get their outcome (nothing of them left).
    for await (const page of trimmedPages(o)) yield page;
    return;
  }
  const { name, guard } = o.rt.config;
  const rows = await new HeldStore(o.db, o.statusSchema).sourceRows(name);
  const limit = removalLimit(guard.maxRemovals, rows);
  const hold =
    limit !== null && removals > limit
      ? `${removals} of the ${rows} rows of source ${name} are gone from the table, and removing their groups in ${o.what} is more than guard.maxRemovals (${describeLimit(guard.maxRemovals, rows)}); approve or reject: tuzhan-cdc held --source ${name}`
      : undefined;
  for await (const page of trimmedPages(o))
    yield hold ? page.map((c) => (removes(c) ? { ...c, hold } : c)) : page;
}

async function* trimmedPages(o: StalePass): AsyncGenerator<SourceChange[]> {
  for await (const page of staleKeys(o.db, o.statusSchema, o.rt, o.page)) {
    const trimmed = await withoutLiveGroups(
      o.db,
      o.rt,
      page.map((s) => ({ key: s.key.text, image: s.image })),
    );
    yield page.map((s): SourceChange => ({
      kind: 'delete',
      key: s.key,
      before: trimmed.get(s.key.text) ?? (s.image as Image),
      after: null,
    }));
  }
}

/**
 * Keys sync_status says are on the platform but the source table no longer holds, read in the
 * snapshot's transaction (so "no longer" means "not at the slot's consistent point"), page by page
 * in key order. Stored keys are compared with rows in the key columns' own types, through the
 * table's key index.
 */
export async function* staleKeys(
  client: Pick<pg.ClientBase, 'query'>,
  statusSchema: string,
  rt: SourceRuntime,
  page = 1000,
): AsyncGenerator<Array<{ key: RowKey; image: Image }>> {
  const keyColumns = rt.mapper.keyColumns;
  const table = { schema: rt.config.schema, name: rt.config.tableName };
  const sql = statusSql(statusSchema).staleKeys(table, keyColumns, rt.keyTypes, page);
  let after: string | null = null;
  for (;;) {
    const res: pg.QueryResult<{ k: string; payload: Record<string, unknown> }> = await client.query(sql, [
      rt.config.name,
      after,
      ...keyColumns,
    ]);
    if (res.rows.length === 0) return;
    yield res.rows.map((r) => {
      const text = r.k;
      return {
        key: { text, values: JSON.parse(text) as Record<string, unknown> },
        image: imageFromPayload(r.payload),
      };
    });
    after = (res.rows[res.rows.length - 1] as { k: string }).k;
    if (res.rows.length < page) return;
  }
}
