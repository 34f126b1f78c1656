/**
 * A crash while the platform fails, on a row-mode table without REPLICA IDENTITY FULL (the default
 * replica identity): there the state a replayed change starts from is the payload stored for its
 * key. A row that shows `retrying` has not reached the platform, so its stored payload must still
 * say what the platform held before, or the replay after the restart either skips the change as
 * unchanged (an add never sent, the row `retrying` forever) or forgets the groups it removes (a
 * stale group on the platform while sync_status says `synced`).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { spawnBridge, writeConfigFile, type BridgeProcess } from '../helpers/bridge-process.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  eventually,
  startTestBridge,
  statusRows,
  testConfigYaml,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const SOURCES = `
  - name: plain
    table: crm.plain_profile
    mode: row
    columns: { thirdId: cust_no, groups: groups }
    match: { isMatching: false }
`;

describe('a crash while the platform fails (row mode, default replica identity)', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;
  let spawned: BridgeProcess | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('crash_retrying');
    await db.query(`
      CREATE SCHEMA crm;
      CREATE TABLE crm.plain_profile (cust_no text PRIMARY KEY, groups text, note text);`);
  });
  afterEach(async () => {
    sim.setFaults({ errorRate: 0 });
    await spawned?.kill('SIGKILL');
    spawned = undefined;
    await running?.stop();
    running = undefined;
  });
  afterAll(async () => {
    await sim.close();
    await db.drop();
  });

  const key = (id: string): string => JSON.stringify({ cust_no: id });

  /**
   * Syncs `id` with `from`, then, with every request failing, changes it to `to` and kills the
   * bridge once its row shows `retrying`; restarts with the platform answering and catches up.
   */
  async function crashWhileRetrying(id: string, from: string, to: string): Promise<void> {
    const yaml = testConfigYaml({ db, apiUrl: sim.url, sources: SOURCES });
    spawned = spawnBridge(writeConfigFile(yaml));
    await eventually(() => expect(spawned?.output()).toMatch(/replication stream started/), 30_000);
    await db.query(`INSERT INTO crm.plain_profile (cust_no, groups) VALUES ($1, $2)`, [id, from]);
    await waitForCatchUp(db);
    expect(sim.groupsOf('thirdId', id)).toEqual(from.split(',').sort());

    sim.setFaults({ errorRate: 1 });
    await db.query(`UPDATE crm.plain_profile SET groups = $2 WHERE cust_no = $1`, [id, to]);
    // The moment: the change's first request failed and its row says so.
    await eventually(async () =>
      expect((await statusRows(db, 'plain')).get(key(id))?.status).toBe('retrying'),
    );
    expect(await spawned.kill('SIGKILL')).toBe('SIGKILL');
    spawned = undefined;
    // Nothing of the change reached the platform.
    expect(sim.groupsOf('thirdId', id)).toEqual(from.split(',').sort());

    sim.setFaults({ errorRate: 0 });
    running = await startTestBridge({ db, apiUrl: sim.url, sources: SOURCES });
    await waitForCatchUp(db);
  }

  it('an add that was retrying at the crash is sent after the restart', async () => {
    await crashWhileRetrying('r1', 'a', 'a,c');
    expect(sim.groupsOf('thirdId', 'r1')).toEqual(['a', 'c']);
    expect((await statusRows(db, 'plain')).get(key('r1'))).toMatchObject({ op: 'add', status: 'synced' });
  });

  it('a removal that was retrying at the crash is sent after the restart', async () => {
    await crashWhileRetrying('r2', 'a,b', 'b,c');
    expect(sim.groupsOf('thirdId', 'r2')).toEqual(['b', 'c']);
    expect((await statusRows(db, 'plain')).get(key('r2'))).toMatchObject({ op: 'add', status: 'synced' });
  });
});
