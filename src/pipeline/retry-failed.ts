/**
 * Retrying failed rows (`tuzhan-cdc retry-failed`, the console's Retry button), on the daemon's
 * per-key lanes (docs/design.md, "Jobs"). Each failed key's CURRENT row is read and the calls that
 * set the platform to it are planned as for a replayed change (src/batching/coalesce.ts: what the
 * failed request may have left is `before`, the row now is `after`, and the state is restated).
 *
 * Read and send happen inside the lanes of the keys and of every customer identity they touch:
 * reading outside and sending later would let the stream send a newer state of the row in between,
 * and the retry's older one land last (the platform stale, sync_status saying synced). So a page is
 * read once to learn what it touches, those lanes are reserved, and inside them the keys' status and
 * rows are read again and sent; a key whose identity changed in between (it now touches a customer
 * not reserved) waits for the next round.
 *
 * The rows are sent directly, not through the replication stream: a no-op `UPDATE <table> SET
 * <key> = <key>` would write to the CRM's own table, fire its triggers, bump its updated_at
 * columns and need UPDATE privilege. The sent position is covered after each read and before its
 * send (src/status/sent-mark.ts, `coverRead`): a change the read saw may have been sent, so the
 * stream's later flush of it (or a replay) removes what it passed through rather than skip it.
 */
import type pg from 'pg';
import type { Lanes } from '../batching/lanes.js';
import { keyLane, identityLane } from '../batching/lanes.js';
import { netEffect, OP_ORDER, type Part } from '../batching/coalesce.js';
import { Resources } from '../batching/scheduler.js';
import type { Config, SourceConfig } from '../config/types.js';
import { IDENTITY_FIELDS } from '../config/types.js';
import { requestRows, type KeyChange, type LocalOutcome } from '../delivery/requests.js';
import type { OptType, RowStatus } from '../domain/types.js';
import { BridgeError, SetupError } from '../errors.js';
import { SourceMapper } from '../mapping/source-mapper.js';
import { checkSource } from '../source/checks.js';
import { readRowByKey } from '../source/snapshot.js';
import { readFailures } from '../status/reads.js';
import type { SentMark } from '../status/sent-mark.js';
import type { FailedRow, StatusStore } from '../status/status-store.js';
import type { Image } from '../domain/change.js';
import { imageFromPayload } from '../tuzhan/rows.js';
import type { PlatformProbe } from './sources.js';

export interface SourceRetry {
  source: string;
  /** Failed rows looked at. */
  rows: number;
  /** New outcomes, by status. */
  outcomes: Partial<Record<RowStatus, number>>;
  /** Keys sent, by operation. */
  sent: Partial<Record<OptType, number>>;
  /** Keys still failed afterwards (at most 20), with their errors. */
  stillFailed: Array<{ rowKey: unknown; error: string | null }>;
}

/** What to retry: every source's failed rows, or one source's; with `error`, one failure group. */
export interface RetryParams {
  source?: string;
  /** Only the failed rows with this error (null: those without one); undefined: every one. */
  error?: string | null;
}

/** Where a retry reads and sends: the daemon's (or, with no daemon running, a command's own). */
export interface RetryContext {
  config: Config;
  pool: pg.Pool;
  store: StatusStore;
  /** Reads rows to send, then records that changes up to the server's position may be sent. */
  sent: Pick<SentMark, 'coverRead'>;
  lanes: Lanes;
}

const PAGE = 500;
/** Rounds a page's keys get before the ones whose identity keeps changing are left failed. */
const ROUNDS = 10;

/** The sources a retry covers. */
export function retrySources(config: Config, params: RetryParams): readonly SourceConfig[] {
  return params.source ? config.sources.filter((s) => s.name === params.source) : config.sources;
}

/** A source's mapper, from the same check the startup runs (its key columns). */
export async function retryMapper(pool: pg.Pool, source: SourceConfig): Promise<SourceMapper> {
  const checked = await checkSource(pool, source);
  const blocking = checked.findings.filter((f) => !f.ok && !f.check.endsWith('replica identity'));
  if (blocking.length > 0 || !checked.keyColumns) {
    throw new SetupError(
      'RETRY_SOURCE',
      blocking.map((f) => `${f.check}: ${f.detail}${f.fix ? ` — fix: ${f.fix}` : ''}`).join('\n'),
    );
  }
  return new SourceMapper(source, checked.keyColumns);
}

export function emptyRetry(source: string): SourceRetry {
  return { source, rows: 0, outcomes: {}, sent: {}, stillFailed: [] };
}

