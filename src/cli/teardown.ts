/**
 * `tuzhan-cdc teardown`: removes what the bridge created in the CRM database: the replication
 * slot (which pins WAL while it exists), the publication and, only when asked, the status schema.
 * Without `--yes` it only says what it would drop. A slot a bridge is streaming from is left alone
 * unless `--force` (which ends that walsender first); a slot of another database is never dropped.
 * A publication the bridge did not create, or that another slot reads (or may), is left alone
 * unless `--force` too (src/source/publication-use.ts says how that is known).
 */
import type { Command } from 'commander';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { BridgeError } from '../errors.js';
import { readPublicationUse, reasonToKeep, type PublicationUse } from '../source/publication-use.js';
import { dropSlot, readSlot, terminateAndDropSlot } from '../source/slot.js';
import { statusSql } from '../status/sql.js';
import { quoteIdent } from '../util/sql.js';
import { loadConfigFromOptions, UsageError, type GlobalOptions } from './common.js';
import { connectDatabase, databaseLabel } from './output.js';

interface TeardownOptions {
  yes?: boolean;
  force?: boolean;
  dropStatusSchema?: boolean;
}

interface Plan {
  slot: { exists: boolean; active: boolean; activePid: number | null; database: string | null };
  publication: PublicationUse;
  statusSchema: boolean;
  currentDatabase: string;
}

async function readPlan(db: pg.Client, config: Config): Promise<Plan> {
  const { slot, publication, statusSchema } = config.postgres;
  const info = (await readSlot(db, slot)) ?? undefined;
  const other = await db.query<{ db: string; schema: boolean }>(
    `SELECT current_database() AS db, EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema`,
    [statusSchema],
  );
  const o = other.rows[0] as { db: string; schema: boolean };
  return {
    slot: {
      exists: info !== undefined,
      active: info?.active ?? false,
      activePid: info?.activePid ?? null,
      database: info?.database ?? null,
    },
    publication: await readPublicationUse(db, publication, slot),
    statusSchema: o.schema,
    currentDatabase: o.db,
  };
}

function describePlan(config: Config, plan: Plan, opts: TeardownOptions): string[] {
  const { slot, publication, statusSchema } = config.postgres;
  const lines: string[] = [];
  if (!plan.slot.exists) lines.push(`replication slot ${slot}: does not exist`);
  else if (plan.slot.database !== plan.currentDatabase)
    lines.push(`replication slot ${slot}: belongs to database ${plan.slot.database}; left alone`);
  else
    lines.push(
      `replication slot ${slot}: drop${plan.slot.active ? ` (ACTIVE: a bridge streams from it, pid ${plan.slot.activePid ?? '?'})` : ''}`,
    );
  lines.push(`publication ${publication}: ${publicationPlan(plan.publication, opts)}`);
  if (opts.dropStatusSchema) {
    lines.push(
      `status schema ${quoteIdent(statusSchema)}: ${plan.statusSchema ? 'drop with everything in it (CASCADE): sync_status, sync_batch, views, migrations' : 'does not exist'}`,
    );
  } else if (plan.statusSchema) {
    lines.push(`status schema ${quoteIdent(statusSchema)}: kept (--drop-status-schema drops it)`);
  }
  return lines;
}

/** What becomes of the publication: dropped, left alone (and why), or not there. */
function publicationPlan(use: PublicationUse, opts: TeardownOptions): string {
  if (!use.exists) return 'does not exist';
  const keep = reasonToKeep(use);
  if (keep === undefined) return 'drop';
  return opts.force ? `drop (--force), although ${keep}` : `left alone: ${keep}; --force drops it`;
}

/** Drops what the plan names; returns what was done, one line each. */
async function execute(db: pg.Client, config: Config, plan: Plan, opts: TeardownOptions): Promise<string[]> {
  const { slot, publication, statusSchema } = config.postgres;
  const done: string[] = [];
  if (plan.slot.exists && plan.slot.database === plan.currentDatabase) {
    if (plan.slot.active) {
      if (!opts.force) {
        throw new BridgeError(
          'SLOT_ACTIVE',
          `replication slot ${slot} is active (a bridge streams from it, pid ${plan.slot.activePid ?? '?'}): ` +
            'stop the bridge first, or add --force to end that connection; nothing was dropped',
        );
      }
      await terminateAndDropSlot(db, slot);
      done.push(`ended the walsender of slot ${slot} (pid ${plan.slot.activePid ?? '?'})`);
      done.push(`dropped replication slot ${slot}`);
    } else if (await dropSlot(db, slot)) {
      done.push(`dropped replication slot ${slot}`);
    }
  }
  if (plan.publication.exists) {
    const keep = reasonToKeep(plan.publication);
    if (keep === undefined || opts.force) {
      await db.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`);
      done.push(`dropped publication ${publication}`);
    } else {
      done.push(`left publication ${publication} alone: ${keep}; --force drops it`);
    }
  }
  if (plan.statusSchema) {
    const schema = quoteIdent(statusSchema);
    if (opts.dropStatusSchema) {
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      done.push(`dropped status schema ${schema}`);
    } else {
      // The slot's snapshot record goes with the slot: a new slot starts with a new snapshot.
      const sql = statusSql(statusSchema);
      const state = await db.query<{ ok: boolean }>(sql.stateExists, [statusSchema]);
      if (state.rows[0]?.ok) await db.query(sql.forgetSlot, [slot]);
    }
  }
  return done;
}

export function register(program: Command): void {
  program
    .command('teardown')
    .description('drop the replication slot and the publication (and optionally the status schema)')
    .option('--yes', 'really drop; without it, only print what would be dropped (exit 2)')
    .option(
      '--force',
      'also when a bridge is streaming from the slot (end its connection first), and drop a publication the bridge did not create or another slot reads',
    )
    .option('--drop-status-schema', 'also drop the status schema with sync_status and sync_batch (CASCADE)')
    .addHelpText(
      'after',
      `
The slot pins WAL on the server for as long as it exists: drop it when the bridge is retired.
A slot that is active (a bridge streams from it) is refused unless --force. A publication is
dropped only when the bridge created it and no other slot reads it (or may), unless --force:
one a DBA made for the bridge, or from a bridge older than the mark it leaves, stays. The status
schema is kept unless --drop-status-schema. Run the bridge again later and it starts over with a new
slot and a full snapshot of the source tables.

Examples:
  tuzhan-cdc teardown                         # print what would be dropped
  tuzhan-cdc teardown --yes
  tuzhan-cdc teardown --yes --drop-status-schema`,
    )
    .action(async (opts: TeardownOptions, cmd: Command) => {
      const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>());
      const db = await connectDatabase(config, 'tuzhan-cdc teardown');
      try {
        const plan = await readPlan(db, config);
        const lines = describePlan(config, plan, opts);
        if (!opts.yes) {
          process.stdout.write(
            `database ${databaseLabel(config)}; teardown would:\n${lines.map((l) => `  ${l}`).join('\n')}\n`,
          );
          throw new UsageError('nothing dropped: add --yes to drop');
        }
        const done = await execute(db, config, plan, opts);
        process.stdout.write(done.length ? `${done.join('\n')}\n` : 'nothing to drop\n');
      } finally {
        await db.end().catch(() => {});
      }
    });
}
