import { beforeAll, describe, expect, it } from 'vitest';
import { startCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { eventually, testConfigYaml, waitForStreaming } from '../helpers/pipeline.js';

/** Slot names are server-wide: each test file streams from its own. */
const SLOT = 'cli_run';

describe('tuzhan-cdc run', () => {
  const fx = usePipelineFixture('cli run', { per: 'file' });

  beforeAll(async () => {
    fx.sim.setFaults({ latencyMs: 20 });
    // Enough existing rows that the first-start snapshot takes a while.
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'p' || g, 'vip' FROM generate_series(1, 60000) g`,
    );
  });

  it('exits at once on SIGTERM during the first-start snapshot; the next start syncs everything', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url }));
    const first = startCli(['--config', file, 'run'], { LOG_LEVEL: 'info' });
    await eventually(() => expect(first.stdout()).toContain('reading the snapshot'), 30_000);
    const signalled = Date.now();
    first.child.kill('SIGTERM');
    const r = await first.exited;
    expect(r.code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(r.stdout).toContain('stopped before streaming began');
    const cut = await fx.db.query<{ done: boolean }>(
      `SELECT snapshot_done_at IS NOT NULL AS done FROM "Tuzhan Sync".bridge_state WHERE slot = $1`,
      [SLOT],
    );
    expect(cut.rows[0]?.done).toBe(false);

    const second = startCli(['--config', file, 'run'], { LOG_LEVEL: 'warn' });
    try {
      await waitForStreaming(fx.db, SLOT, 120_000);
    } finally {
      second.child.kill('SIGTERM');
    }
    expect((await second.exited).code).toBe(0);
    const { rows } = await fx.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Tuzhan Sync".sync_status WHERE source = 'profiles' AND status = 'synced'`,
    );
    expect(rows[0]?.n).toBe(60000);
  });
});