/** Retries one source's failed rows on the lanes; resolves once every outcome is stored. */
export async function retrySource(
  ctx: RetryContext,
  source: SourceConfig,
  error?: string | null,
): Promise<SourceRetry> {
  const result = emptyRetry(source.name);
  const mapper = await retryMapper(ctx.pool, source);
  // Keyset paging: rows retried in this run leave `failed` (or stay behind the cursor).
  for await (const page of ctx.store.failedRows(source.name, PAGE, error)) {
    result.rows += page.length;
    await restatePage(ctx, source, mapper, page, result, {
      reread: (keys) => ctx.store.failedRowsByKey(source.name, keys),
    });
  }
  result.stillFailed = (await readFailures(ctx.pool, ctx.config.postgres.statusSchema, source.name, 20)).map(
    (f) => ({ rowKey: f.rowKey, error: f.error }),
  );
  return result;
}

/**
 * Retries the failed rows of every source (or one) on the lanes. With rows to retry, the platform
 * is asked first: unreachable or refusing the credentials, nothing is retried (BridgeError, exit 1
 * for a command). Rows answered before a later failure keep their new outcome.
 */
export async function runRetry(
  ctx: RetryContext,
  params: RetryParams,
  platform?: PlatformProbe,
): Promise<SourceRetry[]> {
  const sources = retrySources(ctx.config, params);
  const pending = await ctx.store.failedCounts(ctx.config.postgres.statusSchema);
  const todo = sources.filter((s) => (pending.get(s.name) ?? 0) > 0);
  if (todo.length > 0 && platform) await assertPlatform(platform);
  const results: SourceRetry[] = [];
  for (const source of sources)
    results.push(
      todo.includes(source) ? await retrySource(ctx, source, params.error) : emptyRetry(source.name),
    );
  return results;
}

/** Refuses to retry when the platform is unreachable or refuses the credentials. */
export async function assertPlatform(platform: PlatformProbe): Promise<void> {
  const probe = await platform.check();
  if (probe.reachable && probe.tokenAccepted) return;
  throw new BridgeError(
    'API_UNAVAILABLE',
    `${probe.reachable ? 'the platform refuses the credentials' : 'the platform is unreachable'} (${probe.detail}); nothing was retried`,
  );
}

/** What a page of failed rows would send, without sending (`--dry-run`). */
export async function planPage(
  pool: pg.Pool,
  source: SourceConfig,
  mapper: SourceMapper,
  page: readonly FailedRow[],
  result: SourceRetry,
): Promise<void> {
  result.rows += page.length;
  for (const p of (await plan(pool, source, mapper, page)).sends)
    for (const part of p.parts) result.sent[part.op] = (result.sent[part.op] ?? 0) + 1;
}

interface Plan {
  sends: Array<{ change: KeyChange; parts: Part[] }>;
  local: LocalOutcome[];
}

/**
 * How a restate of stored rows reads them (failed rows for a retry, held rows for an approval):
 * again by key, inside the lanes; and, for rows that are gone, what of their groups to remove.
 */
export interface RestateRows {
  reread(keys: readonly string[]): Promise<FailedRow[]>;
  /** A gone row's image with the groups to keep taken out (src/pipeline/live-groups.ts). */
  trim?(gone: ReadonlyArray<{ key: string; image: Image }>): Promise<Map<string, Image>>;
  /** Runs inside the lanes with the keys about to be sent (an approval tells the guard there). */
  inLanes?(keys: readonly string[]): Promise<void>;
}

/** Each key's calls, from its stored payload (`before`) and its current row (`after`). */
async function plan(
  pool: pg.Pool,
  source: SourceConfig,
  mapper: SourceMapper,
  failed: readonly FailedRow[],
  trim?: RestateRows['trim'],
): Promise<Plan> {
  const out: Plan = { sends: [], local: [] };
  const read: Array<{ f: FailedRow; before: Image | null; after: Image | null }> = [];
  for (const f of failed) {
    const key = JSON.parse(f.rowKey) as Record<string, unknown>;
    const row = await readRowByKey(pool, source.schema, source.tableName, mapper.columns, key);
    const after = row && mapper.passes(row) !== false ? mapper.image(row) : null;
    read.push({ f, before: f.payload ? imageFromPayload(f.payload) : null, after });
  }
  const gone = read.flatMap((r) => (r.before && !r.after ? [{ key: r.f.rowKey, image: r.before }] : []));
  const trimmed = trim && gone.length ? await trim(gone) : undefined;
  for (const { f, after, before: stored } of read) {
    const before = (trimmed && !after && trimmed.get(f.rowKey)) || stored;
    const change: KeyChange = {
      rowKey: f.rowKey,
      lsn: f.lsn,
      committedAt: f.committedAt,
      priorAttempts: f.attempts,
    };
    const effect = netEffect(source.mode, { before, after, restate: true });
    if (effect.kind === 'send') {
      change.failure = effect.failure;
      out.sends.push({ change, parts: effect.parts });
    } else {
      const op: OptType = after ? 'add' : 'delete';
      out.local.push({ change, op, status: effect.kind, error: effect.reason });
    }
  }
  return out;
}

