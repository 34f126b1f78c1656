/**
 * SIGTERM with work pending (README "Command line": SIGTERM drains, stores outcomes, confirms and
 * exits; docs/design.md "Positions"). The signal is sent to a real `tuzhan-cdc run` while the
 * platform holds its requests unanswered (the simulator's `holdAnswers`), and they are let go only
 * once the bridge has said it is stopping: the drain is the one that gets the answers.
 */
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/throwaway/postgres.js';
import { parseLsn } from '../../src/util/lsn.js';
import { spawnBridge, writeConfigFile } from '../helpers/bridge-process.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  commitReturningLsn,
  confirmedPast,
  pastAckInterval,
  trackedPosition,
  unanswered,
} from '../helpers/moments.js';
import { eventually, statusRows, testConfigYaml, waitForStreaming } from '../helpers/pipeline.js';

describe('SIGTERM with requests in flight', () => {
  const fx = usePipelineFixture('claims shutdown', { per: 'file' });

  it('drains: exit code 0, every outcome stored, the slot confirmed past the changes', async () => {
    const ops = `127.0.0.1:${await freePort()}`;
    // Room for all six requests of the transaction at once (four of profiles, two of members, on
    // customers of their own so that none waits for another): a bridge that released a change once
    // its request had left would have released the whole transaction at the moment below.
    const yaml = testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, batching: { maxBatchSize: 5 } })
      .replace('listen: "off"', `listen: ${ops}`)
      .replace('concurrency: 4', 'concurrency: 8');
    const bridge = spawnBridge(writeConfigFile(yaml));
    await waitForStreaming(fx.db, fx.db.name);
    fx.sim.setFaults({ holdAnswers: true });
    const lsn = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'c' || i, 'g' || (i % 3) FROM generate_series(1, 20) i`,
      `INSERT INTO crm.member_group (member_id, group_name) SELECT 'c' || i, 'm' FROM generate_series(21, 30) i`,
    ]);
    await eventually(() => expect(unanswered(fx.sim.stats())).toBe(6), 15_000, 5);
    // The moment: the platform holds requests it has not answered, no outcome is stored yet, and
    // the transaction is not confirmed: not by the slot, and not by the position the bridge would
    // send next (its tracker, which its acknowledgement timer reports to the server a few
    // milliseconds after it moves; the slot alone would not show a position released too early
    // until that timer fired).
    const pending = await fx.db.query(`SELECT 1 FROM "Tuzhan Sync".sync_status`);
    expect(pending.rowCount).toBe(0);
    expect(await trackedPosition(`http://${ops}`)).toBeLessThanOrEqual(parseLsn(lsn));
    await pastAckInterval();
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);

    const exit = bridge.kill('SIGTERM');
    // Let the answers go only once the bridge is stopping: they reach a bridge that is draining.
    await eventually(() => expect(bridge.output()).toMatch(/SIGTERM: stopping/), 15_000, 10);
    expect(unanswered(fx.sim.stats())).toBe(6);
    await pastAckInterval();
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);
    fx.sim.setFaults({ holdAnswers: false });
    expect(await exit).toBe(0);
    const profiles = [...(await statusRows(fx.db, 'profiles')).values()];
    const members = [...(await statusRows(fx.db, 'memberships')).values()];
    expect(profiles.map((r) => r.status)).toEqual(Array(20).fill('synced'));
    expect(members.map((r) => r.status)).toEqual(Array(10).fill('synced'));
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(true);
    expect(fx.sim.groupsOf('thirdId', 'c7')).toEqual(['g1']);
    expect(fx.sim.groupsOf('thirdId', 'c20')).toEqual(['g2']);
    expect(fx.sim.groupsOf('thirdId', 'c25')).toEqual(['m']);
    expect(bridge.output()).not.toMatch(/timed out/);
  });
});
