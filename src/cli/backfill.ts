/**
 * `tuzhan-cdc backfill --source S [--where FILTER] [--detach]`: asks the running daemon to re-send a
 * source's current rows while it keeps streaming (src/pipeline/backfill.ts), and shows its progress
 * until every row has its outcome stored. The request is a row of `<statusSchema>.backfill`, which
 * the daemon watches; Ctrl-C leaves the backfill running there.
 */
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type pg from 'pg';
import { parse } from 'yaml';
import { whereSchema } from '../config/schema.js';
import type { Config } from '../config/types.js';
import { BridgeError } from '../errors.js';
import { readSlot } from '../source/slot.js';
import { requestBackfill } from '../status/jobs.js';
import { readBackfill } from '../status/reads.js';
import { statusSql } from '../status/sql.js';
import { sleep } from '../util/backoff.js';
import { formatCount } from '../util/format.js';
import { dryRunCommand, type DryRunOptions } from '../pipeline/dry-run.js';
import { loadConfigFromOptions, UsageError, withSignals, type GlobalOptions } from './common.js';
import { connectDatabase } from './output.js';

interface Progress {
  status: string;
  done: number;
  total: number | null;
  error: string | null;
}

/** A `--where` value: the syntax of `sources[].where`, as YAML or JSON (`{status: active}`). */
export function parseFilter(text: string | undefined): Record<string, unknown> | null {
  if (text === undefined) return null;
  let value: unknown;
  try {
    value = parse(text);
  } catch (err) {
    throw new UsageError(`--where: not YAML or JSON: ${(err as Error).message}`);
  }
  const parsed = whereSchema.safeParse(value);
  if (!parsed.success || typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError(
      `--where: expected a mapping of column to value or list of values, as sources[].where (e.g. '{status: active, tier: [gold, silver]}')`,
    );
  return parsed.data;
}

/**
 * Checks a daemon streams from the slot and records the request; resolves with the backfill's id
 * (an open one of the same source and filter, when there is one).
 */
export async function askForBackfill(
  db: pg.ClientBase,
  config: Config,
  source: string,
  filter: Record<string, unknown> | null,
): Promise<{ id: string; created: boolean }> {
  const { slot, statusSchema } = config.postgres;
  const sql = statusSql(statusSchema);
  const table = await db.query<{ ok: boolean }>(sql.backfillExists, [statusSchema]);
  if (!table.rows[0]?.ok)
    throw new BridgeError(
      'NO_DAEMON',
      `no bridge has run on this database yet: start \`tuzhan-cdc run\` first (the backfill runs inside it)`,
    );
  const state = await readSlot(db, slot);
  if (!state?.active)
    throw new BridgeError(
      'NO_DAEMON',
      `no bridge is streaming from slot ${slot}: start \`tuzhan-cdc run\` first (the backfill runs inside it)`,
    );
  return requestBackfill(db, statusSchema, slot, { source, filter, reason: 'requested' });
}

async function readProgress(db: pg.ClientBase, config: Config, id: string): Promise<Progress> {
  const p = await readBackfill(db, config.postgres.statusSchema, id);
  if (!p) throw new BridgeError('BACKFILL_GONE', `backfill ${id} is gone`);
  return p;
}

export function register(program: Command): void {
  program
    .command('backfill')
    .description(
      "re-send a source's current rows while the daemon keeps streaming; shows progress until done",
    )
    .requiredOption('--source <name>', 'the source to backfill')
    .option(
      '--where <filter>',
      "only rows matching this filter, as sources[].where (YAML): '{status: active}'",
    )
    .option('--detach', 'return once the request is recorded')
    .option('--dry-run', 'say what the backfill would add and remove, as the table is now, and send nothing')
    .addHelpText(
      'after',
      `
How: the request goes to the running daemon (a row of <statusSchema>.backfill). It reads the table
in key order, 1,000 rows at a time, between watermarks in the change stream, so a row changed while
it is read keeps its streamed state. A full backfill also removes from the platform the keys the
table no longer holds. Progress survives a restart of the daemon. Ctrl-C leaves it running;
\`tuzhan-cdc status\` lists running and finished backfills.
Exit status: 0 when every row has its outcome stored (or with --detach, once requested), 1 when no
daemon streams from the slot or the backfill failed, 2 for a bad --source or --where.

Examples:
  tuzhan-cdc backfill --source profiles
  tuzhan-cdc backfill --source memberships --where '{group_name: [vip, gold]}' --detach
  tuzhan-cdc backfill --source profiles --dry-run`,
    )
    .action(
      async (opts: { source: string; where?: string; detach?: boolean; dryRun?: boolean }, cmd: Command) => {
        const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>());
        if (!config.sources.some((s) => s.name === opts.source))
          throw new UsageError(
            `unknown source '${opts.source}' (sources: ${config.sources.map((s) => s.name).join(', ')})`,
          );
        const filter = parseFilter(opts.where);
        if (opts.dryRun) {
          const [line] = await dryRunCommand(config, {
            source: opts.source,
            ...(filter ? { filter: filter as DryRunFilter } : {}),
          });
          process.stdout.write(`${line ?? ''}\nnothing was sent (a dry run)\n`);
          return;
        }
        const db = await connectDatabase(config, 'tuzhan-cdc backfill');
        try {
          const { id, created } = await askForBackfill(db, config, opts.source, filter);
          process.stdout.write(
            created
              ? `backfill ${id} of source ${opts.source} requested\n`
              : `backfill ${id} of source ${opts.source} was asked for already; following it\n`,
          );
          if (!opts.detach) await follow(db, config, id);
        } finally {
          await db.end().catch(() => {});
        }
      },
    );
}

type DryRunFilter = NonNullable<DryRunOptions['filter']>;

/** Shows a backfill's progress until it is done (a bar on a terminal, a line every few seconds else). */
async function follow(db: pg.ClientBase, config: Config, id: string): Promise<void> {
  const stop = new AbortController();
  const removeSignals = withSignals(
    async () => {
      stop.abort();
      process.stdout.write(`\nbackfill ${id} goes on in the bridge; \`tuzhan-cdc status\` shows it\n`);
    },
    { timeoutMs: 5000 },
  );
  const tty = process.stdout.isTTY === true;
  const bar = new SingleBar({
    format: ' {bar} {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}',
    hideCursor: true,
  });
  const started = Date.now();
  let lastLine = 0;
  try {
    for (let p = await readProgress(db, config, id); ; p = await readProgress(db, config, id)) {
      const total = Math.max(p.total ?? 0, p.done);
      const rate = Math.round(p.done / Math.max(0.001, (Date.now() - started) / 1000));
      if (tty) {
        if (!bar.isActive) bar.start(total, p.done, { rate });
        bar.setTotal(total);
        bar.update(p.done, { rate });
      } else if (Date.now() - lastLine >= 5000 || p.status !== 'running') {
        lastLine = Date.now();
        process.stdout.write(`${p.status}: ${formatCount(p.done)} of ~${formatCount(total)} rows\n`);
      }
      if (p.status === 'done') {
        bar.stop();
        process.stdout.write(`backfill ${id} done: ${formatCount(p.done)} rows have their outcome stored\n`);
        return;
      }
      if (p.status === 'failed' || p.status === 'cancelled') {
        bar.stop();
        throw new BridgeError(
          'BACKFILL_FAILED',
          `backfill ${id} ${p.status}: ${p.error ?? 'no reason given'}`,
        );
      }
      await sleep(500, stop.signal);
      if (stop.signal.aborted) return;
    }
  } finally {
    bar.stop();
    removeSignals();
  }
}
