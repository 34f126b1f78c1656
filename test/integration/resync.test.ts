/**
 * Re-syncing from a new slot (issue 15): after a schema change the WAL cannot get past, or a slot
 * that is gone, `run --resync` (or `postgres.onSlotLost: resync`) re-syncs every source, and it
 * removes too: customers deleted and groups removed while nothing was streamed leave the platform.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/source/checks.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import {
  eventually,
  expectedGroups,
  startTestBridge,
  statusRows,
  testConfig,
  waitForCatchUp,
} from '../helpers/pipeline.js';

describe('re-sync', () => {
  const fx = usePipelineFixture('resync');

  afterEach(async () => {
    await fx.running?.stop().catch(() => {});
    fx.running = undefined;
  });

  const IDS = ['c1', 'c2', 'c3', 'c4', 'c9', 'm1', 'm2'];

  function platform(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const id of IDS) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g && g.length) out[id] = [...g].sort();
    }
    return out;
  }

  async function seed(): Promise<void> {
    await fx.db.query(`
      INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES
        ('c1', '1391', 'a,b'), ('c2', '1392', 'b'), ('c3', '1393', 'c');
      INSERT INTO crm.member_group (member_id, group_name) VALUES ('m1', 'x'), ('m1', 'y'), ('m2', 'x');`);
  }

  /** What happens while nothing streams: a delete, a group change, an identity change, memberships. */
  async function changeWhileDark(mobile = true): Promise<void> {
    await fx.db.query(`
      DELETE FROM crm.customer_profile WHERE cust_no = 'c1';
      UPDATE crm.customer_profile SET "Group Names" = 'z' WHERE cust_no = 'c2';
      UPDATE crm.customer_profile SET cust_no = 'c4'${mobile ? ", mobile = '1394'" : ''} WHERE cust_no = 'c3';
      DELETE FROM crm.member_group WHERE member_id = 'm1' AND group_name = 'y';
      UPDATE crm.member_group SET group_name = 'w' WHERE member_id = 'm2';`);
  }

  it('a dropped mapped column stops with a remedy that works: restore it, then run --resync', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await seed();
    await waitForCatchUp(fx.db);
    const before = platform();
    expect(before).toEqual(await expectedGroups(fx.db));

    await fx.db.query(`ALTER TABLE crm.customer_profile DROP COLUMN mobile`);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c9', 'dark')`);
    const message = /column "mobile" of crm.customer_profile is gone .*run `tuzhan-cdc run --resync`/;
    await expect(fx.running.bridge.done).rejects.toThrow(message);
    await fx.running.stop();
    fx.running = undefined;
    await changeWhileDark(false);

    // While the column is gone, the start says so, and says nothing wrong about replica identity.
    const config = testConfig({ db: fx.db, apiUrl: fx.sim.url });
    const findings = (await checkSource(fx.db as never, config.sources[0] as never)).findings;
    const failed = findings.filter((f) => !f.ok).map((f) => f.check);
    expect(failed).toEqual(['source profiles: columns']);

    // Restored, the replay still cannot get past the changes made without it...
    await fx.db.query(`ALTER TABLE crm.customer_profile ADD COLUMN mobile text`);
    await fx.db.query(`UPDATE crm.customer_profile SET mobile = '139' || cust_no`);
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await expect(fx.running.bridge.done).rejects.toThrow(message);
    await fx.running.stop();
    // ...and --resync gets past them: the platform ends equal to the database.
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, resync: true });
    await waitForCatchUp(fx.db);
    expect(platform()).toEqual(await expectedGroups(fx.db));
    expect(platform()).not.toHaveProperty('c1');
    const { rows } = await fx.db.query<{ reason: string }>(
      `SELECT snapshot_reason AS reason FROM "Tuzhan Sync".bridge_state WHERE slot = $1`,
      [fx.db.name],
    );
    expect(rows[0]?.reason).toBe('run --resync');
    // Later changes stream as usual.
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c3', 'again')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'c3')).toEqual(['again']);
  });

  it('a slot that vanished stops the start with the remedy; run --resync removes what is gone', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await seed();
    await waitForCatchUp(fx.db);
    await fx.running.stop();
    fx.running = undefined;
    await fx.db.query(`SELECT pg_drop_replication_slot($1)`, [fx.db.name]);
    await changeWhileDark();

    await expect(startTestBridge({ db: fx.db, apiUrl: fx.sim.url })).rejects.toThrow(
      /replication slot \S+ no longer exists: .*run `tuzhan-cdc run --resync`/,
    );
    // The stale state is still on the platform: c1's groups, c3 under its old key, m1's y, m2's x.
    expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual(['a', 'b']);

    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, resync: true });
    await waitForCatchUp(fx.db);
    expect(platform()).toEqual(await expectedGroups(fx.db));
    expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual([]);
    expect(fx.sim.groupsOf('thirdId', 'c3')).toEqual([]);
    const profiles = await statusRows(fx.db, 'profiles');
    expect(profiles.get('{"cust_no":"c1"}')).toMatchObject({ op: 'delete', status: 'synced' });
    // c2 went from b to z: b deleted, then z added.
    expect(profiles.get('{"cust_no":"c2"}')).toMatchObject({ op: 'add', status: 'synced' });
  });

  it('postgres.onSlotLost: resync re-syncs on its own, removing what is gone', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, onSlotLost: 'resync' });
    await seed();
    await waitForCatchUp(fx.db);
    await fx.running.stop();
    fx.running = undefined;
    await fx.db.query(`SELECT pg_drop_replication_slot($1)`, [fx.db.name]);
    await changeWhileDark();

    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, onSlotLost: 'resync' });
    await waitForCatchUp(fx.db);
    expect(platform()).toEqual(await expectedGroups(fx.db));
    const { rows } = await fx.db.query<{ reason: string }>(
      `SELECT snapshot_reason AS reason FROM "Tuzhan Sync".bridge_state WHERE slot = $1`,
      [fx.db.name],
    );
    expect(rows[0]?.reason).toMatch(/no longer exists \(onSlotLost: resync\)/);
  });

  // The network to the database goes (a proxy cut), the slot is dropped meanwhile, and changes are
  // made while no slot exists: only a re-sync can bring them, and the bridge, still running, does.
  it('postgres.onSlotLost: resync, a slot that vanished while streaming: re-synced without a restart', async () => {
    const u = new URL(fx.db.url);
    const proxy = await startTcpProxy(u.hostname, Number(u.port));
    try {
      const log = captureLogger('info');
      fx.running = await startTestBridge({
        db: { ...fx.db, url: proxy.url(fx.db.url) },
        apiUrl: fx.sim.url,
        onSlotLost: 'resync',
        logger: log.logger,
      });
      await seed();
      await waitForCatchUp(fx.db);
      proxy.cut();
      // Dropped once its walsender has noticed the cut (an active slot cannot be dropped).
      await eventually(() => fx.db.query(`SELECT pg_drop_replication_slot($1)`, [fx.db.name]), 30_000);
      await changeWhileDark();
      proxy.restore();
      await eventually(async () => {
        const { rows } = await fx.db.query(
          `SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active`,
          [fx.db.name],
        );
        expect(rows).toHaveLength(1);
      }, 60_000);
      await waitForCatchUp(fx.db, fx.db.name, 60_000);
      expect(platform()).toEqual(await expectedGroups(fx.db));
      expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual([]);
      expect(fx.sim.groupsOf('thirdId', 'c3')).toEqual([]);
      expect(log.lines().map((l) => l.msg)).toContain(
        'the slot is lost; re-syncing every source from a new slot',
      );
      // Still the same bridge, streaming on.
      await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c9', 'later')`);
      await waitForCatchUp(fx.db);
      expect(fx.sim.groupsOf('thirdId', 'c9')).toEqual(['later']);
    } finally {
      await fx.running?.stop().catch(() => {});
      fx.running = undefined;
      await proxy.close();
    }
  });
});