/** The lanes a plan's keys and parts touch, as `lane\0name` texts. */
function touched(source: string, p: Plan): Set<string> {
  const names = new Set<string>();
  for (const s of [...p.sends.map((x) => x.change), ...p.local.map((l) => l.change)])
    names.add(`${keyLane(source)}\0${s.rowKey}`);
  for (const s of p.sends)
    for (const part of s.parts)
      for (const f of IDENTITY_FIELDS) {
        const v = part.identity[f];
        if (v !== undefined) names.add(`${identityLane(f)}\0${v}`);
      }
  return names;
}

/**
 * Restates a page of stored rows on the lanes: what they touch is read outside (a guess), those
 * lanes reserved, and inside them the rows are read again and sent; a key that now touches a lane
 * not reserved waits for the next round.
 */
export async function restatePage(
  ctx: RetryContext,
  source: SourceConfig,
  mapper: SourceMapper,
  page: readonly FailedRow[],
  result: SourceRetry,
  rows: RestateRows,
): Promise<void> {
  let keys = page.map((f) => f.rowKey);
  for (let round = 1; keys.length > 0 && round <= ROUNDS; round++) {
    // What the keys touch now, read outside the lanes (a guess: checked again inside).
    const guess = touched(
      source.name,
      await plan(ctx.pool, source, mapper, await rows.reread(keys), rows.trim),
    );
    const resources = new Resources();
    for (const t of guess) {
      const [lane, name] = t.split('\0') as [string, string];
      resources.add(lane, name);
    }
    const tried = keys;
    keys = await ctx.lanes.reserve(resources, async () => {
      // In the lanes: nothing else is sent for these keys and customers until this ends. A key
      // that now touches a lane not reserved waits for the next round. The rows may be newer than
      // the stream has seen: covered as maybe sent once read, before they leave.
      const now = await ctx.sent.coverRead([source.name], async () =>
        plan(ctx.pool, source, mapper, await rows.reread(tried), rows.trim),
      );
      const fits = (p: Plan): boolean => [...touched(source.name, p)].every((t) => guess.has(t));
      const ready: Plan = {
        sends: now.sends.filter((s) => fits({ sends: [s], local: [] })),
        local: now.local.filter((l) => fits({ sends: [], local: [l] })),
      };
      const done = new Set([...ready.sends.map((s) => s.change), ...ready.local.map((l) => l.change)]);
      await rows.inLanes?.([...done].map((c) => c.rowKey));
      await send(ctx, source, ready, result);
      return [...now.sends.map((s) => s.change), ...now.local.map((l) => l.change)]
        .filter((c) => !done.has(c))
        .map((c) => c.rowKey);
    });
  }
}

async function send(ctx: RetryContext, source: SourceConfig, p: Plan, result: SourceRetry): Promise<void> {
  const { delivery } = ctx.lanes;
  await delivery.record(source.name, p.local);
  for (const l of p.local) count(result, l.status);
  for (const s of p.sends) for (const part of s.parts) result.sent[part.op] = (result.sent[part.op] ?? 0) + 1;
  // A key's parts may go in several requests (an old identity cleared, the new one set): it counts
  // once, with the outcome of its last part.
  const outcome = new Map<KeyChange, RowStatus>();
  const byOp = requestRows(source.mode, p.sends);
  const size = ctx.config.batching.maxBatchSize;
  for (const op of OP_ORDER) {
    const rows = byOp.get(op) ?? [];
    for (let i = 0; i < rows.length; i += size) {
      const slice = rows.slice(i, i + size);
      const statuses = await delivery.deliver({ source, op, rows: slice, policy: 'command' });
      slice.forEach((r, k) => {
        for (const item of r.items) outcome.set(item.change, statuses[k] as RowStatus);
      });
    }
  }
  for (const [change, status] of outcome) count(result, change.failure ? 'failed' : status);
}

function count(result: SourceRetry, status: RowStatus): void {
  result.outcomes[status] = (result.outcomes[status] ?? 0) + 1;
}
