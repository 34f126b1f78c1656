/**
 * A platform with a quota (issue 26), over real HTTP with a real PostgreSQL: the simulator takes N
 * requests a second and answers 429 with Retry-After past them. The bridge learns the quota from
 * those answers, with one limiter for every sender. Asserted as counts and orderings, never as
 * durations (rates are the benchmark's to measure): the refusals stay few while the quota falls
 * from 5 to 2 and rises to 10 mid-run, everything drains and the platform ends equal to the tables,
 * no two requests about one customer are ever in flight at once, and a Retry-After of 3 s holds
 * back every sender, the stream, a retry-failed job and an approval of held rows, whoever was refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiRow } from '../../src/tuzhan/types.js';
import { startCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  DEFAULT_SOURCES,
  eventually,
  expectedGroups,
  startTestBridge,
  statusRows,
  testConfigYaml,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const SLOT = 'quota_learned';
/** Small requests: many of them, and several in flight. */
const batching = { maxBatchSize: 10, debounceMs: 20, maxWaitMs: 100 };
/** Memberships hold a removal from more than 5 rows, for an approval to send (the last test). */
const sources = DEFAULT_SOURCES.replace(
  'mode: membership\n',
  'mode: membership\n    guard: { maxRemovals: 5 }\n',
);

/** A request the platform took: when, and the customers it carried. */
interface Taken {
  at: number;
  ids: string[];
}

