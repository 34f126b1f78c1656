/**
 * The console's searches and failure lists, read from the status schema (src/status/reads.ts, each
 * statement on an index), and its backfill request. Plain JSON-ready objects:
 * the API serves them as they are (docs/console.md describes them). The overview: ./overview.ts.
 */
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { canonicalJson } from '../../mapping/source-mapper.js';
import { requestBackfill } from '../../status/jobs.js';
import {
  readFailureGroups,
  readGroupRows,
  readIndexedIdentities,
  readKeySample,
  SEARCHED_IDENTITIES,
  searchRows,
  type RowOutcome,
  type SearchedIdentity,
} from '../../status/reads.js';
import type { Metrics } from '../metrics.js';
import type { Readiness } from '../readiness.js';

export interface ConsoleDataOptions {
  pool: pg.Pool;
  config: Config;
  metrics?: Metrics;
  readiness?: () => Readiness;
}

/** A failure group's identity: what `groupRows` and the retry action take back. */
export interface GroupId {
  source: string;
  status: 'failed' | 'retrying';
  error: string | null;
}

/** A time as the API gives it: ISO 8601 in UTC, or null. */
export const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

/** A row's latest outcome as the API gives it (search results and a failure group's rows alike). */
function outcome(r: RowOutcome) {
  return {
    op: r.op,
    attempts: r.attempts,
    error: r.error,
    lsn: r.lsn,
    committedAt: iso(r.committedAt),
    syncedAt: iso(r.syncedAt),
    payload: r.payload,
  };
}

/** A group as an opaque, URL-safe id (base64url of its JSON). */
export function encodeGroup(g: GroupId): string {
  return Buffer.from(JSON.stringify([g.source, g.status, g.error])).toString('base64url');
}

/** The group an id names, or undefined when it is not one. */
export function decodeGroup(id: string): GroupId | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(id, 'base64url').toString('utf8'));
    if (!Array.isArray(v) || v.length !== 3) return undefined;
    const [source, status, error] = v as unknown[];
    if (typeof source !== 'string' || (status !== 'failed' && status !== 'retrying')) return undefined;
    if (error !== null && typeof error !== 'string') return undefined;
    return { source, status, error };
  } catch {
    return undefined;
  }
}

/** How long the list of indexed identities is trusted before it is read again. */
const IDENTITY_INDEX_TTL_MS = 60_000;

export class ConsoleData {
  private indexed: { at: number; identities: Promise<SearchedIdentity[]> } | undefined;

  constructor(private readonly o: ConsoleDataOptions) {}

  private get schema(): string {
    return this.o.config.postgres.statusSchema;
  }

  /**
   * The identities the search can find a row by: those with an index on sync_row (the DBA creates
   * them, sql/optional/identity-indexes.sql). Read again every minute, so an index created while
   * the bridge runs is used without a restart.
   */
  indexedIdentities(): Promise<SearchedIdentity[]> {
    const now = Date.now();
    if (!this.indexed || now - this.indexed.at > IDENTITY_INDEX_TTL_MS) {
      const identities = readIndexedIdentities(this.o.pool, this.schema);
      this.indexed = { at: now, identities };
      identities.catch(() => {
        if (this.indexed?.identities === identities) this.indexed = undefined;
      });
    }
    return this.indexed.identities;
  }

