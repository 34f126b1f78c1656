/**
 * SPEC section 5: one active bridge per slot, a standby that takes over within seconds, and a
 * stream that survives a lost replication connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/throwaway/postgres.js';
import { spawnBridge, writeConfigFile, type BridgeProcess } from '../helpers/bridge-process.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { eventually, testConfigYaml, waitForCatchUp } from '../helpers/pipeline.js';

describe('availability', () => {
  const fx = usePipelineFixture('availability', { per: 'file', simulator: { token: 'tok-s3cret-value' } });
  let configFile: string;
  let standbyConfigFile: string;
  let metricsPort: number;
  const running: BridgeProcess[] = [];

  beforeAll(async () => {
    // A password in the URL (trust auth ignores it) and the token must never reach the logs.
    const url = new URL(fx.db.url);
    url.password = 'pg-s3cret-pw';
    metricsPort = await freePort();
    const yaml = testConfigYaml({
      db: { ...fx.db, url: url.toString() },
      apiUrl: fx.sim.url,
      token: 'tok-s3cret-value',
    });
    configFile = writeConfigFile(yaml);
    standbyConfigFile = writeConfigFile(yaml.replace('listen: "off"', `listen: 127.0.0.1:${metricsPort}`));
  });
  afterAll(async () => {
    await Promise.all(running.map((b) => b.kill('SIGKILL')));
  });

  function start(file = configFile): BridgeProcess {
    const b = spawnBridge(file);
    running.push(b);
    return b;
  }

  it('a second bridge waits as a standby and takes over when the first dies', async () => {
    const first = start();
    await eventually(() => expect(first.output()).toMatch(/replication stream started/), 30_000);
    const second = start(standbyConfigFile);
    await eventually(() => expect(second.output()).toMatch(/waiting as a standby/), 30_000);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('a1', 'one')`);
    await waitForCatchUp(fx.db);
    expect(second.output()).not.toMatch(/replication stream started/);

    await first.kill('SIGKILL');
    const killedAt = Date.now();
    await eventually(() => expect(second.output()).toMatch(/replication stream started/), 15_000, 50);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('a2', 'two')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'a2')).toEqual(['two']);

    // The ops endpoint of the bridge that took over: ready, and the named series after a sync.
    const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tuzhan_cdc_rows_total\{source="profiles",op="add",status="synced"\} 1$/m);
    expect(metrics).toMatch(/^tuzhan_cdc_requests_total\{.*outcome="ok".*\} \d+$/m);
    for (const series of [
      'tuzhan_cdc_request_duration_seconds_bucket',
      'tuzhan_cdc_retries_total',
      'tuzhan_cdc_buffered_rows',
      'tuzhan_cdc_inflight_rows',
      'tuzhan_cdc_slot_lag_bytes',
      'tuzhan_cdc_slot_lag_seconds',
      'tuzhan_cdc_last_success_timestamp_seconds',
    ]) {
      expect(metrics).toContain(series);
    }
    expect(await second.kill('SIGTERM')).toBe(0);
    for (const b of [first, second]) {
      expect(b.output()).not.toContain('tok-s3cret-value');
      expect(b.output()).not.toContain('pg-s3cret-pw');
    }
  }, 90_000);

  it('reconnects after the replication connection is lost, and misses nothing', async () => {
    const b = start();
    await eventually(() => expect(b.output()).toMatch(/replication stream started/), 30_000);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r1', 'x')`);
    await waitForCatchUp(fx.db);
    await fx.db.query(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`,
      [fx.db.name],
    );
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r2', 'y')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'r2')).toEqual(['y']);
    expect(b.output()).toMatch(/replication stream lost/);
    expect(await b.kill('SIGTERM')).toBe(0);
  }, 90_000);

  it('a bridge whose lock connection dies stops streaming at once; the standby takes over, nothing lost', async () => {
    const first = start();
    await eventually(() => expect(first.output()).toMatch(/replication stream started/), 30_000);
    const second = start();
    await eventually(() => expect(second.output()).toMatch(/waiting as a standby/), 30_000);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('l1', 'before')`);
    await waitForCatchUp(fx.db);

    // The first bridge's lock connection is the one holding the advisory lock.
    const { rows } = await fx.db.query<{ pid: number }>(
      `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.database =
         (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(rows).toHaveLength(1);
    const streamingPid = async () =>
      (
        await fx.db.query<{ pid: number | null }>(
          `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1`,
          [fx.db.name],
        )
      ).rows[0]?.pid ?? null;
    const firstWalsender = await streamingPid();
    expect(firstWalsender).not.toBeNull();
    await fx.db.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
    const cutAt = Date.now();
    await eventually(() => expect(first.output()).toMatch(/lost the leader lock of the slot/), 10_000, 50);
    await eventually(() => expect(second.output()).toMatch(/replication stream started/), 15_000, 50);
    expect(Date.now() - cutAt).toBeLessThan(10_000);
    // The first let go of its walsender; the slot is streamed by the second alone.
    expect(await streamingPid()).not.toBe(firstWalsender);
    await eventually(() => expect(first.output()).toMatch(/waiting as a standby/), 15_000, 50);

    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('l2', 'after')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'l1')).toEqual(['before']);
    expect(fx.sim.groupsOf('thirdId', 'l2')).toEqual(['after']);
    expect(await second.kill('SIGTERM'), second.output().slice(-4000)).toBe(0);
    expect(await first.kill('SIGTERM'), first.output().slice(-4000)).toBe(0);
  }, 90_000);
});
