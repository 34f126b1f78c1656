/**
 * `tuzhan-cdc check`: everything `run` needs, checked without changing anything: the database
 * (reachable, wal_level, REPLICATION, the publication and the ownership of its tables, the status
 * schema, the slot), each source (table, SELECT, mapped columns, key, REPLICA IDENTITY) and the
 * platform (reachable, credentials accepted). Prints one row per finding and, under each failed
 * one, its fix; exits 3 when any failed.
 */
import type { Command } from 'commander';
import type { Config } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { redactText, silentLogger } from '../ops/logger.js';
import { checkServer, checkSource, type Finding } from '../source/checks.js';
import { sharedGroupFindings } from '../source/shared-groups.js';
import { TuzhanClient } from '../tuzhan/client.js';
import { quoteIdent } from '../util/sql.js';
import { CheckFailedError, loadConfigFromOptions, type GlobalOptions } from './common.js';
import { formatTable } from '../util/format.js';
import { connectDatabase, databaseLabel, printJson } from './output.js';

/** What `check` found, as `--json` prints it. */
export interface CheckReport {
  ok: boolean;
  database: string;
  platform: string;
  findings: Finding[];
}

/** Runs every check; never throws for a failed check (it becomes a finding). */
export async function runChecks(config: Config): Promise<CheckReport> {
  const findings = await databaseFindings(config);
  findings.push(...(await platformFindings(config)));
  return {
    ok: findings.every((f) => f.ok),
    database: databaseLabel(config),
    platform: config.tuzhan.baseUrl,
    findings,
  };
}

async function databaseFindings(config: Config): Promise<Finding[]> {
  let db;
  try {
    db = await connectDatabase(config, 'tuzhan-cdc check');
  } catch (err) {
    return [
      {
        check: 'database',
        ok: false,
        detail: redactText(errorMessage(err)),
        fix: 'check postgres.url (or DATABASE_URL): host, port, database, user and password, and that pg_hba.conf lets this host in',
      },
    ];
  }
  const findings: Finding[] = [];
  try {
    const who = await db.query<{ role: string; db: string }>(
      'SELECT current_user AS role, current_database() AS db',
    );
    const { role, db: dbName } = who.rows[0] as { role: string; db: string };
    findings.push({ check: 'database', ok: true, detail: `connected to ${dbName} as ${role}` });
    findings.push(...(await checkServer(db, config)));
    for (const source of config.sources) findings.push(...(await checkSource(db, source)).findings);
    findings.push(...(await sharedGroupFindings(db, config.sources)));
    // The catalog's fixes name the role and database generically; here we know them.
    for (const f of findings) {
      if (f.fix)
        f.fix = f.fix.replaceAll('<bridge role>', quoteIdent(role)).replaceAll('<db>', quoteIdent(dbName));
    }
  } catch (err) {
    findings.push({
      check: 'database queries',
      ok: false,
      detail: `reading the catalog failed: ${redactText(errorMessage(err))}`,
      fix: 'rerun with --verbose; the role may lack access to the system catalogs',
    });
  } finally {
    await db.end().catch(() => {});
  }
  return findings;
}

async function platformFindings(config: Config): Promise<Finding[]> {
  const client = new TuzhanClient(config.tuzhan, { logger: silentLogger() });
  try {
    const r = await client.check();
    if (!r.reachable) {
      return [
        {
          check: 'platform reachable',
          ok: false,
          detail: `${config.tuzhan.baseUrl}: ${r.detail}`,
          fix: 'check tuzhan.baseUrl (or TUZHAN_BASE_URL), and that this host can reach it (proxy, firewall, DNS)',
        },
      ];
    }
    const wrongPath = /HTTP 404/.test(r.detail);
    return [
      { check: 'platform reachable', ok: true, detail: `${config.tuzhan.baseUrl} answers` },
      {
        check: 'platform credentials',
        ok: r.tokenAccepted,
        detail: r.detail,
        fix: wrongPath ? 'check tuzhan.baseUrl and tuzhan.batchAddPath' : `check ${client.credentialsKey}`,
      },
    ];
  } finally {
    await client.close().catch(() => {});
  }
}

/** The findings as a table; a failed finding is followed by its fix. */
export function formatFindings(findings: readonly Finding[]): string {
  const rows: string[][] = [];
  for (const f of findings) {
    rows.push([f.check, f.ok ? (f.warn ? 'warn' : 'ok') : 'FAIL', f.detail]);
    if ((!f.ok || f.warn) && f.fix) rows.push(['', '', `fix: ${f.fix}`]);
  }
  return formatTable(['check', 'result', 'detail'], rows);
}

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'check the config, the database (wal_level, privileges, replica identity, publication, slot) and the platform; changes nothing',
    )
    .option('--json', 'print the findings as JSON')
    .addHelpText(
      'after',
      `
Each failed check is followed by the fix to apply (SQL to run or the config key to correct).
Exit status: 0 when everything passed, 3 when a check failed, 2 for a bad config.

Examples:
  tuzhan-cdc check --config config/bridge.yaml
  DATABASE_URL=postgres://bridge@db/crm tuzhan-cdc check --json | jq '.findings[] | select(.ok == false)'`,
    )
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>());
      const report = await runChecks(config);
      if (opts.json) {
        printJson(report);
      } else {
        process.stdout.write(`database: ${report.database}\nplatform: ${report.platform}\n\n`);
        process.stdout.write(formatFindings(report.findings));
      }
      const failed = report.findings.filter((f) => !f.ok).length;
      if (failed > 0) {
        throw new CheckFailedError(`${failed} of ${report.findings.length} checks failed`);
      }
      if (!opts.json) process.stdout.write(`\nall ${report.findings.length} checks passed\n`);
    });
}
