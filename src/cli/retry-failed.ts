/**
 * `tuzhan-cdc retry-failed [--source S] [--dry-run] [--json]`: sends the rows recorded as `failed`
 * again, as they are now, and stores their new outcomes (planning and delivery:
 * src/pipeline/retry-failed.ts). Exit 1 when the database or the platform cannot be reached.
 */
import type { Command } from 'commander';
import pg from 'pg';
import { OP_ORDER } from '../batching/coalesce.js';
import type { Config } from '../config/types.js';
import { Delivery } from '../delivery/delivery.js';
import { BridgeError, errorMessage } from '../errors.js';
import { redactText, silentLogger } from '../ops/logger.js';
import { retrySource, type SourceRetry } from '../pipeline/retry-failed.js';
import { SentMark } from '../status/sent-mark.js';
import { StatusStore } from '../status/status-store.js';
import { TuzhanClient } from '../tuzhan/client.js';
import { pgClientConfig } from '../util/pg-connection.js';
import { loadConfigFromOptions, UsageError, type GlobalOptions } from './common.js';
import { databaseLabel, printJson } from './output.js';

export interface RetryOptions {
  source?: string;
  dryRun?: boolean;
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
  const store = new StatusStore(pool, config.postgres.statusSchema, silentLogger());
  try {
    let pending: Map<string, number>;
    try {
      pending = await store.failedCounts(config.postgres.statusSchema);
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
    const o = {
      config,
      pool,
      store,
      sent: new SentMark(pool, config.postgres.statusSchema, config.postgres.slot, (_what, fn) => fn()),
      delivery: new Delivery({ sender: client, store }),
      dryRun: options.dryRun === true,
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
