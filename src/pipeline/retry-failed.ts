/**
 * `retry-failed`: planning plus delivery. Each failed key's CURRENT row is read and the calls that
 * set the platform to it are planned as for a replayed change (src/batching/coalesce.ts: what the
 * failed request may have left is `before`, the row now is `after`, and the state is restated);
 * the requests go through the delivery unit like the daemon's, a few tries each (an operator waits).
 *
 * Design: the rows are sent directly, not through the replication stream. A no-op `UPDATE <table>
 * SET <key> = <key>` that the running bridge would pick up writes to the CRM's own table: it fires
 * the CRM's triggers, bumps its updated_at columns, takes row locks and needs UPDATE privilege, none
 * of which a sync tool should do to its source. Running beside the bridge is safe: the sent position
 * is covered first (a replay then sets state rather than skip), and all operations set state.
 */
import pg from 'pg';
import { netEffect, OP_ORDER, type Part } from '../batching/coalesce.js';
import { requestRows, type Deliverer, type KeyChange, type LocalOutcome } from '../delivery/requests.js';
import type { Config, SourceConfig } from '../config/types.js';
import type { OptType, RowStatus } from '../domain/types.js';
import { Delivery } from '../delivery/delivery.js';
import { BridgeError, errorMessage, SetupError } from '../errors.js';
import { SourceMapper } from '../mapping/source-mapper.js';
import { redactText, redactUrl, silentLogger } from '../ops/logger.js';
import { checkSource } from '../source/checks.js';
import { readRowByKey } from '../source/snapshot.js';
import { SentMark } from '../status/sent-mark.js';
import { StatusStore, type FailedRow } from '../status/status-store.js';
import { TuzhanClient } from '../tuzhan/client.js';
import { imageFromPayload } from '../tuzhan/rows.js';
import { pgClientConfig } from '../util/pg-connection.js';

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

export interface RetryFailedOptions {
  config: Config;
  pool: pg.Pool;
  store: StatusStore;
  sent: SentMark;
  delivery: Deliverer;
  dryRun: boolean;
  /**
   * Only the failed rows with this error (null: those without one): a group of the web console's
   * failures page. Undefined: every failed row.
   */
  error?: string | null;
}

const PAGE = 500;

export interface RetryOptions {
  source?: string;
  dryRun?: boolean;
  /** Only the failed rows with this error (see RetryFailedOptions.error). */
  error?: string | null;
}

/**
 * `tuzhan-cdc retry-failed` and the console's retry button: retries the failed rows of every source
 * (or one), on connections of its own. Throws BridgeError (exit 1) when the database or the platform
 * cannot be reached; rows answered before that keep their new outcome.
 */
export async function retryFailed(config: Config, options: RetryOptions): Promise<SourceRetry[]> {
  const sources = options.source ? config.sources.filter((s) => s.name === options.source) : config.sources;
  const pool = new pg.Pool({
    ...pgClientConfig(config.postgres, 'tuzhan-cdc retry-failed'),
    max: 2,
    connectionTimeoutMillis: 10_000,
  });
  pool.on('error', () => {});
  const client = new TuzhanClient(config.tuzhan, { logger: silentLogger() });
  const store = new StatusStore(pool, config.postgres.statusSchema, silentLogger());
  try {
    let pending: Map<string, number>;
    try {
      pending = await store.failedCounts(config.postgres.statusSchema);
    } catch (err) {
      throw new BridgeError(
        'DB_UNREACHABLE',
        `cannot read sync_status via postgres.url (${redactUrl(config.postgres.url)}): ${redactText(errorMessage(err))}`,
        { cause: err },
      );
    }
    const todo = sources.filter((s) => (pending.get(s.name) ?? 0) > 0);
    if (todo.length > 0 && !options.dryRun) {
      const probe = await client.check();
      if (!probe.reachable || !probe.tokenAccepted) {
        throw new BridgeError(
          'API_UNAVAILABLE',
          `${probe.reachable ? 'the platform refuses the credentials' : 'the platform is unreachable'} (${probe.detail}); nothing was retried`,
        );
      }
    }
    const o: RetryFailedOptions = {
      config,
      pool,
      store,
      sent: new SentMark(pool, config.postgres.statusSchema, config.postgres.slot, (_what, fn) => fn()),
      delivery: new Delivery({ sender: client, store }),
      dryRun: options.dryRun === true,
      error: options.error,
    };
    const results: SourceRetry[] = [];
    for (const source of sources) {
      results.push(
        todo.includes(source)
          ? await retrySource(o, source)
          : { source: source.name, rows: 0, outcomes: {}, sent: {}, stillFailed: [] },
      );
    }
    return results;
  } finally {
    store.close();
    await client.close().catch(() => {});
    await pool.end().catch(() => {});
  }
}

