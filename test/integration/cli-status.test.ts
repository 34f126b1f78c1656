import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/throwaway/postgres.js';
import { runCli, startCli, writeConfigFile, type RunningCli } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { testConfigYaml, waitForCatchUp, waitForStreaming } from '../helpers/pipeline.js';

/** Slot names are server-wide: each test file streams from its own. */
const SLOT = 'cli_status';

interface StatusJson {
  slot: { name: string; exists: boolean; active: boolean; lagBytes: number; confirmedFlushLsn: string };
  statusSchema: { exists: boolean };
  summary: Array<{ source: string; status: string; rows: number }>;
  backlog: { rows: number; ageSeconds: number };
  failures: { total: number; newest: Array<{ source: string; rowKey: unknown; error: string }> };
  requestRate: Record<string, unknown>;
}

describe('tuzhan-cdc status', () => {
  const fx = usePipelineFixture('cli status', { per: 'file' });
  let run: RunningCli | undefined;

  afterAll(() => {
    run?.child.kill('SIGKILL');
  });

  it('before the first run: no slot, no status schema, exit 0', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url }));
    const r = await runCli(['--config', file, 'status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/slot\s+cli_status: does not exist/);
    expect(r.stdout).toMatch(/schema "Tuzhan Sync" does not exist yet/);
  });

  it('after a short run: counts per source and status, the slot and its lag, the failures', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url }));
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'vip'), ('c2', 'north')`,
    );
    // The learned request rate is asked of the running bridge's HTTP endpoint.
    const port = await freePort();
    const http = { TUZHAN_CDC__HTTP__LISTEN: `127.0.0.1:${port}` };
    run = startCli(['--config', file, 'run'], { LOG_LEVEL: 'warn', ...http });
    await waitForStreaming(fx.db, 'cli_status');
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c3', 'east')`);
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'vip,gold' WHERE cust_no = 'c1'`);
    // An empty member id maps to no identity: recorded as failed locally, never sent.
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'gold'), ('', 'gold')`,
    );
    await waitForCatchUp(fx.db, SLOT);

    const live = await runCli(['--config', file, 'status', '--json'], http);
    expect(live.code).toBe(0);
    const liveReport = JSON.parse(live.stdout) as StatusJson;
    expect(liveReport.slot).toMatchObject({ name: 'cli_status', exists: true, active: true });
    // The platform refused nothing: no limit learned, the configured concurrency.
    expect(liveReport.requestRate).toEqual({
      from: `http://127.0.0.1:${port}`,
      ratePerSecond: null,
      quota: null,
      concurrency: 4,
      refused: 0,
    });
    const liveText = await runCli(['--config', file, 'status'], http);
    expect(liveText.stdout).toMatch(/^requests\s+no limit \(the platform refused nothing\), 0 refused/m);

    run.child.kill('SIGTERM');
    const stopped = await run.exited;
    run = undefined;
    expect(stopped.code, stopped.stderr).toBe(0);

    const r = await runCli(['--config', file, 'status'], http);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^requests\\s+rate unknown: http://127.0.0.1:${port}: no bridge answered`, 'm'),
    );
    expect(r.stdout).toMatch(/slot\s+cli_status: INACTIVE .*confirmed \d+\/[0-9A-F]+, lag \d/);
    expect(r.stdout).toMatch(/^profiles\s+synced\s+3\s/m);
    expect(r.stdout).toMatch(/^memberships\s+failed\s+1\s/m);
    expect(r.stdout).toMatch(/^memberships\s+synced\s+1\s/m);
    expect(r.stdout).toMatch(/failed rows: 1; newest 1:/);
    expect(r.stdout).toMatch(/memberships\s+\{"id":"?\d+"?\}\s+add\s+0\s+\S+\s+no identity value/);

    const json = await runCli(['--config', file, 'status', '--json', '--source', 'profiles']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as StatusJson;
    expect(report.slot).toMatchObject({ exists: true, active: false });
    expect(report.slot.lagBytes).toBeGreaterThanOrEqual(0);
    expect(report.summary).toEqual([
      expect.objectContaining({ source: 'profiles', status: 'synced', rows: 3 }),
    ]);
    expect(report.backlog).toEqual({ rows: 0, oldestCommittedAt: null, ageSeconds: 0 });
    expect(report.failures.total).toBe(0);
  });

  it('an unknown --source is a usage error (exit 2)', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url }));
    const r = await runCli(['--config', file, 'status', '--source', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tuzhan-cdc: unknown source 'nope' \(sources: profiles, memberships\)$/m);
  });
});
