/**
 * What the console shows, read from the status schema (statements: src/status/console-sql.ts, each
 * on an index), the slot, and the daemon's own metrics and readiness. Plain JSON-ready objects: the
 * API serves them as they are (docs/console.md describes them).
 */
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { readSlot } from '../../source/slot.js';
import { consoleSql, SEARCHED_IDENTITIES } from '../../status/console-sql.js';
import { statusSql } from '../../status/sql.js';
import type { Metrics } from '../metrics.js';
import type { Readiness } from '../readiness.js';

/** Below this many rows (the planner's estimate) sync_status is counted exactly at every refresh. */
export const EXACT_COUNT_LIMIT = 500_000;
/** The newest requests the overview reads, and the window it shows per minute. */
export const REQUEST_WINDOW = { requests: 10_000, minutes: 15 };
export const STATUSES = ['synced', 'failed', 'retrying', 'accepted', 'skipped'] as const;
export const OUTCOMES = ['ok', 'partial', 'accepted', 'rejected', 'auth', 'transient', 'no answer'] as const;

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

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

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

export class ConsoleData {
  private readonly sql;
  private readonly status;

  constructor(private readonly o: ConsoleDataOptions) {
    this.sql = consoleSql(o.config.postgres.statusSchema);
    this.status = statusSql(o.config.postgres.statusSchema);
  }

  private get schema(): string {
    return this.o.config.postgres.statusSchema;
  }

