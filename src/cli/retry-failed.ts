/**
 * `tuzhan-cdc retry-failed [--source S]`: sends the rows recorded as `failed` in sync_status
 * again, as they are now, and stores the new outcomes.
 *
 * Design: the rows are sent directly to the platform, not through the replication stream. The
 * alternative, a no-op `UPDATE <table> SET <key> = <key>` that the running bridge would pick up,
 * writes to the CRM's own table: it fires the CRM's triggers, bumps its updated_at columns, takes
 * row locks and needs UPDATE privilege, none of which a sync tool should do to its source. Sending
 * directly reads the CURRENT row of each failed key (the source's own mapping, `SourceMapper`):
 * - row mode, row present: `update` with its identity and groups (replace: the platform ends
 *   with exactly the row's groups, whatever partial state the failed request left);
 * - membership mode, row present: `add` of the pair (membership rows of one customer merged);
 * - row gone or outside the source's `where`: `delete` of what was last sent for the key (the
 *   stored payload); nothing was ever sent -> `skipped`;
 * - a row that still cannot be mapped (no identity value) stays `failed` with the reason.
 * Outcomes are written like the bridge writes them (one sync_batch row per request), keeping the
 * key's `lsn` and `committed_at` (no new change happened) and adding to `attempts`.
 *
 * With a bridge running, a row changed at the very moment it is retried may reach the platform
 * in the wrong order (this command does not share the bridge's per-key ordering); the change
 * after it repairs it, and `update`/`add`/`delete` are idempotent, so retrying twice is harmless.
 */
import type { Command } from 'commander';
import pg from 'pg';
import { apiRow, identityKey, imageFromPayload, mergeGroups, publicParams } from '../batching/dispatcher.js';
import type { Config, SourceConfig } from '../config/types.js';
import { ApiRejectedError, ApiUnavailableError, BridgeError, SetupError, errorMessage } from '../errors.js';
import { SourceMapper } from '../mapping/source-mapper.js';
import type { RowStatus } from '../ops/events.js';
import { redactText, silentLogger } from '../ops/logger.js';
import { checkSource } from '../source/catalog.js';
import { StatusStore, answeredBatch, rejectedBatch, type StatusRow } from '../status/status-store.js';
import { TuzhanClient, type BatchResult } from '../tuzhan/client.js';
import type { ApiRow, OptType } from '../tuzhan/types.js';
import { backoffDelay, sleep } from '../util/backoff.js';
import { parseLsn } from '../util/lsn.js';
import { pgClientConfig } from '../util/pg-connection.js';
import { quoteIdent, quoteTable } from '../util/sql.js';
import { loadConfigFromOptions, UsageError, type GlobalOptions } from './common.js';
import { databaseLabel, printJson } from './output.js';

/** A sync_status row in status `failed`. */
interface FailedRow {
  rowKey: string;
  attempts: number;
  lsn: bigint;
  committedAt: Date;
  payload: Record<string, unknown> | null;
}

/** What to send for one failed key. */
interface Planned {
  failed: FailedRow;
  op: OptType;
  payload: ApiRow;
}

interface RequestRow {
  row: ApiRow;
  items: Planned[];
}

export interface SourceRetry {
  source: string;
  /** Failed rows looked at. */
  rows: number;
  /** New outcomes, by op and status. */
  outcomes: Partial<Record<RowStatus, number>>;
  sent: Partial<Record<OptType, number>>;
  /** Keys still failed afterwards (at most 20), with their errors. */
  stillFailed: Array<{ rowKey: unknown; error: string | null }>;
}

const PAGE = 500;
/** Transient failures are retried a few times here, not forever as in the daemon: an operator waits. */
const SEND_TRIES = 4;
const OP_ORDER: OptType[] = ['delete', 'update', 'add'];

export interface RetryOptions {
  source?: string;
  dryRun?: boolean;
}

class Retrier {
  private readonly store: StatusStore;

  constructor(
    private readonly config: Config,
    private readonly pool: pg.Pool,
    private readonly client: TuzhanClient,
    private readonly dryRun: boolean,
  ) {
    this.store = new StatusStore(pool, config.postgres.statusSchema, silentLogger());
  }

