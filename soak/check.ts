/**
 * The soak's verdict, from an independent model: the platform (the simulator's state) must equal what
 * the tables imply, every customer's groups the union of its profile row's groups and its membership
 * pairs; and `sync_status` must be true, every row's outcome consistent with the table and with the
 * platform. Both read the tables and the platform directly, never the bridge's own bookkeeping.
 */
import pg from 'pg';
import type { Simulator } from '../src/simulator/server.js';

export interface Verdict {
  problems: string[];
  /** What was compared. */
  customers: number;
  statusRows: number;
}

const split = (groups: string | null | undefined): string[] =>
  (groups ?? '')
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean)
    .sort();

/** `customers`: every thirdId the writer named (the platform may hold no other). */
export async function verdict(
  url: string,
  statusSchema: string,
  sim: Simulator,
  customers: readonly string[],
): Promise<Verdict> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const problems: string[] = [];
    const profiles = (
      await db.query<{ k: string; groups: string | null }>(
        `SELECT cust_no AS k, "Group Names" AS groups FROM crm.customer_profile`,
      )
    ).rows;
    const pairs = (
      await db.query<{ id: string; member: string; grp: string }>(
        `SELECT id::text AS id, member_id AS member, group_name AS grp FROM crm.member_group`,
      )
    ).rows;

    // 1. The platform equals the tables, customer by customer (every identity the writer uses).
    const expected = new Map<string, Set<string>>();
    const add = (id: string, g: string): void =>
      void (expected.get(id) ?? expected.set(id, new Set()).get(id))?.add(g);
    for (const p of profiles) for (const g of split(p.groups)) add(p.k, g);
    for (const m of pairs) add(m.member, m.grp);
    const ids = customers;
    for (const id of ids) {
      const want = [...(expected.get(id) ?? [])].sort();
      const have = sim.groupsOf('thirdId', id) ?? [];
      if (JSON.stringify(want) !== JSON.stringify(have))
        problems.push(`platform: ${id} has [${have.join(',')}], the tables say [${want.join(',')}]`);
    }
    const stray = sim.stats().customersWithState - ids.filter((id) => sim.groupsOf('thirdId', id)).length;
    if (stray !== 0) problems.push(`platform: ${stray} customers the writer never named`);

    // 2. sync_status is true. Keys the tables hold: synced, and their last sent payload names the
    //    row's customer and, for a membership pair, its group; for a profile row, an add or update
    //    sent groups the row has, a delete groups it has not. Keys the tables no longer hold: their
    //    last outcome is a delete (synced, or skipped when it never reached the platform).
    const status = (
      await db.query<{
        source: string;
        k: string;
        op: string;
        status: string;
        payload: Record<string, string> | null;
      }>(
        `SELECT source, row_key::text AS k, op, status, payload FROM ${pg.escapeIdentifier(statusSchema)}.sync_status`,
      )
    ).rows;
    const byKey = new Map(status.map((s) => [`${s.source}\u0000${JSON.stringify(JSON.parse(s.k))}`, s]));
    const profileRows = new Map(profiles.map((p) => [JSON.stringify({ cust_no: p.k }), p]));
    const pairRows = new Map(pairs.map((m) => [JSON.stringify({ id: m.id }), m]));
    for (const [key, p] of profileRows) {
      const s = byKey.get(`profiles\u0000${key}`);
      const groups = split(p.groups);
      // A row that never had groups was never sent: skipped ("no groups to add") is its truth.
      if (s?.status === 'skipped' && groups.length === 0) continue;
      if (!s || s.status !== 'synced')
        problems.push(`sync_status: profiles ${key} is ${s ? s.status : 'missing'}`);
      else if (s.payload?.thirdId !== p.k)
        problems.push(`sync_status: profiles ${key} names ${s.payload?.thirdId}`);
      else {
        const sent = split(s.payload.groups);
        const ok =
          s.op === 'delete' ? sent.every((g) => !groups.includes(g)) : sent.every((g) => groups.includes(g));
        if (!ok)
          problems.push(`sync_status: profiles ${key} last ${s.op} [${sent}], the row has [${groups}]`);
      }
    }
    for (const [key, m] of pairRows) {
      const s = byKey.get(`memberships\u0000${key}`);
      if (!s || s.status !== 'synced')
        problems.push(`sync_status: memberships ${key} is ${s ? s.status : 'missing'}`);
      else if (s.op === 'delete' || s.payload?.thirdId !== m.member || s.payload?.groups !== m.grp)
        problems.push(
          `sync_status: memberships ${key} last ${s.op} ${JSON.stringify(s.payload)}, the row is ${m.member}/${m.grp}`,
        );
    }
    for (const s of status) {
      const key = JSON.stringify(JSON.parse(s.k));
      const held = s.source === 'profiles' ? profileRows.has(key) : pairRows.has(key);
      if (held) continue;
      if (s.op !== 'delete' || (s.status !== 'synced' && s.status !== 'skipped'))
        problems.push(
          `sync_status: ${s.source} ${key} is gone from the table, its outcome is ${s.op}/${s.status}`,
        );
    }
    return { problems, customers: ids.length, statusRows: status.length };
  } finally {
    await db.end();
  }
}