  /** Everything on the overview page. */
  async overview(): Promise<Record<string, unknown>> {
    const { pool, config } = this.o;
    const slotName = config.postgres.slot;
    const [estimate, slot, keep, live] = await Promise.all([
      pool.query<{ rows: number }>(this.sql.tableEstimate, [this.schema]),
      readSlot(pool, slotName),
      pool.query<{ mb: string }>(this.sql.walKeepSize),
      this.live(),
    ]);
    const keepMb = Number(keep.rows[0]?.mb ?? -1);
    const maxKeepBytes = keepMb >= 0 ? keepMb * 1024 * 1024 : null;
    const slotInfo = {
      name: slotName,
      exists: slot !== null,
      active: slot?.active ?? false,
      lagBytes: slot?.lagBytes ?? null,
      lagSeconds: live.lagSeconds,
      walStatus: slot?.walStatus ?? null,
      safeWalSizeBytes: slot?.safeWalSize ?? null,
      maxSlotWalKeepSizeBytes: maxKeepBytes,
      /** Share of max_slot_wal_keep_size still free; null without a limit. */
      headroomPct:
        maxKeepBytes && slot?.safeWalSize !== null && slot?.safeWalSize !== undefined
          ? Math.max(0, Math.min(100, (100 * slot.safeWalSize) / maxKeepBytes))
          : null,
    };
    const base = {
      generatedAt: new Date().toISOString(),
      statusSchema: this.schema,
      bridge: live.bridge,
      slot: slotInfo,
    };
    const tableRows = estimate.rows[0]?.rows;
    if (tableRows === undefined)
      return {
        ...base,
        ready: false,
        message: 'the bridge has not created its status schema yet',
        sources: [],
      };

    const [counts, backlog, requests, snapshot, backfills] = await Promise.all([
      this.counts(tableRows),
      pool.query<{ source: string; n: string; oldest: Date | null; age: number | null }>(this.sql.backlog),
      pool.query<{
        source: string;
        outcome: (typeof OUTCOMES)[number];
        minute: Date | null;
        requests: number;
        rows: number;
        newest: Date;
      }>(this.sql.recentRequests, [REQUEST_WINDOW.requests, REQUEST_WINDOW.minutes]),
      pool.query<{ started: Date | null; done: Date | null; rows: string | null; reason: string | null }>(
        this.sql.snapshot,
        [slotName],
      ),
      this.backfills(),
    ]);

    const sources = [...counts.keys()].map((name) => {
      const c = counts.get(name)!;
      const b = backlog.rows.find((r) => r.source === name);
      const reqs = requests.rows.filter((r) => r.source === name);
      const inWindow = reqs.filter((r) => r.minute !== null);
      const outcomes = Object.fromEntries(
        OUTCOMES.map((o) => [o, inWindow.filter((r) => r.outcome === o).reduce((n, r) => n + r.requests, 0)]),
      );
      const perMinute = new Map<string, number>();
      for (const r of inWindow) {
        const k = (r.minute as Date).toISOString();
        perMinute.set(k, (perMinute.get(k) ?? 0) + r.requests);
      }
      const newest = (rows: typeof reqs) =>
        rows.reduce<Date | null>((m, r) => (m === null || r.newest > m ? r.newest : m), null);
      const source = config.sources.find((s) => s.name === name);
      return {
        name,
        configured: source !== undefined,
        mode: source?.mode ?? null,
        counts: c.counts,
        total: c.total,
        exact: c.exact,
        backlog: {
          rows: Number(b?.n ?? 0),
          oldestCommittedAt: iso(b?.oldest),
          ageSeconds: b?.age ?? null,
        },
        lastSuccessAt: iso(newest(reqs.filter((r) => ['ok', 'partial', 'accepted'].includes(r.outcome)))),
        lastRequestAt: iso(newest(reqs)),
        requests: {
          windowMinutes: REQUEST_WINDOW.minutes,
          total: inWindow.reduce((n, r) => n + r.requests, 0),
          rows: inWindow.reduce((n, r) => n + r.rows, 0),
          perMinute: [...perMinute]
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([minute, n]) => ({ minute, requests: n })),
          outcomes,
        },
        progress: live.progress.filter((p) => p.source === name),
      };
    });
    const snap = snapshot.rows[0];
    return {
      ...base,
      ready: true,
      sources,
      snapshot: snap
        ? {
            startedAt: iso(snap.started),
            doneAt: iso(snap.done),
            rows: snap.rows === null ? null : Number(snap.rows),
            reason: snap.reason,
          }
        : null,
      backfills,
    };
  }

  /**
   * Rows per source and status. The unsynced statuses are counted exactly through the partial
   * index. Synced rows are the source's rows minus those: counted exactly (a primary key range)
   * while the table is small, else estimated from the planner's statistics (`exact: false`).
   */
  private async counts(
    tableRows: number,
  ): Promise<Map<string, { counts: Record<string, number>; total: number; exact: boolean }>> {
    const { pool, config } = this.o;
    const unsynced = await pool.query<{ source: string; status: string; n: string }>(this.sql.unsyncedCounts);
    const names = [...new Set([...config.sources.map((s) => s.name), ...unsynced.rows.map((r) => r.source)])];
    const exact = tableRows < EXACT_COUNT_LIMIT;
    const totals = new Map<string, number>();
    if (exact) {
      for (const name of names) {
        const res = await pool.query<{ n: string }>(this.sql.sourceRows, [name]);
        totals.set(name, Number(res.rows[0]?.n ?? 0));
      }
    } else {
      const shares = await pool.query<{ sources: string[]; freqs: number[] }>(this.sql.sourceShares, [
        this.schema,
      ]);
      const s = shares.rows[0];
      s?.sources.forEach((name, i) => totals.set(name, Math.round(tableRows * (s.freqs[i] ?? 0))));
    }
    const out = new Map<string, { counts: Record<string, number>; total: number; exact: boolean }>();
    for (const name of names) {
      const counts: Record<string, number> = Object.fromEntries(STATUSES.map((st) => [st, 0]));
      for (const r of unsynced.rows) if (r.source === name) counts[r.status] = Number(r.n);
      const notSynced = STATUSES.reduce((n, st) => n + (st === 'synced' ? 0 : (counts[st] ?? 0)), 0);
      const total = Math.max(totals.get(name) ?? 0, notSynced);
      counts.synced = total - notSynced;
      out.set(name, { counts, total, exact });
    }
    return out;
  }

  private async backfills(): Promise<Array<Record<string, unknown>>> {
    const exists = await this.o.pool.query<{ ok: boolean }>(this.status.backfillExists, [this.schema]);
    if (!exists.rows[0]?.ok) return [];
    const res = await this.o.pool.query<{
      id: string;
      source: string;
      reason: string;
      status: string;
      done: string;
      total: string | null;
      error: string | null;
      requested_at: Date;
      started_at: Date | null;
      finished_at: Date | null;
    }>(this.status.recentBackfills, [this.o.config.postgres.slot, 5]);
    return res.rows.map((r) => ({
      id: r.id,
      source: r.source,
      reason: r.reason,
      status: r.status,
      rowsDone: Number(r.done),
      rowsTotal: r.total === null ? null : Number(r.total),
      error: r.error,
      requestedAt: iso(r.requested_at),
      startedAt: iso(r.started_at),
      finishedAt: iso(r.finished_at),
    }));
  }

  /** What only the running daemon knows: the stream, buffers, lag in seconds, running syncs. */
  private async live(): Promise<{
    bridge: Record<string, unknown>;
    lagSeconds: number | null;
    progress: Array<{ source: string; kind: string; done: number; total: number }>;
  }> {
    const m = this.o.metrics;
    const readiness = this.o.readiness?.();
    const value = async (g: { get(): Promise<{ values: Array<{ value: number }> }> } | undefined) =>
      g ? ((await g.get()).values[0]?.value ?? null) : null;
    const progress: Array<{ source: string; kind: string; done: number; total: number }> = [];
    if (m) {
      const totals = (await m.syncRowsTotal.get()).values;
      for (const d of (await m.syncRowsDone.get()).values) {
        const { source, kind } = d.labels as { source: string; kind: string };
        const total = totals.find((t) => t.labels.source === source && t.labels.kind === kind)?.value ?? 0;
        // A finished sync leaves its gauges at done = total; only running ones are progress.
        if (d.value < total) progress.push({ source, kind, done: d.value, total });
      }
    }
    return {
      bridge: {
        ready: readiness?.ready ?? null,
        checks: readiness?.checks ?? {},
        bufferedRows: await value(m?.bufferedRows),
        inflightRows: await value(m?.inflightRows),
      },
      lagSeconds: await value(m?.slotLagSeconds),
      progress,
    };
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
      keys.push(JSON.stringify(key));
      identity = null;
    } else {
      for (const name of names) {
        const shape = await this.o.pool.query<{ k: string }>(this.sql.keyShape, [name]);
        const k = shape.rows[0]?.k;
        if (!k) continue;
        const columns = Object.keys(JSON.parse(k) as object);
        if (columns.length !== 1) continue;
        const column = columns[0] as string;
        keys.push(JSON.stringify({ [column]: q }));
        // Keys read as text are strings; a numeric key stored as a number is found too.
        if (/^-?\d{1,15}$/.test(q)) keys.push(JSON.stringify({ [column]: Number(q) }));
      }
    }
    const res = await this.o.pool.query<SearchRow>(this.sql.search, [
      names,
      [...new Set(keys)],
      identity,
      source ?? null,
      limit + 1,
    ]);
    const rows = res.rows.slice(0, limit).map((r) => {
      const key = JSON.parse(r.row_key) as Record<string, unknown>;
      const payload = r.payload ?? {};
      const matchedBy = [
        ...(keys.some((k) => sameJson(k, r.row_key)) ? ['key'] : []),
        ...SEARCHED_IDENTITIES.filter((f) => identity !== null && payload[f] === identity),
      ];
      return {
        source: r.source,
        rowKey: key,
        op: r.op,
        status: r.status,
        attempts: r.attempts,
        error: r.error,
        lsn: r.lsn,
        committedAt: iso(r.committed_at),
        syncedAt: iso(r.synced_at),
        payload: r.payload,
        matchedBy,
        request:
          r.request_id === null
            ? null
            : {
                id: r.request_id,
                optType: r.opt_type,
                rows: r.rows,
                httpStatus: r.http_status,
                code: r.code,
                msg: r.msg,
                apiStatus: r.api_status,
                successNum: r.success_num,
                failNum: r.fail_num,
                startedAt: iso(r.started_at),
                durationMs: r.duration_ms,
              },
      };
    });
    return { query: q, source: source ?? null, limit, more: res.rows.length > limit, rows };
  }

  /** Failed and retrying rows grouped by error, newest group first. */
  async failureGroups(o: {
    status?: 'failed' | 'retrying';
    source?: string;
    limit: number;
    offset: number;
  }): Promise<Record<string, unknown>> {
    const res = await this.o.pool.query<{
      source: string;
      status: 'failed' | 'retrying';
      error: string | null;
      n: string;
      oldest: Date | null;
      newest: Date | null;
    }>(this.sql.failureGroups, [o.status ?? null, o.source ?? null, o.limit + 1, o.offset]);
    return {
      limit: o.limit,
      offset: o.offset,
      more: res.rows.length > o.limit,
      groups: res.rows.slice(0, o.limit).map((r) => ({
        id: encodeGroup(r),
        source: r.source,
        status: r.status,
        error: r.error,
        rows: Number(r.n),
        oldestCommittedAt: iso(r.oldest),
        newestAt: iso(r.newest),
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
    const res = await this.o.pool.query<{
      k: string;
      op: string;
      attempts: number;
      error: string | null;
      lsn: string | null;
      committed_at: Date | null;
      synced_at: Date;
      payload: Record<string, unknown> | null;
      synced_text: string;
    }>(this.sql.groupRows, [group.status, group.source, group.error, ...cursor, limit + 1]);
    const rows = res.rows.slice(0, limit);
    const last = rows[rows.length - 1];
    return {
      group: { id: encodeGroup(group), ...group },
      rows: rows.map((r) => ({
        rowKey: JSON.parse(r.k) as unknown,
        op: r.op,
        attempts: r.attempts,
        error: r.error,
        lsn: r.lsn,
        committedAt: iso(r.committed_at),
        syncedAt: iso(r.synced_at),
        payload: r.payload,
      })),
      next:
        res.rows.length > limit && last
          ? Buffer.from(JSON.stringify([last.synced_text, last.k])).toString('base64url')
          : null,
    };
  }

  /**
   * Asks the running daemon for a backfill of a source, like `tuzhan-cdc backfill --detach`; a
   * backfill of that source still pending or running is returned instead of a second one.
   */
  async requestBackfill(source: string): Promise<{ id: string; created: boolean }> {
    const { pool, config } = this.o;
    const open = await pool.query<{ id: string }>(this.sql.openBackfill, [config.postgres.slot, source]);
    if (open.rows[0]) return { id: open.rows[0].id, created: false };
    const res = await pool.query<{ id: string }>(this.status.requestBackfill, [
      config.postgres.slot,
      source,
      null,
      'requested',
    ]);
    return { id: (res.rows[0] as { id: string }).id, created: true };
  }
}

interface SearchRow {
  source: string;
  row_key: string;
  op: string;
  status: string;
  attempts: number;
  error: string | null;
  lsn: string | null;
  committed_at: Date | null;
  synced_at: Date;
  payload: Record<string, unknown> | null;
  request_id: string | null;
  opt_type: string | null;
  rows: number | null;
  http_status: number | null;
  code: string | null;
  msg: string | null;
  api_status: number | null;
  success_num: number | null;
  fail_num: number | null;
  started_at: Date | null;
  duration_ms: number | null;
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
