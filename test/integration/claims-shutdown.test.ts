/**
 * SIGTERM with work pending (README "Command line": SIGTERM drains, stores outcomes, confirms and
 * exits; docs/design.md "Positions"). The signal is sent to a real `tuzhan-cdc run` while the
 * platform holds its requests unanswered (the simulator's `holdAnswers`), and they are let go only
 * once the bridge has said it is stopping: the drain is the one that gets the answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { freePort } from '../../src/throwaway/postgres.js';
import { parseLsn } from '../../src/util/lsn.js';
import { spawnBridge, writeConfigFile } from '../helpers/bridge-process.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  commitReturningLsn,
  confirmedPast,
  pastAckInterval,
  trackedPosition,
  unanswered,
} from '../helpers/moments.js';
import { CRM_SCHEMA, eventually, statusRows, testConfigYaml, waitForStreaming } from '../helpers/pipeline.js';

describe('SIGTERM with requests in flight', () => {
  let db: TestDatabase;
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('claims shutdown');
    await db.query(CRM_SCHEMA);
  });
  afterAll(async () => {
    await sim?.close();
    await db?.drop();
  });

  it('drains: exit code 0, every outcome stored, the slot confirmed past the changes', async () => {
    const ops = `127.0.0.1:${await freePort()}`;
    // Room for all six requests of the transaction at once (four of profiles, two of members, on
    // customers of their own so that none waits for another): a bridge that released a change once
    // its request had left would have released the whole transaction at the moment below.
    const yaml = testConfigYaml({ db, apiUrl: sim.url, batching: { maxBatchSize: 5 } })
      .replace('listen: "off"', `listen: ${ops}`)
      .replace('concurrency: 4', 'concurrency: 8');
    const bridge = spawnBridge(writeConfigFile(yaml));
    await waitForStreaming(db, db.name);
    sim.setFaults({ holdAnswers: true });
    const lsn = await commitReturningLsn(db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'c' || i, 'g' || (i % 3) FROM generate_series(1, 20) i`,
      `INSERT INTO crm.member_group (member_id, group_name) SELECT 'c' || i, 'm' FROM generate_series(21, 30) i`,
    ]);
    await eventually(() => expect(unanswered(sim.stats())).toBe(6), 15_000, 5);
    // The moment: the platform holds requests it has not answered, no outcome is stored yet, and
    // the transaction is not confirmed: not by the slot, and not by the position the bridge would
    // send next (its tracker, which its acknowledgement timer reports to the server a few
    // milliseconds after it moves; the slot alone would not show a position released too early
    // until that timer fired).
    const pending = await db.query(`SELECT 1 FROM "Tuzhan Sync".sync_status`);
    expect(pending.rowCount).toBe(0);
    expect(await trackedPosition(`http://${ops}`)).toBeLessThanOrEqual(parseLsn(lsn));
    await pastAckInterval();
    expect(await confirmedPast(db, db.name, lsn)).toBe(false);

    const exit = bridge.kill('SIGTERM');
    // Let the answers go only once the bridge is stopping: they reach a bridge that is draining.
    await eventually(() => expect(bridge.output()).toMatch(/SIGTERM: stopping/), 15_000, 10);
    expect(unanswered(sim.stats())).toBe(6);
    await pastAckInterval();
    expect(await confirmedPast(db, db.name, lsn)).toBe(false);
    sim.setFaults({ holdAnswers: false });
    expect(await exit).toBe(0);
    const profiles = [...(await statusRows(db, 'profiles')).values()];
    const members = [...(await statusRows(db, 'memberships')).values()];
    expect(profiles.map((r) => r.status)).toEqual(Array(20).fill('synced'));
    expect(members.map((r) => r.status)).toEqual(Array(10).fill('synced'));
    expect(await confirmedPast(db, db.name, lsn)).toBe(true);
    expect(sim.groupsOf('thirdId', 'c7')).toEqual(['g1']);
    expect(sim.groupsOf('thirdId', 'c20')).toEqual(['g2']);
    expect(sim.groupsOf('thirdId', 'c25')).toEqual(['m']);
    expect(bridge.output()).not.toMatch(/timed out/);
  });
});
