/**
 * The soak's steady writer: small transactions on a few hot keys of both source shapes, a row per
 * customer (`crm.customer_profile`, groups as text) and a row per (customer, group) pair
 * (`crm.member_group`): inserts, group changes, moves and deletes, seeded. It rides out the
 * database's crashes and restarts (reconnects and goes on); a transaction whose COMMIT was cut off
 * may or may not have happened, which is why the end compares the platform with the tables as they
 * are, not with what the writer meant.
 */
import pg from 'pg';
import { rng } from './schedule.js';

export const SOAK_SCHEMA = `
  CREATE SCHEMA crm;
  CREATE TABLE crm.customer_profile (cust_no text PRIMARY KEY, "Group Names" text, note text);
  ALTER TABLE crm.customer_profile REPLICA IDENTITY FULL;
  CREATE TABLE crm.member_group (
    id bigserial PRIMARY KEY,
    member_id text NOT NULL,
    group_name text NOT NULL,
    UNIQUE (member_id, group_name)
  );
  ALTER TABLE crm.member_group REPLICA IDENTITY FULL;`;

/**
 * Customers of each shape, each shape with customers of its own (sources sharing a customer, each
 * removing only its own groups, are tested in test/integration/shared-customers.test.ts).
 */
export const HOT_KEYS = 40;
export const profileId = (i: number): string => `p${i}`;
export const memberId = (i: number): string => `m${i}`;
const PROFILE_GROUPS = ['a', 'b', 'c', 'd', 'e'];
const MEMBER_GROUPS = ['g0', 'g1', 'g2', 'g3', 'g4', 'g5'];

/**
 * Cold keys: customers written a few times just after they appear and then left alone. A change of
 * a hot key that went missing is soon overwritten by the next one; one of a cold key stays missing,
 * so the end's comparison sees it.
 */
export const coldProfileId = (n: number): string => `cp${n}`;
export const coldMemberId = (n: number): string => `cm${n}`;

export interface WriterStats {
  committed: number;
  /** Transactions that failed (a connection cut, a server going down); retried as new ones. */
  failed: number;
}

export interface Writer {
  stats: WriterStats;
  /** Every customer (thirdId) the writer has named so far. */
  customers(): string[];
  /** Stops after the transaction in progress; resolves once stopped. */
  stop(): Promise<void>;
}

/** Starts writing about `perSecond` transactions a second until stopped. */
export function startWriter(url: string, seed: number, perSecond: number): Writer {
  const next = rng(seed ^ 0x5eed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  const stats: WriterStats = { committed: 0, failed: 0 };
  const named = new Set<string>();
  for (let i = 0; i < HOT_KEYS; i++) named.add(profileId(i)).add(memberId(i));
  let cold = 0;
  let stopping = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  /** One transaction's statements: one to three changes on hot keys. */
  const transaction = (): Array<[string, unknown[]]> => {
    const out: Array<[string, unknown[]]> = [];
    for (let n = 1 + Math.floor(next() * 3); n > 0; n--) {
      const r = next();
      const p = profileId(Math.floor(next() * HOT_KEYS));
      const m = memberId(Math.floor(next() * HOT_KEYS));
      if (r < 0.4) {
        const groups = PROFILE_GROUPS.filter(() => next() < 0.4).join(',');
        out.push([
          `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ($1, $2)
           ON CONFLICT (cust_no) DO UPDATE SET "Group Names" = EXCLUDED."Group Names"`,
          [p, groups],
        ]);
      } else if (r < 0.48) {
        // A change the platform does not see (a CRM's everyday update).
        out.push([`UPDATE crm.customer_profile SET note = $2 WHERE cust_no = $1`, [p, String(next())]]);
      } else if (r < 0.55) {
        out.push([`DELETE FROM crm.customer_profile WHERE cust_no = $1`, [p]]);
      } else if (r < 0.78) {
        out.push([
          `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [m, pick(MEMBER_GROUPS)],
        ]);
      } else if (r < 0.9) {
        out.push([
          `DELETE FROM crm.member_group WHERE member_id = $1 AND group_name = $2`,
          [m, pick(MEMBER_GROUPS)],
        ]);
      } else {
        // A move: the pair changes customer or group (delete old pair, add new one).
        const to = next() < 0.5 ? memberId(Math.floor(next() * HOT_KEYS)) : m;
        const group = pick(MEMBER_GROUPS);
        out.push([
          `UPDATE crm.member_group SET member_id = $3, group_name = $4
            WHERE id = (SELECT id FROM crm.member_group WHERE member_id = $1 AND group_name = $2)
              AND NOT EXISTS (SELECT 1 FROM crm.member_group WHERE member_id = $3 AND group_name = $4)`,
          [m, pick(MEMBER_GROUPS), to, group],
        ]);
      }
    }
    // Half the transactions also touch a cold key: a new one, or one of the last few again.
    const c = next();
    if (c < 0.3) {
      cold += 1;
      const p = coldProfileId(cold);
      const m = coldMemberId(cold);
      named.add(p).add(m);
      out.push([
        `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ($1, $2)`,
        [p, PROFILE_GROUPS.filter(() => next() < 0.5).join(',') || 'a'],
      ]);
      out.push([
        `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2)`,
        [m, pick(MEMBER_GROUPS)],
      ]);
    } else if (c < 0.5 && cold > 0) {
      const n = Math.max(1, cold - Math.floor(next() * 10));
      const r = next();
      if (r < 0.4)
        out.push([
          `UPDATE crm.customer_profile SET "Group Names" = $2 WHERE cust_no = $1`,
          [coldProfileId(n), PROFILE_GROUPS.filter(() => next() < 0.5).join(',')],
        ]);
      else if (r < 0.6) out.push([`DELETE FROM crm.customer_profile WHERE cust_no = $1`, [coldProfileId(n)]]);
      else if (r < 0.8)
        out.push([
          `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [coldMemberId(n), pick(MEMBER_GROUPS)],
        ]);
      else out.push([`DELETE FROM crm.member_group WHERE member_id = $1`, [coldMemberId(n)]]);
    }
    return out;
  };

  const run = async (): Promise<void> => {
    let client: pg.Client | undefined;
    while (!stopping) {
      const started = Date.now();
      try {
        if (!client) {
          client = new pg.Client({ connectionString: url, application_name: 'soak writer' });
          client.on('error', () => {});
          await client.connect();
        }
        await client.query('BEGIN');
        for (const [sql, params] of transaction()) await client.query(sql, params);
        await client.query('COMMIT');
        stats.committed += 1;
      } catch {
        stats.failed += 1;
        await client?.end().catch(() => {});
        client = undefined;
        await pause(500);
        continue;
      }
      await pause(Math.max(0, 1000 / perSecond - (Date.now() - started)));
    }
    await client?.end().catch(() => {});
  };
  const done = run();
  return {
    stats,
    customers: () => [...named],
    async stop() {
      stopping = true;
      wake?.();
      await done;
    },
  };
}