  async retrySource(source: SourceConfig): Promise<SourceRetry> {
    const result: SourceRetry = { source: source.name, rows: 0, outcomes: {}, sent: {}, stillFailed: [] };
    const checked = await checkSource(this.pool, source);
    const blocking = checked.findings.filter((f) => !f.ok && !f.check.endsWith('replica identity'));
    if (blocking.length > 0 || !checked.keyColumns) {
      throw new SetupError(
        'RETRY_SOURCE',
        blocking.map((f) => `${f.check}: ${f.detail}${f.fix ? ` — fix: ${f.fix}` : ''}`).join('\n'),
      );
    }
    const mapper = new SourceMapper(source, checked.keyColumns);
    const statusTable = `${quoteIdent(this.config.postgres.statusSchema)}.sync_status`;
    let after: string | null = null;
    for (;;) {
      // Keyset paging: rows retried in this run leave `failed` (or stay behind the cursor).
      const page: pg.QueryResult<{
        k: string;
        attempts: number;
        lsn: string | null;
        committed_at: Date | null;
        payload: Record<string, unknown> | null;
      }> = await this.pool.query(
        `SELECT row_key::text AS k, attempts, lsn::text AS lsn, committed_at, payload FROM ${statusTable}
          WHERE source = $1 AND status = 'failed' AND ($2::jsonb IS NULL OR row_key > $2::jsonb)
          ORDER BY row_key LIMIT $3`,
        [source.name, after, PAGE],
      );
      if (page.rows.length === 0) break;
      after = (page.rows[page.rows.length - 1] as { k: string }).k;
      const failed: FailedRow[] = page.rows.map((r) => ({
        rowKey: JSON.stringify(JSON.parse(r.k)),
        attempts: r.attempts,
        lsn: r.lsn ? parseLsn(r.lsn) : 0n,
        committedAt: r.committed_at ?? new Date(),
        payload: r.payload,
      }));
      result.rows += failed.length;
      await this.retryPage(source, mapper, failed, result);
      if (page.rows.length < PAGE) break;
    }
    if (!this.dryRun) {
      const still = await this.pool.query<{ row_key: unknown; error: string | null }>(
        `SELECT row_key, error FROM ${statusTable} WHERE source = $1 AND status = 'failed' ORDER BY row_key LIMIT 20`,
        [source.name],
      );
      result.stillFailed = still.rows.map((r) => ({ rowKey: r.row_key, error: r.error }));
    }
    return result;
  }

  private async retryPage(
    source: SourceConfig,
    mapper: SourceMapper,
    failed: FailedRow[],
    result: SourceRetry,
  ): Promise<void> {
    const planned: Planned[] = [];
    const local: StatusRow[] = [];
    for (const f of failed) {
      const current = await this.readRow(source, mapper, JSON.parse(f.rowKey) as Record<string, unknown>);
      if (current && mapper.passes(current) !== false) {
        const image = mapper.image(current);
        const op: OptType = source.mode === 'row' ? 'update' : 'add';
        if (image.error) {
          local.push(statusRow(f, op, 'failed', image.error, null, 0));
        } else {
          planned.push({ failed: f, op, payload: apiRow(source.match, image.identity, image.groups ?? []) });
        }
      } else if (f.payload && Object.keys(imageFromPayload(f.payload).identity).length > 0) {
        const before = imageFromPayload(f.payload);
        planned.push({
          failed: f,
          op: 'delete',
          payload: apiRow(source.match, before.identity, before.groups ?? []),
        });
      } else {
        local.push(statusRow(f, 'delete', 'skipped', 'the row is gone and nothing was sent for it', null, 0));
      }
    }
    for (const p of planned) result.sent[p.op] = (result.sent[p.op] ?? 0) + 1;
    if (this.dryRun) return;
    if (local.length) {
      await this.store.writeRequest(source.name, null, local);
      for (const l of local) count(result, l.status, 1);
    }
    for (const op of OP_ORDER) {
      const rows = mergeRows(
        source,
        planned.filter((p) => p.op === op),
      );
      for (let i = 0; i < rows.length; i += this.config.batching.maxBatchSize) {
        await this.sendRows(source, op, rows.slice(i, i + this.config.batching.maxBatchSize), result);
      }
    }
  }

