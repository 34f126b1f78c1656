/**
 * The demo's closing report: the status views an operator queries (`sync_summary`,
 * `sync_failures`), printed as tables, and a check that the platform (the simulator) holds the
 * groups the database says each sampled customer should have.
 */
import type pg from 'pg';
import type { IdentityField } from '../config/types.js';
import type { Simulator } from '../simulator/server.js';
import { readFailureSample, readSummary } from '../status/reads.js';
import { formatCount, formatTable } from '../util/format.js';
import { BridgeError } from '../errors.js';
import { DEMO_STATUS_SCHEMA, isUnknownMember } from './crm-sample.js';

type Out = NodeJS.WritableStream;

/** Prints `sync_summary` as a table. */
export async function printSummary(db: pg.ClientBase, schema: string, out: Out): Promise<void> {
  const rows = await readSummary(db, schema, null);
  out.write(`\n${schema}.sync_summary:\n`);
  out.write(
    formatTable(
      ['source', 'status', 'rows'],
      rows.map((r) => [r.source, r.status, formatCount(r.rows)]),
      'psql',
    ),
  );
}

/** Prints a few rows of `sync_failures`, newest first but at most two per kind of error. */
export async function printFailures(db: pg.ClientBase, schema: string, out: Out, limit = 6): Promise<void> {
  const { rows, total } = await readFailureSample(db, schema, limit);
  out.write(`\n${schema}.sync_failures (${rows.length} of ${formatCount(total)} rows):\n`);
  out.write(
    formatTable(
      ['source', 'row_key', 'op', 'error'],
      rows.map((r) => [r.source, r.rowKey, r.op, (r.error ?? '').slice(0, 100)]),
      'psql',
    ),
  );
}

export interface Comparison {
  checked: number;
  matched: number;
  /** The first few differences, for the report. */
  mismatches: string[];
}

function parseList(text: string | null): string[] {
  return [
    ...new Set(
      (text ?? '')
        .split(',')
        .map((g) => g.trim())
        .filter(Boolean),
    ),
  ].sort();
}

/**
 * Compares the platform with the database for a random sample of customers: profiles (by the
 * identity the platform keys them on: phone, else openid, else unionid) and members the platform
 * knows. A customer with no groups matches a platform that has none for it (or never heard of it).
 */
export async function comparePlatform(
  db: pg.ClientBase,
  sim: Simulator,
  perSource = 100,
): Promise<Comparison> {
  const result: Comparison = { checked: 0, matched: 0, mismatches: [] };
  const check = (who: string, field: IdentityField, value: string, expected: string[]): void => {
    const actual = [...(sim.groupsOf(field, value) ?? [])].sort();
    result.checked += 1;
    if (JSON.stringify(actual) === JSON.stringify(expected)) result.matched += 1;
    else if (result.mismatches.length < 5)
      result.mismatches.push(`${who}: database [${expected.join(',')}], platform [${actual.join(',')}]`);
  };

  const profiles = await db.query<{
    cust_no: string;
    mobile: string | null;
    wx_openid: string | null;
    wx_unionid: string | null;
    groups: string | null;
  }>(
    `SELECT cust_no, mobile, wx_openid, wx_unionid, "Group Names" AS groups FROM crm.customer_profile
      WHERE coalesce(mobile, wx_openid, wx_unionid) IS NOT NULL ORDER BY random() LIMIT $1`,
    [perSource],
  );
  for (const p of profiles.rows) {
    // The simulator keys a customer sent without matching on its first identity in this order.
    const [field, value] = (
      [
        ['phone', p.mobile],
        ['openid', p.wx_openid],
        ['unionid', p.wx_unionid],
      ] as Array<[IdentityField, string | null]>
    ).find(([, v]) => v !== null) as [IdentityField, string];
    check(`profile ${p.cust_no}`, field, value, parseList(p.groups));
  }

  const members = await db.query<{ member_id: string; groups: string[] }>(
    `SELECT member_id, array_agg(group_name ORDER BY group_name) AS groups FROM crm.member_group
      GROUP BY member_id ORDER BY random() LIMIT $1`,
    [perSource * 2],
  );
  const known = members.rows
    .filter((m) => !isUnknownMember(Number(m.member_id.slice(1))))
    .slice(0, perSource);
  for (const m of known) check(`member ${m.member_id}`, 'thirdId', m.member_id, [...m.groups].sort());
  return result;
}

/** Customers compared per source in the closing report. */
const SAMPLE_PER_SOURCE = 100;

/** The closing report: what changed, what the platform was sent, the status views, the comparison. */
export async function report(
  out: Out,
  db: pg.ClientBase,
  sim: Simulator,
  workload: { counts: ReadonlyMap<string, number>; total: number },
): Promise<void> {
  const kinds = [...workload.counts.entries()].map(([k, n]) => `${k} ${formatCount(n)}`).join(', ');
  out.write(`\nrows changed: ${formatCount(workload.total)} (${kinds})\n`);
  const s = sim.stats();
  out.write(
    `platform: ${formatCount(s.requests)} batchAdd requests, ${s.served429} answered HTTP 429 and retried by the bridge\n`,
  );
  await printSummary(db, DEMO_STATUS_SCHEMA, out);
  await printFailures(db, DEMO_STATUS_SCHEMA, out);
  const cmp = await comparePlatform(db, sim, SAMPLE_PER_SOURCE);
  out.write(`\nplatform matches database for ${cmp.matched}/${cmp.checked} sampled customers\n`);
  if (cmp.matched !== cmp.checked) {
    for (const m of cmp.mismatches) out.write(`  differs: ${m}\n`);
    throw new BridgeError(
      'DEMO_MISMATCH',
      `the platform differs from the database for ${cmp.checked - cmp.matched} sampled customers`,
    );
  }
}
