/**
 * The demo's sample CRM: two tables in the two source shapes of docs/design.md, "Sources", seeded with a few
 * thousand customers, the platform registry the simulator matches members against, and the
 * bridge config that reads them. Kept apart from test/helpers (tests must not be a runtime
 * dependency) and from docker/crm-init.sql (which also creates roles for a non-superuser bridge).
 *
 * Customers of the two sources are disjoint (profiles `P00001`, members `M00001`), so the final
 * report compares each platform customer with one table. Sources may share customers (each removes
 * only the groups it put there); test/integration/shared-customers.test.ts shows it.
 */
import type pg from 'pg';
import { loadConfig } from '../config/load-config.js';
import type { Config } from '../config/types.js';
import type { RegistryEntry } from '../simulator/model.js';

export const DEMO_TOKEN = 'demo-token';
export const DEMO_SLOT = 'tuzhan_demo';
export const DEMO_STATUS_SCHEMA = 'tuzhan_sync';

/** Group names of the row-mode profiles (a comma-separated column) and of the memberships. */
export const PROFILE_GROUPS = [
  'vip',
  'newsletter',
  'trial',
  'churn-risk',
  'birthday-club',
  'app-users',
  '北京',
];
export const MEMBER_GROUPS = ['gold', 'silver', 'bronze', 'spring-campaign', 'store-pickup', '上海门店'];

export const CRM_SAMPLE_SCHEMA = `
  CREATE SCHEMA crm;
  CREATE TABLE crm.customer_profile (
    cust_no       text PRIMARY KEY,
    mobile        text,
    wx_openid     text,
    wx_unionid    text,
    "Group Names" text,
    updated_at    timestamptz NOT NULL DEFAULT now()
  );
  -- DELETEs must carry the identity and groups columns, not just the key (REPLICA IDENTITY FULL).
  ALTER TABLE crm.customer_profile REPLICA IDENTITY FULL;
  CREATE TABLE crm.member_group (
    id         bigserial PRIMARY KEY,
    member_id  text NOT NULL,
    group_name text NOT NULL,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (member_id, group_name)
  );
  ALTER TABLE crm.member_group REPLICA IDENTITY FULL;
`;

/** How big the sample is; everything derives from the number of profiles. */
export interface SampleSize {
  profiles: number;
  /** Members with memberships at the start. */
  members: number;
  /** Member ids the workload may use (the seeded ones and later joiners). */
  memberPool: number;
}

export function sampleSize(profiles: number): SampleSize {
  const members = Math.max(10, Math.round((profiles * 2) / 3));
  return { profiles, members, memberPool: Math.round(members * 1.25) };
}

export const profileId = (n: number): string => `P${String(n).padStart(5, '0')}`;
export const memberId = (n: number): string => `M${String(n).padStart(5, '0')}`;
export const seedPhone = (n: number): string => `138${String(n).padStart(8, '0')}`;

/** Members the platform does not know (every tenth, from 7): their memberships fail as unmatched. */
export function isUnknownMember(n: number): boolean {
  return n % 10 === 7;
}

/** The simulator's registry: every member of the pool except the unknown ones. */
export function platformRegistry(size: SampleSize): RegistryEntry[] {
  const out: RegistryEntry[] = [];
  for (let n = 1; n <= size.memberPool; n++) if (!isUnknownMember(n)) out.push({ thirdId: memberId(n) });
  return out;
}

/** A small seeded PRNG (mulberry32): the same sample on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` distinct names from `names`, in the list's order. */
export function pickGroups(random: () => number, names: readonly string[], count: number): string[] {
  const picked = new Set<string>();
  while (picked.size < Math.min(count, names.length))
    picked.add(names[Math.floor(random() * names.length)] as string);
  return names.filter((n) => picked.has(n));
}

/**
 * Creates the tables and the starting rows. Profiles mostly have a phone, some a WeChat openid or
 * unionid, and one in 250 none of them (a walk-in prospect): those fail locally, never sent.
 */
export async function seedCrm(db: pg.ClientBase, size: SampleSize): Promise<{ memberships: number }> {
  const random = seededRandom(20240601);
  await db.query(CRM_SAMPLE_SCHEMA);
  const p = { id: [] as string[], mobile: [] as (string | null)[], openid: [] as (string | null)[] };
  const unionid: (string | null)[] = [];
  const groups: string[] = [];
  for (let n = 1; n <= size.profiles; n++) {
    const anonymous = n % 250 === 0;
    p.id.push(profileId(n));
    p.mobile.push(anonymous || n % 10 === 0 ? null : seedPhone(n));
    p.openid.push(!anonymous && (n % 3 === 0 || n % 10 === 0) ? `o-wx-${n}` : null);
    unionid.push(!anonymous && n % 7 === 0 ? `u-wx-${n}` : null);
    // One in twenty without groups: nothing to add, recorded as `skipped`.
    const count = random() < 0.05 ? 0 : 1 + Math.floor(random() * 3);
    groups.push(pickGroups(random, PROFILE_GROUPS, count).join(','));
  }
  await db.query(
    `INSERT INTO crm.customer_profile (cust_no, mobile, wx_openid, wx_unionid, "Group Names")
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])`,
    [p.id, p.mobile, p.openid, unionid, groups],
  );
  const mIds: string[] = [];
  const mGroups: string[] = [];
  for (let n = 1; n <= size.members; n++) {
    for (const g of pickGroups(random, MEMBER_GROUPS, 1 + Math.floor(random() * 3))) {
      mIds.push(memberId(n));
      mGroups.push(g);
    }
  }
  await db.query(
    `INSERT INTO crm.member_group (member_id, group_name) SELECT * FROM unnest($1::text[], $2::text[])`,
    [mIds, mGroups],
  );
  return { memberships: mIds.length };
}

export interface DemoConfigOptions {
  databaseUrl: string;
  apiUrl: string;
  /** `host:port` of the ops endpoint, or "off". */
  listen: string;
}

/**
 * The bridge config the demo runs with, as YAML (also written next to the log, so a reader can
 * see what a real config for these tables looks like). Profiles are matched by phone or WeChat
 * ids, not by the CRM's own number; memberships by member id with fuzzy matching.
 */
export function demoConfigYaml(o: DemoConfigOptions): string {
  return `postgres:
  url: ${o.databaseUrl}
  slot: ${DEMO_SLOT}
  publication: ${DEMO_SLOT}
  statusSchema: ${DEMO_STATUS_SCHEMA}
tuzhan:
  baseUrl: ${o.apiUrl}
  token: ${DEMO_TOKEN}
  timeoutMs: 5000
  concurrency: 4
batching:
  maxBatchSize: 500
  debounceMs: 200
  maxWaitMs: 2000
  maxBufferedRows: 10000
http:
  listen: "${o.listen}"
log:
  level: info
sources:
  - name: profiles
    table: crm.customer_profile
    mode: row
    key: [cust_no]
    columns: { phone: mobile, openid: wx_openid, unionid: wx_unionid, groups: "Group Names" }
    match: { isMatching: false }
  - name: memberships
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
`;
}

export function demoConfig(o: DemoConfigOptions): Config {
  return loadConfig({ text: demoConfigYaml(o), env: {} });
}