  private async readRow(
    source: SourceConfig,
    mapper: SourceMapper,
    key: Record<string, unknown>,
  ): Promise<Record<string, unknown> | null> {
    const cols = mapper.keyColumns;
    const where = cols.map((c, i) => `${quoteIdent(c)} = $${i + 1}`).join(' AND ');
    const res = await this.pool.query<Record<string, unknown>>(
      `SELECT ${mapper.columns.map(quoteIdent).join(', ')} FROM ${quoteTable(source.schema, source.tableName)} WHERE ${where}`,
      cols.map((c) => key[c]),
    );
    return res.rows[0] ?? null;
  }

  /** Sends one request (a few tries on transient failures); halves a batch the platform rejects whole. */
  private async sendRows(
    source: SourceConfig,
    op: OptType,
    rows: RequestRow[],
    result: SourceRetry,
  ): Promise<void> {
    const startedAt = new Date();
    let answer: BatchResult | undefined;
    let tries = 0;
    while (!answer) {
      tries += 1;
      try {
        answer = await this.client.sendOnce(
          publicParams(source.match, op),
          rows.map((r) => r.row),
        );
      } catch (err) {
        if (err instanceof ApiUnavailableError && tries < SEND_TRIES) {
          await sleep(backoffDelay(tries, { baseMs: 500, maxMs: 5000 }));
          continue;
        }
        if (!(err instanceof ApiRejectedError)) throw err;
        await this.store.writeRequest(
          source.name,
          rejectedBatch(op, rows.length, startedAt, err),
          rows.length === 1
            ? statusRows(rows, () => ['failed', `rejected by the platform: ${err.message}`], tries)
            : [],
        );
        if (rows.length === 1) {
          count(result, 'failed', rows[0]?.items.length ?? 0);
          return;
        }
        const half = Math.ceil(rows.length / 2);
        await this.sendRows(source, op, rows.slice(0, half), result);
        await this.sendRows(source, op, rows.slice(half), result);
        return;
      }
    }
    const done = answer;
    const outcome = (i: number): [RowStatus, string | null] => {
      const o = done.outcomes[i] ?? { status: 'synced' };
      return o.status === 'failed' ? ['failed', o.error] : [o.status, null];
    };
    await this.store.writeRequest(
      source.name,
      answeredBatch(op, rows.length, startedAt, done),
      statusRows(rows, outcome, tries),
    );
    rows.forEach((r, i) => count(result, outcome(i)[0], r.items.length));
  }
}

function count(result: SourceRetry, status: RowStatus, n: number): void {
  result.outcomes[status] = (result.outcomes[status] ?? 0) + n;
}

function statusRow(
  f: FailedRow,
  op: OptType,
  status: RowStatus,
  error: string | null,
  payload: ApiRow | null,
  tries: number,
): StatusRow {
  return {
    rowKey: f.rowKey,
    op,
    status,
    attempts: f.attempts + tries,
    error,
    lsn: f.lsn,
    committedAt: f.committedAt,
    payload: payload ?? f.payload,
  };
}

function statusRows(
  rows: RequestRow[],
  outcome: (i: number) => [RowStatus, string | null],
  tries: number,
): StatusRow[] {
  return rows.flatMap((r, i) => {
    const [status, error] = outcome(i);
    return r.items.map((p) => statusRow(p.failed, p.op, status, error, p.payload, tries));
  });
}

/** Membership rows of one customer become one API row, as the bridge sends them. */
function mergeRows(source: SourceConfig, planned: Planned[]): RequestRow[] {
  if (source.mode !== 'membership') return planned.map((p) => ({ row: { ...p.payload }, items: [p] }));
  const byCustomer = new Map<string, RequestRow>();
  for (const p of planned) {
    const k = identityKey(imageFromPayload(p.payload as Record<string, unknown>).identity);
    const existing = byCustomer.get(k);
    if (existing) {
      const groups = mergeGroups(existing.row.groups, p.payload.groups);
      if (groups === undefined) delete existing.row.groups;
      else existing.row.groups = groups;
      existing.items.push(p);
    } else {
      byCustomer.set(k, { row: { ...p.payload }, items: [p] });
    }
  }
  return [...byCustomer.values()];
}