/** Retries one source's failed rows. */
export async function retrySource(o: RetryFailedOptions, source: SourceConfig): Promise<SourceRetry> {
  const result: SourceRetry = { source: source.name, rows: 0, outcomes: {}, sent: {}, stillFailed: [] };
  const checked = await checkSource(o.pool, source);
  const blocking = checked.findings.filter((f) => !f.ok && !f.check.endsWith('replica identity'));
  if (blocking.length > 0 || !checked.keyColumns) {
    throw new SetupError(
      'RETRY_SOURCE',
      blocking.map((f) => `${f.check}: ${f.detail}${f.fix ? ` — fix: ${f.fix}` : ''}`).join('\n'),
    );
  }
  const mapper = new SourceMapper(source, checked.keyColumns);
  if (!o.dryRun) await o.sent.coverServerPosition([source.name]);
  // Keyset paging: rows retried in this run leave `failed` (or stay behind the cursor).
  for await (const page of o.store.failedRows(source.name, PAGE, o.error)) {
    result.rows += page.length;
    await retryPage(o, source, mapper, page, result);
  }
  if (!o.dryRun) result.stillFailed = await o.store.newestFailures(source.name, 20);
  return result;
}

async function retryPage(
  o: RetryFailedOptions,
  source: SourceConfig,
  mapper: SourceMapper,
  failed: readonly FailedRow[],
  result: SourceRetry,
): Promise<void> {
  const planned: Array<{ change: KeyChange; parts: readonly Part[] }> = [];
  const local: LocalOutcome[] = [];
  for (const f of failed) {
    const key = JSON.parse(f.rowKey) as Record<string, unknown>;
    const row = await readRowByKey(o.pool, source.schema, source.tableName, mapper.columns, key);
    const after = row && mapper.passes(row) !== false ? mapper.image(row) : null;
    const before = f.payload ? imageFromPayload(f.payload) : null;
    const change: KeyChange = {
      rowKey: f.rowKey,
      lsn: f.lsn,
      committedAt: f.committedAt,
      priorAttempts: f.attempts,
    };
    const effect = netEffect(source.mode, { before, after, restate: true });
    if (effect.kind === 'send') {
      change.failure = effect.failure;
      planned.push({ change, parts: effect.parts });
      for (const p of effect.parts) result.sent[p.op] = (result.sent[p.op] ?? 0) + 1;
    } else {
      const op: OptType = after ? 'add' : 'delete';
      local.push({ change, op, status: effect.kind, error: effect.reason });
    }
  }
  if (o.dryRun) return;
  await o.delivery.record(source.name, local);
  for (const l of local) count(result, l.status, 1);
  // A key's parts may go in several requests (an old identity cleared, the new one set): it counts
  // once, with the outcome of its last part.
  const outcome = new Map<KeyChange, RowStatus>();
  const byOp = requestRows(source.mode, planned);
  for (const op of OP_ORDER) {
    const rows = byOp.get(op) ?? [];
    for (let i = 0; i < rows.length; i += o.config.batching.maxBatchSize) {
      const slice = rows.slice(i, i + o.config.batching.maxBatchSize);
      const statuses = await o.delivery.deliver({ source, op, rows: slice, policy: 'command' });
      slice.forEach((r, k) => {
        for (const item of r.items) outcome.set(item.change, statuses[k] as RowStatus);
      });
    }
  }
  for (const [change, status] of outcome) count(result, change.failure ? 'failed' : status, 1);
}

function count(result: SourceRetry, status: RowStatus, n: number): void {
  result.outcomes[status] = (result.outcomes[status] ?? 0) + n;
}
