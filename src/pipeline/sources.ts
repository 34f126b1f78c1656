/**
 * The sources as the pipeline runs them, from the startup checks (docs/design.md, "What the WAL does not carry"): each source's
 * table, key and replica identity are checked against the catalog, and a source that passes gets
 * its mapper. Any failed finding stops the start with one line per problem and its fix.
 */
import type pg from 'pg';
import { keyWithOrigin } from '../config/origins.js';
import type { Config, SourceConfig } from '../config/types.js';
import type { SourceRuntime } from '../mapping/runtime.js';
import { SetupError, errorMessage } from '../errors.js';
import { SourceMapper } from '../mapping/source-mapper.js';
import { checkServer, checkSource, type Finding } from '../source/checks.js';
import { readRowByKey } from '../source/snapshot.js';
import type { StatusStore } from '../status/status-store.js';
import { guardCheckedOut } from '../util/sql.js';

/** Fails startup with every failed finding, one line each, with its fix. */
export function assertFindings(findings: Finding[]): void {
  const failed = findings.filter((f) => !f.ok);
  if (failed.length) {
    throw new SetupError(
      'STARTUP_CHECK',
      failed.map((f) => `${f.check}: ${f.detail}${f.fix ? ` — fix: ${f.fix}` : ''}`).join('\n'),
      { findings: failed.map((f) => ({ problem: `${f.check}: ${f.detail}`, remedy: f.fix })) },
    );
  }
}

/** Checks the server and every source; resolves with the runtimes, or throws the findings. */
export async function loadSources(
  pool: pg.Pool,
  config: Config,
  store: StatusStore,
): Promise<SourceRuntime[]> {
  // Current rows by key (unchanged TOAST values), retried like the status writes.
  const rowReader =
    (source: SourceConfig, mapper: SourceMapper): SourceRuntime['readRow'] =>
    (key) =>
      store.withRetry('reading a source row', () =>
        readRowByKey(pool, source.schema, source.tableName, mapper.columns, key),
      );
  const db = await pool.connect().catch((err: unknown) => {
    const key = keyWithOrigin(config, 'postgres.url');
    throw new SetupError('DB_UNREACHABLE', `cannot connect to ${key}: ${errorMessage(err)}`, {
      cause: err,
    });
  });
  const unguard = guardCheckedOut(db);
  try {
    const findings = await checkServer(db, config);
    const runtimes: SourceRuntime[] = [];
    for (const source of config.sources) {
      const r = await checkSource(db, source);
      findings.push(...r.findings);
      if (!r.keyColumns || !r.table) continue;
      const table = r.table;
      const mapper = new SourceMapper(source, r.keyColumns);
      runtimes.push({
        config: source,
        mapper,
        keyTypes: r.keyColumns.map((c) => table.columns.get(c)?.type ?? 'text'),
        readRow: rowReader(source, mapper),
      });
    }
    // A lost slot is the start's to handle (stop with the remedy, or re-sync: src/pipeline/first-start.ts).
    assertFindings(findings.filter((f) => f.check !== 'WAL headroom'));
    return runtimes;
  } finally {
    unguard();
    db.release();
  }
}

/** Whether pgoutput sends logical decoding messages (the backfills' watermarks): PostgreSQL 14+. */
export async function sendsMessages(pool: pg.Pool): Promise<boolean> {
  const res = await pool.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Number(res.rows[0]?.v ?? 0) >= 140_000;
}

/** The platform's own check (TuzhanClient.check): reachable, and the credentials accepted. */
export interface PlatformProbe {
  check(): Promise<{ reachable: boolean; tokenAccepted: boolean; detail: string }>;
}

/**
 * A first start creates the schema, the publication and a slot that pins WAL from then on, then
 * sends the snapshot: with credentials the platform refuses, or no platform at all, it would do all
 * that and then retry forever. So it asks first, as `check` does, and refuses with the answer.
 */
export async function probePlatform(sender: Partial<PlatformProbe>): Promise<void> {
  const probe = await sender.check?.();
  if (!probe || (probe.reachable && probe.tokenAccepted)) return;
  throw new SetupError(
    probe.reachable ? 'PLATFORM_REFUSED' : 'PLATFORM_UNREACHABLE',
    `${probe.reachable ? 'the platform refuses the credentials' : 'the platform cannot be reached'} (${probe.detail}); nothing was created: fix it and start again`,
  );
}