  /**
   * Rows by source key or by an identity the bridge sent. `q` is a key value (for sources with a
   * one-column key), a key as a JSON object (`{"cust_no": "C1"}`), or an identity value.
   */
  async search(q: string, source: string | undefined, limit: number): Promise<Record<string, unknown>> {
    const names = source ? [source] : this.o.config.sources.map((s) => s.name);
    const keys: string[] = [];
    let identity: string | null = q;
    if (q.startsWith('{')) {
      let key: unknown;
      try {
        key = JSON.parse(q);
      } catch {
        key = undefined;
      }
      if (key === null || typeof key !== 'object' || Array.isArray(key))
        throw new RangeError('q: a key written as JSON must be an object, e.g. {"cust_no": "C1"}');
      keys.push(canonicalJson(key as Record<string, unknown>));
      identity = null;
    } else {
      for (const name of names) {
        const k = await readKeySample(this.o.pool, this.schema, name);
        if (!k) continue;
        const columns = Object.keys(JSON.parse(k) as object);
        if (columns.length !== 1) continue;
        const column = columns[0] as string;
        keys.push(canonicalJson({ [column]: q }));
        // Keys read as text are strings; a numeric key stored as a number is found too.
        if (/^-?\d{1,15}$/.test(q)) keys.push(canonicalJson({ [column]: Number(q) }));
      }
    }
    const indexed = identity === null ? [] : await this.indexedIdentities();
    const found = await searchRows(this.o.pool, this.schema, {
      sources: names,
      keys: [...new Set(keys)],
      source: source ?? null,
      limit: limit + 1,
      identities: indexed,
      identity,
    });
    const rows = found.slice(0, limit).map((r) => {
      const key = JSON.parse(r.rowKey) as Record<string, unknown>;
      const payload = r.payload ?? {};
      const matchedBy = [
        ...(keys.some((k) => sameJson(k, r.rowKey)) ? ['key'] : []),
        ...indexed.filter((f) => payload[f] === identity),
      ];
      return {
        source: r.source,
        rowKey: key,
        status: r.status,
        ...outcome(r),
        matchedBy,
        request: r.request === null ? null : { ...r.request, startedAt: iso(r.request.startedAt) },
      };
    });
    return {
      query: q,
      source: source ?? null,
      limit,
      more: found.length > limit,
      rows,
      // What a value that is not a key was compared with, and what it could not be: an identity
      // without an index is not searched (it would read the whole table).
      identities: { searched: indexed, notIndexed: SEARCHED_IDENTITIES.filter((f) => !indexed.includes(f)) },
    };
  }

  /** Failed and retrying rows grouped by error, newest group first. */
  async failureGroups(o: {
    status?: 'failed' | 'retrying';
    source?: string;
    limit: number;
    offset: number;
  }): Promise<Record<string, unknown>> {
    const groups = await readFailureGroups(this.o.pool, this.schema, { ...o, limit: o.limit + 1 });
    return {
      limit: o.limit,
      offset: o.offset,
      more: groups.length > o.limit,
      groups: groups.slice(0, o.limit).map((r) => ({
        id: encodeGroup(r),
        source: r.source,
        status: r.status,
        error: r.error,
        rows: r.rows,
        oldestCommittedAt: iso(r.oldestCommittedAt),
        newestAt: iso(r.newestAt),
      })),
    };
  }

  /** The rows of one group, newest first, a page at a time (`after`: the previous page's `next`). */
  async groupRows(
    group: GroupId,
    after: string | undefined,
    limit: number,
  ): Promise<Record<string, unknown>> {
    let cursor: [string, string] | [null, null] = [null, null];
    if (after) {
      const v = JSON.parse(Buffer.from(after, 'base64url').toString('utf8')) as unknown;
      if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string')
        throw new RangeError('after: not a cursor of this list');
      cursor = [v[0], v[1]];
    }
    const page = await readGroupRows(this.o.pool, this.schema, group, cursor, limit + 1);
    const rows = page.slice(0, limit);
    const last = rows[rows.length - 1];
    return {
      group: { id: encodeGroup(group), ...group },
      rows: rows.map((r) => ({ rowKey: JSON.parse(r.key) as unknown, ...outcome(r) })),
      next:
        page.length > limit && last
          ? Buffer.from(JSON.stringify([last.syncedText, last.key])).toString('base64url')
          : null,
    };
  }

  /**
   * Asks the running daemon for a backfill of a source, like `tuzhan-cdc backfill --detach`; a
   * backfill of that source still pending or running is returned instead of a second one.
   */
  requestBackfill(source: string): Promise<{ id: string; created: boolean }> {
    const { pool, config } = this.o;
    const { slot, statusSchema } = config.postgres;
    return requestBackfill(pool, statusSchema, slot, { source, filter: null, reason: 'requested' });
  }
}

function sameJson(a: string, b: string): boolean {
  try {
    return JSON.stringify(sortKeys(JSON.parse(a))) === JSON.stringify(sortKeys(JSON.parse(b)));
  } catch {
    return false;
  }
}

function sortKeys(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
  );
}