/**
 * Retries the failed rows of every source (or one). Throws BridgeError (exit 1) when the
 * database or the platform cannot be reached; rows answered before that keep their new outcome.
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
  try {
    let pending: Map<string, number>;
    try {
      pending = await failedCounts(pool, config.postgres.statusSchema);
    } catch (err) {
      throw new BridgeError(
        'DB_UNREACHABLE',
        `cannot read sync_status via postgres.url (${databaseLabel(config)}): ${redactText(errorMessage(err))}`,
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
    const retrier = new Retrier(config, pool, client, options.dryRun === true);
    const results: SourceRetry[] = [];
    for (const source of sources) {
      results.push(
        todo.includes(source)
          ? await retrier.retrySource(source)
          : { source: source.name, rows: 0, outcomes: {}, sent: {}, stillFailed: [] },
      );
    }
    return results;
  } finally {
    await client.close().catch(() => {});
    await pool.end().catch(() => {});
  }
}

/** Failed rows per source; empty when the status schema does not exist yet. */
async function failedCounts(pool: pg.Pool, statusSchema: string): Promise<Map<string, number>> {
  const exists = await pool.query<{ ok: boolean }>(
    `SELECT to_regclass(format('%I.sync_status', $1::text)) IS NOT NULL AS ok`,
    [statusSchema],
  );
  if (!exists.rows[0]?.ok) return new Map();
  const res = await pool.query<{ source: string; n: string }>(
    `SELECT source, count(*)::text AS n FROM ${quoteIdent(statusSchema)}.sync_status WHERE status = 'failed' GROUP BY source`,
  );
  return new Map(res.rows.map((r) => [r.source, Number(r.n)]));
}

function formatResults(results: SourceRetry[], dryRun: boolean): string {
  const out: string[] = [];
  for (const r of results) {
    if (r.rows === 0) {
      out.push(`${r.source}: no failed rows`);
      continue;
    }
    const sent = OP_ORDER.filter((op) => r.sent[op])
      .map((op) => `${r.sent[op]} ${op}`)
      .join(', ');
    if (dryRun) {
      out.push(`${r.source}: ${r.rows} failed rows; would send ${sent || 'nothing'}`);
      continue;
    }
    const outcomes = Object.entries(r.outcomes)
      .map(([status, n]) => `${n} ${status}`)
      .join(', ');
    out.push(`${r.source}: retried ${r.rows} failed rows (sent ${sent || 'nothing'}): ${outcomes}`);
    for (const f of r.stillFailed) out.push(`  still failed: ${JSON.stringify(f.rowKey)}: ${f.error ?? ''}`);
  }
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('retry-failed')
    .description(
      'send the rows recorded as failed in sync_status again, as they are now, and store the new outcomes',
    )
    .option('--source <name>', 'only this source')
    .option('--dry-run', 'only say what would be sent')
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      `
How: each failed key's CURRENT row is read from the source table and sent directly to the
platform (row mode: update with its groups; membership: add of the pair; a row that is gone:
delete of what was last sent). The source tables are not written to (no no-op UPDATE, so no
triggers fire). Outcomes go to sync_status and sync_batch as the bridge records them. Safe while
the bridge runs; sending twice is harmless.
Exit status: 0 when done (some rows may still fail: see the output), 1 when the platform or the
database cannot be reached.

Examples:
  tuzhan-cdc retry-failed
  tuzhan-cdc retry-failed --source memberships --dry-run`,
    )
    .action(async (opts: { source?: string; dryRun?: boolean; json?: boolean }, cmd: Command) => {
      const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>());
      if (opts.source !== undefined && !config.sources.some((s) => s.name === opts.source)) {
        throw new UsageError(
          `unknown source '${opts.source}' (sources: ${config.sources.map((s) => s.name).join(', ')})`,
        );
      }
      const results = await retryFailed(config, { source: opts.source, dryRun: opts.dryRun });
      if (opts.json) printJson({ dryRun: opts.dryRun === true, sources: results });
      else process.stdout.write(formatResults(results, opts.dryRun === true));
    });
}
