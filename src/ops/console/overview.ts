/**
 * The console's overview: per source the rows by status, backlog, requests and their outcomes; the
 * slot's lag and WAL headroom; snapshot and backfill progress. Read from the status schema
 * (src/status/reads.ts, each statement on an index), the slot, and the daemon's own metrics and
 * readiness, as the JSON the API serves (docs/console.md).
 */
import { readSlot } from '../../source/slot.js';
import {
  readHeld,
  readRecentBackfills,
  readRecentRequests,
  readRequestRates,
  readSnapshotRun,
  readSourceBacklogs,
  readSourceRowCount,
  readSourceShares,
  readStatusRowEstimate,
  readUnsyncedCounts,
  readWalKeepSize,
} from '../../status/reads.js';
import { iso, type ConsoleDataOptions } from './data.js';
import { learnedRate, RATE_WINDOW, recentRate } from './request-rate.js';

/** Below this many rows (the planner's estimate) sync_status is counted exactly at every refresh. */
export const EXACT_COUNT_LIMIT = 500_000;
/** The newest requests the overview reads, and the window it shows per minute. */
export const REQUEST_WINDOW = { requests: 10_000, minutes: 15 };
export const STATUSES = ['synced', 'failed', 'retrying', 'accepted', 'skipped', 'held'] as const;
export const OUTCOMES = ['ok', 'partial', 'accepted', 'rejected', 'auth', 'transient', 'no answer'] as const;

export class ConsoleOverview {
  constructor(private readonly o: ConsoleDataOptions) {}

  private get schema(): string {
    return this.o.config.postgres.statusSchema;
  }

  /** Everything on the overview page. */
  async read(): Promise<Record<string, unknown>> {
    const { pool, config } = this.o;
    const slotName = config.postgres.slot;
    const now = new Date();
    const [tableRows, slot, maxKeepBytes, live] = await Promise.all([
      readStatusRowEstimate(pool, this.schema),
      readSlot(pool, slotName),
      readWalKeepSize(pool, this.schema),
      this.live(),
    ]);
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
      generatedAt: now.toISOString(),
      statusSchema: this.schema,
      bridge: live.bridge,
      slot: slotInfo,
    };
    if (tableRows === undefined)
      return {
        ...base,
        ready: false,
        message: 'the bridge has not created its status schema yet',
        sources: [],
      };

    const [counts, backlog, requests, rates, snapshot, backfills, held] = await Promise.all([
      this.counts(tableRows),
      readSourceBacklogs(pool, this.schema),
      readRecentRequests(pool, this.schema, REQUEST_WINDOW),
      readRequestRates(
        pool,
        this.schema,
        new Date(now.getTime() - RATE_WINDOW.maxSeconds * 1000),
        REQUEST_WINDOW.requests,
      ),
      readSnapshotRun(pool, this.schema, slotName),
      this.backfills(),
      this.held(),
    ]);

    const sources = [...counts.keys()].map((name) => {
      const c = counts.get(name)!;
      const b = backlog.find((r) => r.source === name);
      const reqs = requests.filter((r) => r.source === name);
      const inWindow = reqs.filter((r) => r.minute !== null);
      const outcomes = Object.fromEntries(
        OUTCOMES.map((o) => [o, inWindow.filter((r) => r.outcome === o).reduce((n, r) => n + r.requests, 0)]),
      );
      const perMinute = new Map<string, { requests: number; rows: number }>();
      for (const r of inWindow) {
        const k = (r.minute as Date).toISOString();
        const m = perMinute.get(k) ?? { requests: 0, rows: 0 };
        perMinute.set(k, { requests: m.requests + r.requests, rows: m.rows + r.rows });
      }
      const rate = rates.find((r) => r.source === name);
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
          rows: b?.rows ?? 0,
          oldestCommittedAt: iso(b?.oldestCommittedAt),
          ageSeconds: b?.ageSeconds ?? null,
        },
        lastSuccessAt: iso(newest(reqs.filter((r) => ['ok', 'partial', 'accepted'].includes(r.outcome)))),
        lastRequestAt: iso(newest(reqs)),
        requests: {
          windowMinutes: REQUEST_WINDOW.minutes,
          total: inWindow.reduce((n, r) => n + r.requests, 0),
          rows: inWindow.reduce((n, r) => n + r.rows, 0),
          perMinute: [...perMinute]
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([minute, n]) => ({ minute, ...n })),
          outcomes,
          rate: recentRate(rate?.requests ?? 0, rate?.rows ?? 0, rate?.oldest ?? null, now),
        },
        progress: live.progress.filter((p) => p.source === name),
      };
    });
    return {
      ...base,
      ready: true,
      sources,
      snapshot: snapshot
        ? {
            startedAt: iso(snapshot.startedAt),
            doneAt: iso(snapshot.doneAt),
            rows: snapshot.rows,
            reason: snapshot.reason,
          }
        : null,
      backfills,
      held,
    };
  }

  /** Mass removals waiting for a person, per source and reason (none before migration 010). */
  private async held(): Promise<Array<Record<string, unknown>>> {
    const held = await readHeld(this.o.pool, this.schema, null);
    return held.map((h) => ({ source: h.source, reason: h.reason, rows: h.rows, since: iso(h.since) }));
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
    const unsynced = await readUnsyncedCounts(pool, this.schema);
    const names = [...new Set([...config.sources.map((s) => s.name), ...unsynced.map((r) => r.source)])];
    const exact = tableRows < EXACT_COUNT_LIMIT;
    const totals = new Map<string, number>();
    if (exact) {
      for (const name of names) totals.set(name, await readSourceRowCount(pool, this.schema, name));
    } else {
      for (const s of await readSourceShares(pool, this.schema))
        totals.set(s.source, Math.round(tableRows * s.share));
    }
    const out = new Map<string, { counts: Record<string, number>; total: number; exact: boolean }>();
    for (const name of names) {
      const counts: Record<string, number> = Object.fromEntries(STATUSES.map((st) => [st, 0]));
      for (const r of unsynced) if (r.source === name) counts[r.status] = r.rows;
      const notSynced = STATUSES.reduce((n, st) => n + (st === 'synced' ? 0 : (counts[st] ?? 0)), 0);
      const total = Math.max(totals.get(name) ?? 0, notSynced);
      counts.synced = total - notSynced;
      out.set(name, { counts, total, exact });
    }
    return out;
  }

  private async backfills(): Promise<Array<Record<string, unknown>>> {
    const rows = await readRecentBackfills(this.o.pool, this.schema, this.o.config.postgres.slot, 5);
    return rows.map((b) => ({
      id: b.id,
      source: b.source,
      reason: b.reason,
      status: b.status,
      rowsDone: b.done,
      rowsTotal: b.total,
      error: b.error,
      requestedAt: iso(b.requestedAt),
      startedAt: iso(b.startedAt),
      finishedAt: iso(b.finishedAt),
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
        requestRate: await learnedRate(m),
      },
      lagSeconds: await value(m?.slotLagSeconds),
      progress,
    };
  }
}
