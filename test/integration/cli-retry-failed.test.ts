import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { freePort } from '../../src/throwaway/postgres.js';
import { runCli, startCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { statusRows, testConfigYaml, waitForCatchUp, waitForStreaming } from '../helpers/pipeline.js';

/** Slot names are server-wide: each test file streams from its own. */
const SLOT = 'cli_retry_failed';

const SOURCES = `
  - name: memberships
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, phone: mobile, groups: "Group Names" }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
`;

describe('tuzhan-cdc retry-failed', () => {
  // The simulators are the test's own: one that knows no customer, then one that knows them.
  const fx = usePipelineFixture('cli retry', { per: 'file', simulator: false });
  let before: Simulator;
  let after: Simulator | undefined;
  let file: string;

  beforeAll(async () => {
    // The platform at first knows none of the customers: with matching, every row fails.
    before = await startSimulator({ token: 'test-token', registry: [] });
    file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: before.url, sources: SOURCES }));
  });
  afterAll(async () => {
    await before?.close();
    await after?.close();
  });

  it('sends the failed rows again as they are now, once the platform knows the customers', async () => {
    await fx.db.query(`
      INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'gold'), ('m1', 'silver'), ('m2', 'gold');
      INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'vip'), ('c9', 'ghost');
    `);
    const run = startCli(['--config', file, 'run'], { LOG_LEVEL: 'warn' });
    try {
      await waitForStreaming(fx.db, 'cli_retry_failed');
      // Changed and deleted while failed: the retry must use the current rows, not the old payloads.
      await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'vip,gold' WHERE cust_no = 'c1'`);
      await fx.db.query(`DELETE FROM crm.member_group WHERE member_id = 'm2'`);
      await waitForCatchUp(fx.db, SLOT);
    } finally {
      run.child.kill('SIGTERM');
    }
    expect((await run.exited).code).toBe(0);
    const failed = await statusRows(fx.db, 'memberships');
    expect([...failed.values()].map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    expect([...(await statusRows(fx.db, 'profiles')).values()].map((r) => r.status)).toEqual([
      'failed',
      'failed',
    ]);

    // The platform still unreachable: exit 1, nothing changes.
    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = await runCli(['--config', file, 'retry-failed'], { TUZHAN_BASE_URL: closed });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^tuzhan-cdc: the platform is unreachable .*nothing was retried$/m);
    expect([...(await statusRows(fx.db, 'memberships')).values()].every((r) => r.status === 'failed')).toBe(
      true,
    );

    // The platform now knows m1, m2 and c1 (not c9).
    after = await startSimulator({
      token: 'test-token',
      registry: [{ thirdId: 'm1' }, { thirdId: 'm2' }, { thirdId: 'c1' }],
    });
    const dry = await runCli(['--config', file, 'retry-failed', '--dry-run'], { TUZHAN_BASE_URL: after.url });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('memberships: 3 failed rows; would send 1 delete, 2 add');
    expect(after.stats().requests).toBe(0);

    // sync_batch already holds the requests of `run`: only rows after this id are the retry's.
    const lastBatch = await fx.db.query<{ id: string }>(
      `SELECT coalesce(max(id), 0)::text AS id FROM "Tuzhan Sync".sync_batch`,
    );
    const r = await runCli(['--config', file, 'retry-failed'], { TUZHAN_BASE_URL: after.url });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('memberships: retried 3 failed rows (sent 1 delete, 2 add): 3 synced');
    expect(r.stdout).toContain('profiles: retried 2 failed rows (sent 2 add): 1 synced, 1 failed');
    expect(r.stdout).toMatch(/still failed: \{"cust_no":"c9"\}: .*no customer matches/);

    expect(after.groupsOf('thirdId', 'm1')).toEqual(['gold', 'silver']);
    expect(after.groupsOf('thirdId', 'c1')).toEqual(['gold', 'vip']);
    expect(after.groupsOf('thirdId', 'm2') ?? []).toEqual([]);
    // The two pairs of m1 went as one merged row; the profiles' groups as an add (never a replace).
    expect(after.stats().byOptType.add).toMatchObject({ requests: 2, rows: 3 });
    expect(after.stats().byOptType.update).toMatchObject({ requests: 0 });

    const memberships = await statusRows(fx.db, 'memberships');
    expect([...memberships.values()].map((s) => [s.op, s.status, s.error])).toEqual(
      expect.arrayContaining([
        ['add', 'synced', null],
        ['add', 'synced', null],
        ['delete', 'synced', null],
      ]),
    );
    const profiles = await statusRows(fx.db, 'profiles');
    expect(profiles.get('{"cust_no":"c1"}')).toMatchObject({
      op: 'add',
      status: 'synced',
      payload: { thirdId: 'c1', groups: 'vip,gold' },
    });
    expect(profiles.get('{"cust_no":"c9"}')).toMatchObject({ status: 'failed' });
    expect(profiles.get('{"cust_no":"c9"}')?.attempts).toBeGreaterThanOrEqual(2);
    // One sync_batch row per request the retry sent: memberships' delete and merged add, the
    // profiles' add (c1 imported, c9 not).
    const batches = await fx.db.query(
      `SELECT source, opt_type, rows, api_status, success_num, fail_num FROM "Tuzhan Sync".sync_batch
        WHERE id > $1 ORDER BY source, opt_type`,
      [lastBatch.rows[0]?.id],
    );
    expect(batches.rows).toEqual([
      { source: 'memberships', opt_type: 'add', rows: 1, api_status: 1, success_num: 1, fail_num: 0 },
      { source: 'memberships', opt_type: 'delete', rows: 1, api_status: 1, success_num: 1, fail_num: 0 },
      { source: 'profiles', opt_type: 'add', rows: 2, api_status: 2, success_num: 1, fail_num: 1 },
    ]);

    const again = await runCli(['--config', file, 'retry-failed', '--source', 'memberships'], {
      TUZHAN_BASE_URL: after.url,
    });
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe('memberships: no failed rows');
  });
});
