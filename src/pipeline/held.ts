/**
 * Settling held rows (docs/operations.md, "Mass removals wait for a person"), on the lanes of the
 * bridge that holds the slot (or of a command, when none runs: ./held-command.ts).
 *
 * - **Approve** brings each held key to what the table holds now: a targeted re-sync, planned as a
 *   retry is (./retry-failed.ts: the payload the platform still holds is `before`, the current row
 *   `after`, the state restated), read and sent inside the lanes of the keys and customers it
 *   touches, so nothing the stream sends for them can come in between. A row restored meanwhile is
 *   set again, not removed; a row still gone loses only the groups no live row of the source holds
 *   for its customer (./live-groups.ts). Its removals pass the guard: an operator approved them.
 * - **Reject** leaves the platform as it is and records the held rows `skipped`, with the reason.
 *
 * Either way the daemon's guard is told that these keys are held no more, so their later changes
 * flow again: a rejection first, an approval once it holds the keys' lanes.
 */
import type { SourceConfig } from '../config/types.js';
import type { OptType, RowStatus } from '../domain/types.js';
import { keyLane } from '../batching/lanes.js';
import { Resources } from '../batching/scheduler.js';
import type { HeldStore } from '../status/held.js';
import { REJECTED } from '../status/held.js';
import { withoutLiveGroups } from './live-groups.js';
import {
  assertPlatform,
  emptyRetry,
  restatePage,
  retryMapper,
  retrySources,
  type RetryContext,
} from './retry-failed.js';
import type { PlatformProbe } from './sources.js';

/** Where held rows are settled: a retry's context, the held rows, and the daemon's guard. */
export interface HeldContext extends RetryContext {
  held: HeldStore;
  /** The daemon's removal guard, told which keys an operator settled (none in a command). */
  guard?: { release(source: string, keys: Iterable<string>): Promise<void> };
}

export type HeldAction = 'approve' | 'reject';

/** Which held rows: every source's, or one's. */
export interface HeldParams {
  source?: string;
}

/** What settling a source's held rows did. */
export interface HeldResult {
  source: string;
  /** Held rows settled. */
  rows: number;
  /** Approve: API rows sent, by operation. */
  sent: Partial<Record<OptType, number>>;
  /** The outcomes stored, by status. */
  outcomes: Partial<Record<RowStatus, number>>;
}

const PAGE = 500;

/** Approves or rejects the held rows of every source (or one); one result per source with any. */
export async function settleHeld(
  ctx: HeldContext,
  action: HeldAction,
  params: HeldParams,
  platform?: PlatformProbe,
): Promise<HeldResult[]> {
  const sources = retrySources(ctx.config, params);
  const held = new Set((await ctx.held.summary(params.source)).map((g) => g.source));
  const todo = sources.filter((s) => held.has(s.name));
  if (action === 'approve' && todo.length > 0 && platform) await assertPlatform(platform);
  const results: HeldResult[] = [];
  for (const source of todo)
    results.push(action === 'approve' ? await approveSource(ctx, source) : await rejectSource(ctx, source));
  return results;
}

async function approveSource(ctx: HeldContext, source: SourceConfig): Promise<HeldResult> {
  const retry = emptyRetry(source.name);
  const mapper = await retryMapper(ctx.pool, source);
  // Each read is covered as maybe sent before its send (restatePage): a replay sets state.
  for await (const page of ctx.held.heldRows(source.name, PAGE)) {
    retry.rows += page.length;
    await restatePage(ctx, source, mapper, page, retry, {
      reread: (keys) => ctx.held.heldRowsByKey(source.name, keys),
      trim: (gone) => withoutLiveGroups(ctx.pool, { config: source, mapper }, gone),
      // The guard lets the keys' later changes flow only once the approval holds their lanes and
      // has read them: one let through before would be planned as if the held removal had happened
      // (a row back from a held delete added beside the groups the platform kept) and leave the
      // approval nothing to do. One let through now queues behind the approval's requests.
      inLanes: (keys) => ctx.guard?.release(source.name, keys) ?? Promise.resolve(),
    });
  }
  return { source: source.name, rows: retry.rows, sent: retry.sent, outcomes: retry.outcomes };
}

async function rejectSource(ctx: HeldContext, source: SourceConfig): Promise<HeldResult> {
  let rows = 0;
  for await (const page of ctx.held.heldRows(source.name, PAGE)) {
    const keys = page.map((r) => r.rowKey);
    await ctx.guard?.release(source.name, keys);
    // On the keys' lanes: a held outcome the stream is storing for one of them lands first.
    const resources = new Resources();
    for (const k of keys) resources.add(keyLane(source.name), k);
    rows += await ctx.lanes.reserve(resources, () => ctx.held.settle(source.name, REJECTED, keys));
  }
  return { source: source.name, rows, sent: {}, outcomes: rows ? { skipped: rows } : {} };
}
