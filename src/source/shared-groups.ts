/**
 * Group names that two sources both use (`check`). Each source removes only the groups it put
 * there, but the platform keeps a set per customer, not a count: a name that two sources both put
 * on one customer goes when either removes it. Read from the first rows of each table (a sample,
 * so `check` stays quick on large ones); a name found in two sources is a warning naming them.
 */
import type pg from 'pg';
import type { SourceConfig } from '../config/types.js';
import { parseGroups } from '../mapping/source-mapper.js';
import { quoteIdent, quoteTable } from '../util/sql.js';
import type { Finding } from './finding.js';

/** Rows read per source: enough to see the names a table uses, quick on any table. */
const SAMPLE = 10_000;
/** Names shown per pair of sources. */
const SHOWN = 5;

export async function sharedGroupFindings(
  db: Pick<pg.ClientBase, 'query'>,
  sources: readonly SourceConfig[],
  sample = SAMPLE,
): Promise<Finding[]> {
  if (sources.length < 2) return [];
  const names = new Map<string, Set<string>>();
  for (const s of sources) {
    const col = quoteIdent(s.columns.groups);
    // A table the role cannot read is reported by its own findings; it has no names here.
    const res = await db
      .query<{ g: unknown }>(`SELECT ${col} AS g FROM ${quoteTable(s.schema, s.tableName)} LIMIT $1`, [
        sample,
      ])
      .catch(() => ({ rows: [] as Array<{ g: unknown }> }));
    const set = new Set<string>();
    for (const r of res.rows) {
      const groups = s.mode === 'membership' ? [String(r.g ?? '').trim()] : (parseGroups(r.g) ?? []);
      for (const g of groups) if (g !== '') set.add(g);
    }
    names.set(s.name, set);
  }
  const findings: Finding[] = [];
  for (let i = 0; i < sources.length; i++)
    for (let j = i + 1; j < sources.length; j++) {
      const a = sources[i] as SourceConfig;
      const b = sources[j] as SourceConfig;
      const other = names.get(b.name) ?? new Set<string>();
      const both = [...(names.get(a.name) ?? [])].filter((g) => other.has(g)).sort();
      if (both.length === 0) continue;
      const shown = both
        .slice(0, SHOWN)
        .map((g) => JSON.stringify(g))
        .join(', ');
      findings.push({
        check: `sources ${a.name} and ${b.name}: group names`,
        ok: true,
        warn: true,
        detail: `both use ${both.length > SHOWN ? `${both.length} group names, among them ` : ''}${shown}: a customer both put such a group on loses it when either removes it`,
        fix: 'give each group name one source (or one writer, if people set groups on the platform too)',
      });
    }
  if (findings.length === 0)
    findings.push({
      check: 'group names',
      ok: true,
      detail: `no group name is used by two sources (in the first ${sample.toLocaleString('en-US')} rows of each table)`,
    });
  return findings;
}
