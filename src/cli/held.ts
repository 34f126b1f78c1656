/**
 * `tuzhan-cdc held [--source S] [--approve | --reject] [--json]`: what the removal guard holds
 * (source, rows, since, reason), and an operator's decision about it (src/pipeline/held-command.ts:
 * run by the daemon that holds the slot, or here when none runs).
 */
import type { Command } from 'commander';
import type { HeldAction, HeldResult } from '../pipeline/held.js';
import { listHeld, settleHeldCommand } from '../pipeline/held-command.js';
import { OP_ORDER } from '../batching/coalesce.js';
import type { HeldGroup } from '../status/held.js';
import { formatCount, formatTable } from '../util/format.js';
import { loadConfigFromOptions, UsageError, withSignals, type GlobalOptions } from './common.js';
import { printJson } from './output.js';

/** `2024-05-01 10:00:00 UTC`: times as `status` and the console show them. */
function utc(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function formatList(groups: readonly HeldGroup[]): string {
  const rows = groups.map((g) => [g.source, formatCount(g.rows), utc(g.since), g.reason]);
  return formatTable(['source', 'rows', 'held since', 'reason'], rows);
}

function formatResults(action: HeldAction, results: readonly HeldResult[]): string {
  return `${results
    .map((r) => {
      const rows = `${formatCount(r.rows)} held row${r.rows === 1 ? '' : 's'}`;
      if (action === 'reject')
        return `${r.source}: rejected ${rows}; the platform keeps their groups (recorded skipped: rejected by an operator)`;
      const sent = OP_ORDER.filter((op) => r.sent[op])
        .map((op) => `${formatCount(r.sent[op] ?? 0)} ${op}`)
        .join(', ');
      const outcomes = Object.entries(r.outcomes)
        .map(([status, n]) => `${formatCount(n)} ${status}`)
        .join(', ');
      return `${r.source}: approved ${rows}, brought to what the table holds now (sent ${sent || 'nothing'}): ${outcomes || 'no outcome'}`;
    })
    .join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('held')
    .description('list the mass removals the guard holds for a person; approve or reject them')
    .option('--source <name>', 'only this source')
    .option('--approve', 'bring the held rows to what the table holds now (removing what is still gone)')
    .option('--reject', 'leave the platform as it is and record the held rows as skipped')
    .option('--json', 'print the list or the results as JSON')
    .addHelpText(
      'after',
      `
Why: a transaction (or a flush window) that would remove groups from more of a source's rows than
guard.maxRemovals allows (default: max(100, 10 % of the rows the source has in sync_status)) is not
sent: its rows are recorded 'held' in sync_status, with the reason, and later changes of those keys
are held with them. Nothing else stops: other keys flow, the slot advances.

--approve re-syncs the held keys as the table holds them now, in order with what the bridge
streams: a row restored meanwhile is set again, not removed; a row still gone loses only the groups
no other row of the source holds for its customer. --reject leaves the platform as it is.
While a bridge runs, it does the work (this waits); with none running, the work runs here.
Exit status: 0 when done, or when nothing is held; 1 when the database or platform cannot be
reached; 2 for an unknown source or both --approve and --reject.

Examples:
  tuzhan-cdc held
  tuzhan-cdc held --source profiles --approve
  tuzhan-cdc held --reject`,
    )
    .action(
      async (
        opts: { source?: string; approve?: boolean; reject?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>());
        if (opts.source !== undefined && !config.sources.some((s) => s.name === opts.source))
          throw new UsageError(
            `unknown source '${opts.source}' (sources: ${config.sources.map((s) => s.name).join(', ')})`,
          );
        if (opts.approve && opts.reject) throw new UsageError('--approve and --reject: choose one');
        const action: HeldAction | undefined = opts.approve ? 'approve' : opts.reject ? 'reject' : undefined;
        const where = opts.source ? ` for source ${opts.source}` : '';
        if (!action) {
          const groups = await listHeld(config, opts.source);
          if (opts.json) printJson({ held: groups });
          else if (groups.length === 0) process.stdout.write(`nothing is held${where}\n`);
          else process.stdout.write(formatList(groups));
          return;
        }
        // Handed to the daemon, the work goes on there if this stops waiting (Ctrl-C).
        const leave = new AbortController();
        let removeSignals: (() => void) | undefined;
        let results: HeldResult[];
        try {
          results = await settleHeldCommand(config, action, {
            source: opts.source,
            signal: leave.signal,
            onJob: (id) => {
              removeSignals = withSignals(
                async () => {
                  leave.abort();
                  process.stdout.write(`\n${action} job ${id} goes on in the bridge\n`);
                },
                { timeoutMs: 5000 },
              );
            },
          });
        } finally {
          removeSignals?.();
        }
        if (opts.json) printJson({ action, sources: results });
        else if (results.length === 0)
          process.stdout.write(`nothing is held${where}: nothing to ${action}\n`);
        else process.stdout.write(formatResults(action, results));
      },
    );
}
