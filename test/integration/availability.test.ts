/**
 * SPEC section 5: one active bridge per slot, a standby that takes over within seconds, and a
 * stream that survives a lost replication connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { spawnBridge, writeConfigFile, type BridgeProcess } from '../helpers/bridge-process.js';
import { CRM_SCHEMA, eventually, testConfigYaml, waitForCatchUp } from '../helpers/pipeline.js';

describe('availability', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let configFile: string;
  const running: BridgeProcess[] = [];

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('availability');
    await db.query(CRM_SCHEMA);
    configFile = writeConfigFile(testConfigYaml({ db, apiUrl: sim.url }));
  });
  afterAll(async () => {
    await Promise.all(running.map((b) => b.kill('SIGKILL')));
    await sim.close();
    await db.drop();
  });

  function start(): BridgeProcess {
    const b = spawnBridge(configFile);
    running.push(b);
    return b;
  }

  it('a second bridge waits as a standby and takes over when the first dies', async () => {
    const first = start();
    await eventually(() => expect(first.output()).toMatch(/replication stream started/), 30_000);
    const second = start();
    await eventually(() => expect(second.output()).toMatch(/waiting as a standby/), 30_000);
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('a1', 'one')`);
    await waitForCatchUp(db);
    expect(second.output()).not.toMatch(/replication stream started/);

    await first.kill('SIGKILL');
    const killedAt = Date.now();
    await eventually(() => expect(second.output()).toMatch(/replication stream started/), 15_000, 50);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('a2', 'two')`);
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', 'a2')).toEqual(['two']);
    expect(await second.kill('SIGTERM')).toBe(0);
  }, 90_000);

  it('reconnects after the replication connection is lost, and misses nothing', async () => {
    const b = start();
    await eventually(() => expect(b.output()).toMatch(/replication stream started/), 30_000);
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r1', 'x')`);
    await waitForCatchUp(db);
    await db.query(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'tuzhan_test'`,
    );
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('r2', 'y')`);
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', 'r2')).toEqual(['y']);
    expect(b.output()).toMatch(/replication stream lost/);
    expect(await b.kill('SIGTERM')).toBe(0);
  }, 90_000);
});
