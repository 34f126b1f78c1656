/**
 * /readyz tells the truth (issue 15): a bridge whose platform answers only errors, or refuses its
 * credentials, for longer than `tuzhan.notReadyAfterMs` is not ready, and says why.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { silentLogger } from '../../src/ops/logger.js';
import { freePort } from '../../src/throwaway/postgres.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { eventually, testConfig, waitForStreaming } from '../helpers/pipeline.js';

describe('readiness', () => {
  const fx = usePipelineFixture('readiness', { per: 'file' });
  let daemon: Daemon | undefined;

  afterEach(async () => {
    fx.sim.setFaults({ errorRate: 0 });
    await daemon?.stop(2000);
    daemon = undefined;
  });

  async function start(token = 'test-token'): Promise<string> {
    const port = await freePort();
    const config = testConfig({
      db: fx.db,
      apiUrl: fx.sim.url,
      token,
    });
    const withOps = {
      ...config,
      tuzhan: { ...config.tuzhan, notReadyAfterMs: 1000 },
      http: { listen: { host: '127.0.0.1', port } },
    };
    daemon = await startDaemon(withOps, silentLogger());
    await waitForStreaming(fx.db, fx.db.name);
    return `http://127.0.0.1:${port}`;
  }

  async function readyz(url: string): Promise<{ status: number; checks: Record<string, unknown> }> {
    const res = await fetch(`${url}/readyz`);
    return { status: res.status, checks: ((await res.json()) as { checks: Record<string, unknown> }).checks };
  }

  it('not ready while the platform answers only 5xx, ready again once it imports', async () => {
    const url = await start();
    expect((await readyz(url)).status).toBe(200);
    fx.sim.setFaults({ errorRate: 1 });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r1', 'x')`);
    await eventually(async () => {
      const r = await readyz(url);
      expect(r.status).toBe(503);
      expect(r.checks).toMatchObject({ streaming: true, platformOk: false });
    });
    expect(fx.sim.stats().served500).toBeGreaterThan(0);
    fx.sim.setFaults({ errorRate: 0 });
    await eventually(async () => expect((await readyz(url)).status).toBe(200));
    expect(fx.sim.groupsOf('thirdId', 'r1')).toEqual(['x']);
  });

  it('not ready while the platform refuses the credentials, and the gauge says so', async () => {
    const url = await start('a-token-the-platform-refuses');
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r2', 'y')`);
    await eventually(async () => {
      const r = await readyz(url);
      expect(r.status).toBe(503);
      expect(r.checks).toMatchObject({ credentials: 'refused', platformOk: false });
    });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^tuzhan_cdc_platform_auth_ok 0$/m);
    expect(fx.sim.stats().authFailures).toBeGreaterThan(0);
  });
});
