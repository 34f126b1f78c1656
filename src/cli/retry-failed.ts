/**
 * `tuzhan-cdc retry-failed [--source S] [--dry-run] [--json]`: sends the rows recorded as `failed`
 * again, as they are now, and stores their new outcomes: in the running daemon, on its per-key
 * lanes, or here when no daemon runs (src/pipeline/retry-command.ts). Exit 1 when the database or
 * the platform cannot be reached.
 */
import type { Command } from 'commander';
import { OP_ORDER } from '../batching/coalesce.js';
import { retryFailed } from '../pipeline/retry-command.js';
import type { SourceRetry } from '../pipeline/retry-failed.js';
import { loadConfigFromOptions, UsageError, withSignals, type GlobalOptions } from './common.js';
import { printJson } from './output.js';

export { retryFailed, type RetryOptions } from '../pipeline/retry-command.js';

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
platform (its groups added, and those last sent that it no longer holds deleted; a row that is
gone: delete of what was last sent). The source tables are not written to (no no-op UPDATE, so no
triggers fire). Outcomes go to sync_status and sync_batch as the bridge records them. While a
bridge runs, it does the retry (this waits for it), in order with the changes it streams, so a
customer never has two requests in flight at once; with no bridge running, the retry runs here.
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
      // Handed to the daemon, the retry goes on there if this stops waiting (Ctrl-C).
      const leave = new AbortController();
      let removeSignals: (() => void) | undefined;
      let results: SourceRetry[];
      try {
        results = await retryFailed(config, {
          source: opts.source,
          dryRun: opts.dryRun,
          signal: leave.signal,
          onJob: (id) => {
            removeSignals = withSignals(
              async () => {
                leave.abort();
                process.stdout.write(
                  `\nretry job ${id} goes on in the bridge; \`tuzhan-cdc status\` shows it\n`,
                );
              },
              { timeoutMs: 5000 },
            );
          },
        });
      } finally {
        removeSignals?.();
      }
      if (opts.json) printJson({ dryRun: opts.dryRun === true, sources: results });
      else process.stdout.write(formatResults(results, opts.dryRun === true));
    });
}
