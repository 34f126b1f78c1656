/**
 * The demo's change generator: what a CRM does all day to the two sample tables, one small
 * transaction at a time at a steady rate. Each kind of change exercises a path of the bridge:
 * groups edits (row mode: the groups gained added, those lost deleted), phone changes (identity changes: delete the old identity, add
 * the new one), deletes, membership adds and removes (merged per customer), group moves
 * (membership UPDATE = delete old pair + add new pair), a campaign touching many members in one
 * transaction, and now and then a prospect with no identity at all (failed locally, never sent).
 */
import type pg from 'pg';
import { sleep } from '../util/backoff.js';
import {
  MEMBER_GROUPS,
  PROFILE_GROUPS,
  memberId,
  pickGroups,
  profileId,
  seededRandom,
  type SampleSize,
} from './crm-sample.js';

export type ChangeKind =
  | 'new customer'
  | 'new prospect without identity'
  | 'groups edited'
  | 'phone changed'
  | 'customer deleted'
  | 'member joined a group'
  | 'member left a group'
  | 'member moved to another group'
  | 'campaign: members joined';

/** Relative frequencies of the kinds of change. */
const WEIGHTS: ReadonlyArray<[ChangeKind, number]> = [
  ['new customer', 12],
  ['new prospect without identity', 1],
  ['groups edited', 30],
  ['phone changed', 8],
  ['customer deleted', 5],
  ['member joined a group', 22],
  ['member left a group', 15],
  ['member moved to another group', 5],
  ['campaign: members joined', 2],
];
const TOTAL_WEIGHT = WEIGHTS.reduce((s, [, w]) => s + w, 0);

export class Workload {
  /** Rows changed so far, by kind. */
  readonly counts = new Map<ChangeKind, number>();
  private readonly random = seededRandom(7);
  /** Profiles the generator edits: those with an identity (prospects are left alone). */
  private readonly profiles: string[] = [];
  private nextProfile: number;
  private nextPhone = 1;

  constructor(
    private readonly db: pg.ClientBase,
    private readonly size: SampleSize,
  ) {
    this.nextProfile = size.profiles + 1;
    for (let n = 1; n <= size.profiles; n++) if (n % 250 !== 0) this.profiles.push(profileId(n));
  }

  /** Rows changed so far. */
  get total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }

  /**
   * Runs one change per `1000 / rate` ms until `durationMs` has passed or `signal` aborts. The
   * schedule does not drift: a slow statement is made up for by a shorter pause.
   */
  async run(rate: number, durationMs: number, signal: AbortSignal): Promise<void> {
    const interval = 1000 / rate;
    const start = Date.now();
    for (let i = 1; !signal.aborted && Date.now() - start < durationMs; i++) {
      await this.step();
      await sleep(Math.max(0, start + i * interval - Date.now()), signal);
    }
  }

  /** Makes one change (one transaction) of a randomly chosen kind. */
  async step(): Promise<ChangeKind> {
    let r = this.random() * TOTAL_WEIGHT;
    const kind = (WEIGHTS.find(([, w]) => (r -= w) < 0) ?? ['groups edited'])[0];
    const changed = await this.apply(kind);
    if (changed > 0) this.counts.set(kind, (this.counts.get(kind) ?? 0) + changed);
    return kind;
  }

  private pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.random() * list.length)] as T;
  }

  private randomMember(): string {
    return memberId(1 + Math.floor(this.random() * this.size.memberPool));
  }

  private profileGroups(): string {
    return pickGroups(this.random, PROFILE_GROUPS, 1 + Math.floor(this.random() * 3)).join(',');
  }

  private newPhone(): string {
    return `139${String(this.nextPhone++).padStart(8, '0')}`;
  }

  private async apply(kind: ChangeKind): Promise<number> {
    const q = async (sql: string, params: unknown[]): Promise<number> =>
      (await this.db.query(sql, params)).rowCount ?? 0;
    switch (kind) {
      case 'new customer': {
        const id = profileId(this.nextProfile++);
        this.profiles.push(id);
        const openid = this.random() < 0.3 ? `o-wx-new-${id}` : null;
        return q(
          `INSERT INTO crm.customer_profile (cust_no, mobile, wx_openid, "Group Names") VALUES ($1, $2, $3, $4)`,
          [id, this.newPhone(), openid, this.profileGroups()],
        );
      }
      case 'new prospect without identity':
        return q(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ($1, 'trial')`, [
          profileId(this.nextProfile++),
        ]);
      case 'groups edited':
        return q(
          `UPDATE crm.customer_profile SET "Group Names" = $2, updated_at = now() WHERE cust_no = $1`,
          [this.pick(this.profiles), this.profileGroups()],
        );
      case 'phone changed':
        return q(`UPDATE crm.customer_profile SET mobile = $2, updated_at = now() WHERE cust_no = $1`, [
          this.pick(this.profiles),
          this.newPhone(),
        ]);
      case 'customer deleted': {
        const i = Math.floor(this.random() * this.profiles.length);
        const [id] = this.profiles.splice(i, 1);
        return q(`DELETE FROM crm.customer_profile WHERE cust_no = $1`, [id]);
      }
      case 'member joined a group':
        return q(
          `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [this.randomMember(), this.pick(MEMBER_GROUPS)],
        );
      case 'member left a group':
        return q(
          `DELETE FROM crm.member_group WHERE id = (SELECT id FROM crm.member_group WHERE member_id = $1 LIMIT 1)`,
          [this.randomMember()],
        );
      case 'member moved to another group':
        return q(
          `UPDATE crm.member_group SET group_name = $2
            WHERE id = (SELECT id FROM crm.member_group WHERE member_id = $1 LIMIT 1)
              AND NOT EXISTS (SELECT 1 FROM crm.member_group WHERE member_id = $1 AND group_name = $2)`,
          [this.randomMember(), this.pick(MEMBER_GROUPS)],
        );
      case 'campaign: members joined': {
        const members = Array.from({ length: 25 }, () => this.randomMember());
        return q(
          `INSERT INTO crm.member_group (member_id, group_name)
           SELECT DISTINCT m, 'spring-campaign' FROM unnest($1::text[]) AS m ON CONFLICT DO NOTHING`,
          [members],
        );
      }
    }
  }
}
