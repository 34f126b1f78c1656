/**
 * `run --resync --dry-run` and `backfill --dry-run`: what a re-sync or a backfill would add and
 * remove, per source, as the tables are now, and nothing sent or written. The expected lines are
 * counted by hand from the changes made while no bridge ran.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTestBridge, testConfigYaml, waitForCatchUp } from '../helpers/pipeline.js';

describe('dry runs', () => {
  const fx = usePipelineFixture('dry run', { per: 'file' });

  beforeAll(async () => {
    await fx.db.query(`
      INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'a,b'), ('c2', 'b'), ('c3', 'c');
      INSERT INTO crm.member_group (id, member_id, group_name) VALUES (1, 'm1', 'x'), (2, 'm1', 'y'), (3, 'm2', 'x');`);
    const running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await waitForCatchUp(fx.db);
    await running.stop();
    // While nothing streams: c1 deleted, c2 from b to z, c4 new; (m1, y) deleted, m2 from x to w.
    await fx.db.query(`
      DELETE FROM crm.customer_profile WHERE cust_no = 'c1';
      UPDATE crm.customer_profile SET "Group Names" = 'z' WHERE cust_no = 'c2';
      INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c4', 'n');
      DELETE FROM crm.member_group WHERE id = 2;
      UPDATE crm.member_group SET group_name = 'w' WHERE id = 3;`);
  });

  /** What a dry run may not touch: the platform, sync_status, the slot. */
  async function untouched(): Promise<unknown> {
    const status = await fx.db.query(`SELECT * FROM "Tuzhan Sync".sync_row ORDER BY source_id, key`);
    const slot = await fx.db.query(
      `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
      [fx.db.name],
    );
    return { requests: fx.sim.stats().requests, status: status.rows, slot: slot.rows };
  }

  it('run --resync --dry-run says per source what it would add and remove, and sends nothing', async () => {
    const before = await untouched();
    const file = writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url }));
    const r = await runCli(['--config', file, 'run', '--resync', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        // c2 gains z, c4 n; c2 loses b, c1 (gone) a and b.
        'profiles: 3 rows read; would add 2 groups to 2 rows and remove 3 groups from 2 rows; 1 key gone from the table',
        // m2 gains w and loses x; (m1, y) is gone.
        'memberships: 2 rows read; would add 1 group to 1 row and remove 2 groups from 2 rows; 1 key gone from the table',
        'nothing was sent (a dry run); a re-sync reads the tables as they are when it runs',
        '',
      ].join('\n'),
    );
    expect(await untouched()).toEqual(before);
  });

  it('backfill --dry-run says the same of one source (filtered: no gone keys), without a daemon', async () => {
    const before = await untouched();
    const file = writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url }));
    const one = await runCli(['--config', file, 'backfill', '--source', 'profiles', '--dry-run']);
    expect([one.code, one.stderr]).toEqual([0, '']);
    expect(one.stdout).toBe(
      'profiles: 3 rows read; would add 2 groups to 2 rows and remove 3 groups from 2 rows; 1 key gone from the table\nnothing was sent (a dry run)\n',
    );
    const filtered = await runCli([
      '--config',
      file,
      'backfill',
      '--source',
      'memberships',
      '--where',
      '{group_name: w}',
      '--dry-run',
    ]);
    expect(filtered.stdout).toBe(
      'memberships: 1 row read; would add 1 group to 1 row and remove 1 group from 1 row\nnothing was sent (a dry run)\n',
    );
    // With no removal allowed at all, the gone keys' removal would be held: the dry run says so.
    const strict = writeConfigFile(
      testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, extra: 'guard: { maxRemovals: 0 }' }),
    );
    const held = await runCli(['--config', strict, 'backfill', '--source', 'profiles', '--dry-run']);
    expect(held.stdout).toMatch(
      /^profiles: 3 rows read; .*; 1 key gone from the table; removing the gone keys would be held for a person: more than guard\.maxRemovals \(0\)\n/,
    );
    expect(await untouched()).toEqual(before);
    const alone = await runCli(['--config', file, 'run', '--dry-run']);
    expect([alone.code, alone.stderr]).toEqual([
      2,
      'tuzhan-cdc: --dry-run goes with --resync (tuzhan-cdc run --resync --dry-run)\n',
    ]);
  });
});
