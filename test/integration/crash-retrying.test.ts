/**
 * A crash while the platform fails, on a row-mode table without REPLICA IDENTITY FULL (the default
 * replica identity): there the state a replayed change starts from is the payload stored for its
 * key. A row that shows `retrying` has not reached the platform, so its stored payload must still
 * say what the platform held before, or the replay after the restart either skips the change as
 * unchanged (an add never sent, the row `retrying` forever) or forgets the groups it removes (a
 * stale group on the platform while sync_status says `synced`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnBridge, writeConfigFile, type BridgeProcess } from '../helpers/bridge-process.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  startTestBridge,
  statusRows,
  testConfigYaml,
  waitForCatchUp,
} from '../helpers/pipeline.js';

const SOURCES = `
  - name: plain
    table: crm.plain_profile
    mode: row
    columns: { thirdId: cust_no, groups: groups }
    match: { isMatching: false }
`;

describe('a crash while the platform fails (row mode, default replica identity)', () => {
  const fx = usePipelineFixture('crash_retrying', {
    per: 'file',
    schema: `
      CREATE SCHEMA crm;
      CREATE TABLE crm.plain_profile (cust_no text PRIMARY KEY, groups text, note text);`,
  });
  let spawned: BridgeProcess | undefined;

  afterEach(async () => {
    fx.sim.setFaults({ errorRate: 0 });
    await spawned?.kill('SIGKILL');
    spawned = undefined;
  });

  const key = (id: string): string => JSON.stringify({ cust_no: id });

  /**
   * Syncs `id` with `from`, then, with every request failing, changes it to `to` and kills the
   * bridge once its row shows `retrying`; restarts with the platform answering and catches up.
   */
  async function crashWhileRetrying(id: string, from: string, to: string): Promise<void> {
    const yaml = testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, sources: SOURCES });
    spawned = spawnBridge(writeConfigFile(yaml));
    await eventually(() => expect(spawned?.output()).toMatch(/replication stream started/), 30_000);
    await fx.db.query(`INSERT INTO crm.plain_profile (cust_no, groups) VALUES ($1, $2)`, [id, from]);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', id)).toEqual(from.split(',').sort());

    fx.sim.setFaults({ errorRate: 1 });
    await fx.db.query(`UPDATE crm.plain_profile SET groups = $2 WHERE cust_no = $1`, [id, to]);
    // The moment: the change's first request failed and its row says so.
    await eventually(async () =>
      expect((await statusRows(fx.db, 'plain')).get(key(id))?.status).toBe('retrying'),
    );
    expect(await spawned.kill('SIGKILL')).toBe('SIGKILL');
    spawned = undefined;
    // Nothing of the change reached the platform.
    expect(fx.sim.groupsOf('thirdId', id)).toEqual(from.split(',').sort());

    fx.sim.setFaults({ errorRate: 0 });
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, sources: SOURCES });
    await waitForCatchUp(fx.db);
  }

  it('an add that was retrying at the crash is sent after the restart', async () => {
    await crashWhileRetrying('r1', 'a', 'a,c');
    expect(fx.sim.groupsOf('thirdId', 'r1')).toEqual(['a', 'c']);
    expect((await statusRows(fx.db, 'plain')).get(key('r1'))).toMatchObject({ op: 'add', status: 'synced' });
  });

  it('a removal that was retrying at the crash is sent after the restart', async () => {
    await crashWhileRetrying('r2', 'a,b', 'b,c');
    expect(fx.sim.groupsOf('thirdId', 'r2')).toEqual(['b', 'c']);
    expect((await statusRows(fx.db, 'plain')).get(key('r2'))).toMatchObject({ op: 'add', status: 'synced' });
  });
});