describe('a platform quota, learned', () => {
  const taken: Taken[] = [];
  const refusals: Array<{ at: number; retryAfterSeconds: number }> = [];
  let onRefused: (() => void) | undefined;
  const fx = usePipelineFixture('quota learned', {
    per: 'file',
    simulator: {
      onRows: (_op, rows: readonly ApiRow[], at) =>
        void taken.push({ at, ids: rows.map((r) => r.thirdId ?? '') }),
      onRefused: (at, retryAfterSeconds) => {
        refusals.push({ at, retryAfterSeconds });
        onRefused?.();
      },
    },
  });
  let bridge: TestBridge | undefined;

  beforeAll(async () => {
    expect(sources).toContain('guard:');
    bridge = await startTestBridge({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url, batching, sources });
  });
  afterAll(async () => {
    await bridge?.stop();
  });

  const requests = (): number => {
    const s = fx.sim.stats().byOptType;
    return s.add.requests + s.update.requests + s.delete.requests;
  };

  it('keeps refusals few while the quota falls from 5 to 2 and rises to 10, and drains everything', async () => {
    // Failed rows for the retries of the next test: a platform rejecting two customers' requests.
    fx.sim.setFaults({ rejectRequestsWith: 'bad-p' });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('bad-p', 'r1')`);
    await waitForCatchUp(fx.db, SLOT);
    fx.sim.setFaults({ rejectRequestsWith: 'bad-m' });
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('bad-m', 'r1'), ('bad-m', 'r2')`,
    );
    await waitForCatchUp(fx.db, SLOT);
    fx.sim.setFaults({ rejectRequestsWith: '' });

    fx.sim.setFaults({ rateLimit: 5 });
    const before = requests();
    // 1,000 customers at once (about a hundred requests), and while they drain, the same customers
    // keep changing: the stream's newer requests queue behind the older ones for each customer.
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'c' || i, 'g0' FROM generate_series(1, 1000) i`,
    );
    let writing = true;
    const writer = (async () => {
      for (let n = 1; writing; n++) {
        await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = $2 WHERE cust_no = $1`, [
          `c${1 + ((n * 37) % 1000)}`,
          `w${n}`,
        ]);
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    const changes: Array<{ at: number; quota: number }> = [];
    try {
      // The quota changes by how much went through, not by time.
      await eventually(() => expect(requests() - before).toBeGreaterThanOrEqual(30), 60_000, 20);
      fx.sim.setFaults({ rateLimit: 2 });
      changes.push({ at: Date.now(), quota: 2 });
      await eventually(() => expect(requests() - before).toBeGreaterThanOrEqual(55), 60_000, 20);
      fx.sim.setFaults({ rateLimit: 10 });
      changes.push({ at: Date.now(), quota: 10 });
    } finally {
      writing = false;
      await writer;
    }
    await waitForCatchUp(fx.db, SLOT, 120_000);
    fx.sim.setFaults({ rateLimit: 0 });

    // The moments: requests were taken at each quota.
    const [fell, rose] = changes as unknown as [{ at: number }, { at: number }];
    expect(taken.filter((t) => t.at > fell.at && t.at < rose.at).length).toBeGreaterThanOrEqual(10);
    expect(taken.filter((t) => t.at > rose.at).length).toBeGreaterThan(10);
    // Few refusals: against the same quotas, retrying each request on its own had 44 % to 66 %
    // of the requests refused.
    const sent = requests() - before;
    const refused = fx.sim.stats().quotaRefused;
    console.error(
      `[quota] ${sent} requests taken, ${refused} refused; quota fell at ${fell.at}, rose at ${rose.at}`,
    );
    expect(sent).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(0);
    expect(refused / (sent + refused)).toBeLessThanOrEqual(0.12);
    // After the fall, the refusals of the fall itself, then at most a probe's now and then.
    expect(refusals.filter((r) => r.at > fell.at && r.at < rose.at).length).toBeLessThanOrEqual(6);

    // Everything drained, in order: the platform holds the tables, sync_status says synced.
    expect(fx.sim.overlaps()).toEqual({ count: 0, customers: [] });
    const platform: Record<string, string[]> = {};
    for (const id of Object.keys(await expectedGroups(fx.db)))
      platform[id] = fx.sim.groupsOf('thirdId', id) ?? [];
    const expected = await expectedGroups(fx.db);
    delete expected['bad-p'];
    delete expected['bad-m'];
    delete platform['bad-p'];
    delete platform['bad-m'];
    expect(platform).toEqual(expected);
    const statuses = new Set([...(await statusRows(fx.db, 'profiles')).values()].map((r) => r.status));
    expect(statuses).toEqual(new Set(['synced', 'failed']));
  }, 240_000);

  it('holds every sender for a Retry-After of 3 s, whoever was refused', async () => {
    const file = writeConfigFile(
      testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url, batching, sources }),
    );
    const held = (refusedAt: number, ids: readonly string[]): number[] =>
      taken
        .filter((t) => t.at > refusedAt && t.ids.some((id) => ids.includes(id)))
        .map((t) => t.at - refusedAt);

    // 1. A retry-failed job is refused: the stream's requests wait out its Retry-After too. The job
    // asks the platform first (a request); with a quota of one request per 3 s, that takes the one
    // there is, and the job's retry is refused with `Retry-After: 3`.
    fx.sim.setFaults({ rateLimit: 1 / 3 });
    let streamAt = 0;
    const refused1 = new Promise<number>((resolve) => {
      onRefused = () => {
        onRefused = undefined;
        const at = refusals[refusals.length - 1]?.at as number;
        // The stream's changes come while the pause runs (their commit is timed: the moment).
        void fx.db
          .query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s1', 'a'), ('s2', 'b')`)
          .then(() => (streamAt = Date.now()));
        resolve(at);
      };
    });
    const job = startCli(['--config', file, 'retry-failed', '--source', 'memberships']);
    const at1 = await refused1;
    expect(refusals[refusals.length - 1]?.retryAfterSeconds).toBe(3);
    const retried = await job.exited;
    fx.sim.setFaults({ rateLimit: 0 });
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toMatch(/^memberships: retried 2 failed rows .*: 2 synced$/m);
    await waitForCatchUp(fx.db, SLOT);
    // The refused request was the job's (nothing else was pending), and the stream's changes were
    // committed during the pause.
    expect(taken.filter((t) => t.ids.includes('bad-m')).length).toBe(1);
    expect(streamAt - at1).toBeLessThan(3000);
    const stream1 = held(at1, ['s1', 's2']);
    expect(stream1.length).toBeGreaterThan(0);
    for (const d of [...stream1, ...held(at1, ['bad-m'])]) expect(d).toBeGreaterThanOrEqual(2995);

    // 2. The stream is refused: a retry of failed rows (the console's, on the daemon's own lanes)
    // started during the pause waits it out too.
    fx.sim.setFaults({ status429: 1, retryAfterSeconds: 3 });
    let retryAt = 0;
    let retry: Promise<unknown> | undefined;
    const refused2 = new Promise<number>((resolve) => {
      onRefused = () => {
        onRefused = undefined;
        retryAt = Date.now();
        retry = bridge?.bridge.retryFailed({ source: 'profiles' });
        resolve(refusals[refusals.length - 1]?.at as number);
      };
    });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s3', 'c')`);
    const at2 = await refused2;
    await retry;
    await waitForCatchUp(fx.db, SLOT);
    expect(retryAt - at2).toBeLessThan(3000);
    const retried2 = held(at2, ['bad-p']);
    expect(retried2).toHaveLength(1);
    for (const d of [...retried2, ...held(at2, ['s3'])]) expect(d).toBeGreaterThanOrEqual(2995);

    expect(fx.sim.overlaps()).toEqual({ count: 0, customers: [] });
    const status = await statusRows(fx.db, 'profiles');
    expect(status.get(JSON.stringify({ cust_no: 'bad-p' }))).toMatchObject({ status: 'synced' });
    expect(fx.sim.groupsOf('thirdId', 'bad-m')).toEqual(['r1', 'r2']);
    expect(fx.sim.groupsOf('thirdId', 's3')).toEqual(['c']);
  }, 120_000);

  it('holds an approval of held rows for a Retry-After the stream was given', async () => {
    // 20 members lose their group in one transaction: more than memberships' guard allows, held.
    const members = Array.from({ length: 20 }, (_, i) => `hm${i + 1}`);
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) SELECT unnest($1::text[]), 'hg'`,
      [members],
    );
    await waitForCatchUp(fx.db, SLOT);
    expect(members.map((m) => fx.sim.groupsOf('thirdId', m))).toEqual(members.map(() => ['hg']));
    const since = taken.length;
    await fx.db.query(`DELETE FROM crm.member_group WHERE member_id = ANY($1::text[])`, [members]);
    await waitForCatchUp(fx.db, SLOT);
    const statuses = async (): Promise<string[]> =>
      [...(await statusRows(fx.db, 'memberships')).entries()]
        .filter(([, r]) => members.includes((r.payload as { thirdId?: string } | null)?.thirdId ?? ''))
        .map(([, r]) => r.status);
    expect(await statuses()).toEqual(members.map(() => 'held'));
    expect(taken.slice(since).filter((t) => t.ids.some((id) => members.includes(id)))).toEqual([]);

    // The stream is refused with Retry-After: 3; the approval, started during the pause, waits it out.
    fx.sim.setFaults({ status429: 1, retryAfterSeconds: 3 });
    let approveAt = 0;
    let approval: Promise<unknown> | undefined;
    const refused = new Promise<number>((resolve) => {
      onRefused = () => {
        onRefused = undefined;
        approveAt = Date.now();
        approval = bridge?.bridge.settleHeld('approve', { source: 'memberships' });
        resolve(refusals[refusals.length - 1]?.at as number);
      };
    });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s4', 'd')`);
    const at = await refused;
    expect(await approval).toMatchObject([{ source: 'memberships', rows: 20 }]);
    await waitForCatchUp(fx.db, SLOT);
    expect(approveAt - at).toBeLessThan(3000);
    const approved = taken.filter((t) => t.at > at && t.ids.some((id) => members.includes(id)));
    expect(approved.length).toBeGreaterThan(0);
    const stream = taken.filter((t) => t.at > at && t.ids.includes('s4'));
    expect(stream).toHaveLength(1);
    for (const t of [...approved, ...stream]) expect(t.at - at).toBeGreaterThanOrEqual(2995);

    expect(fx.sim.overlaps()).toEqual({ count: 0, customers: [] });
    expect(members.map((m) => fx.sim.groupsOf('thirdId', m) ?? [])).toEqual(members.map(() => []));
    expect(await statuses()).toEqual(members.map(() => 'synced'));
  }, 120_000);
});
