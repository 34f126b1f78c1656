/**
 * The monitoring kit against a running bridge: every tuzhan_cdc_ metric the Grafana dashboard and
 * the Prometheus alert rules name is on its /metrics, and the metrics they need say what they
 * should: the version, the rows that failed or wait now (from sync_status), the request latency
 * per source, failed tries included, and the slot lag while the first-start snapshot runs.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { createBridgeEvents } from '../../src/domain/events.js';
import { silentLogger } from '../../src/ops/logger.js';
import { Bridge } from '../../src/pipeline/supervisor.js';
import { TuzhanClient } from '../../src/tuzhan/client.js';
import { packageVersion } from '../../src/util/version.js';
import { freePort } from '../../src/throwaway/postgres.js';
import { createTestDatabase } from '../helpers/database.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { CRM_SCHEMA, eventually, testConfig, testConfigYaml, waitForCatchUp } from '../helpers/pipeline.js';

const DASHBOARD = 'deploy/monitoring/grafana/dashboards/tuzhan-cdc.json';
const RULES = 'deploy/monitoring/prometheus/alerts.yml';
const HTTP_TOKEN = 'monitoring-test-token';

/** Every PromQL expression of the dashboard (panels, template variables) and of the rules. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) node.forEach((n, i) => walk(n, `${where}[${i}]`));
    else if (node && typeof node === 'object')
      for (const [k, v] of Object.entries(node)) {
        if ((k === 'expr' || k === 'query' || k === 'definition') && typeof v === 'string')
          out.push({ where, expr: v });
        else walk(v, `${where}.${k}`);
      }
  };
  walk(JSON.parse(readFileSync(DASHBOARD, 'utf8')), DASHBOARD);
  walk(parse(readFileSync(RULES, 'utf8')), RULES);
  return out;
}

/** The metric names a Prometheus text exposition declares (`# TYPE name type`), with their samples' names. */
function exposed(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram' || type === 'summary')
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

/** The value of one sample line, by name and labels in their order of exposition. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('monitoring: dashboard, alert rules and /metrics', () => {
  const fx = usePipelineFixture('monitoring', { per: 'file' });
  let daemon: Daemon | undefined;

  afterAll(async () => {
    await daemon?.stop(2000).catch(() => {});
  });

  it('names only metrics a running bridge exposes, and they say what they should', async () => {
    const port = await freePort();
    const config = loadConfig({
      text: testConfigYaml({ db: fx.db, apiUrl: fx.sim.url }).replace(
        'listen: "off"',
        `listen: 127.0.0.1:${port}\n  token: ${HTTP_TOKEN}`,
      ),
      env: {},
    });
    daemon = await startDaemon(config, silentLogger(), { statusIntervalMs: 200, lagIntervalMs: 200 });

    // A slow platform that first answers HTTP 429: transient tries with a duration of their own.
    fx.sim.setFaults({ latencyMs: 300, status429: 2, retryAfterSeconds: 1 });
    await fx.db.query(`
      INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES ('m1', '13700000001', 'a');
      INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'a,b');
    `);
    await waitForCatchUp(fx.db, fx.db.name, 60_000);

    const metrics = async (): Promise<string> => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: { authorization: `Bearer ${HTTP_TOKEN}` },
      });
      expect(res.status).toBe(200);
      return res.text();
    };
    // A group name with a comma fails its row: the gauge read from sync_status shows it.
    await eventually(async () =>
      expect(
        sample(await metrics(), 'tuzhan_cdc_status_rows', { source: 'memberships', status: 'failed' }),
      ).toBe(1),
    );
    const text = await metrics();

    const names = exposed(text);
    const missing = expressions().flatMap(({ where, expr }) =>
      [...expr.matchAll(/tuzhan_cdc_[a-z0-9_]+/g)]
        .map((m) => m[0])
        .filter((n) => !names.has(n))
        .map((n) => `${n} (${where})`),
    );
    expect(missing).toEqual([]);
    expect(expressions().length).toBeGreaterThan(20);

    expect(sample(text, 'tuzhan_cdc_build_info', { version: packageVersion() })).toBe(1);
    expect(sample(text, 'tuzhan_cdc_status_rows', { source: 'profiles', status: 'failed' })).toBe(0);
    // Latency per source; the failed tries took the platform's 300 ms too, not 0.
    const transient = { source: 'profiles', outcome: 'transient' };
    const count = sample(text, 'tuzhan_cdc_request_duration_seconds_count', transient) ?? 0;
    const sum = sample(text, 'tuzhan_cdc_request_duration_seconds_sum', transient) ?? 0;
    expect(count, text).toBeGreaterThanOrEqual(1);
    expect(sum / count).toBeGreaterThanOrEqual(0.25);
    expect(
      sample(text, 'tuzhan_cdc_request_duration_seconds_count', { source: 'profiles', outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
  }, 90_000);

  it('measures the slot lag while the first-start snapshot runs', async () => {
    await daemon?.stop(2000);
    daemon = undefined;
    const other = await createTestDatabase('monitoring snapshot');
    try {
      await other.query(CRM_SCHEMA);
      await other.query(
        `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 's' || i, 'g' FROM generate_series(1, 2000) i`,
      );
      fx.sim.setFaults({ latencyMs: 300, status429: 0 });
      const config = testConfig({ db: other, apiUrl: fx.sim.url, batching: { maxBatchSize: 100 } });
      const events = createBridgeEvents();
      const lags: { seconds: number; during: boolean }[] = [];
      let started = false;
      events.on('slotLag', (e) => lags.push({ seconds: e.seconds, during: !started }));
      const client = new TuzhanClient(config.tuzhan, { logger: silentLogger() });
      const bridge = new Bridge({
        config,
        logger: silentLogger(),
        sender: client,
        events,
        lagIntervalMs: 100,
      });
      try {
        await bridge.start();
        started = true;
      } finally {
        await bridge.stop(2000);
        await client.close();
      }
      // The snapshot took over a second (20 requests of 300 ms, 4 at a time): measured meanwhile,
      // with the age of the changes that wait for it.
      const during = lags.filter((l) => l.during);
      expect(during.length, JSON.stringify(lags)).toBeGreaterThanOrEqual(3);
      expect(Math.max(...during.map((l) => l.seconds))).toBeGreaterThan(0.5);
    } finally {
      fx.sim.setFaults({ latencyMs: 0 });
      await other.drop();
    }
  }, 90_000);
});
