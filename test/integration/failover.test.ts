/**
 * A real failover (issue 23): a primary and a physical standby that synchronizes slots, the bridge
 * and a writer reaching the primary through one address (a TCP proxy). The primary crashes while
 * the writer runs, the standby is promoted and the address moves to it. The bridge must go on from
 * the slot the standby synchronized: no re-sync, nothing lost, the platform equal to the new
 * primary. Failover slots exist from PostgreSQL 17: this runs on TUZHAN_TEST_PG_MAJOR when that is
 * 17 or later (the version matrix), on 18 in a plain `npm test`.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runChecks } from '../../src/cli/check.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { readSlot } from '../../src/source/slot.js';
import { formatLsn } from '../../src/util/lsn.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { databaseAt, type TestDatabase } from '../helpers/database.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { startCluster, type PgCluster } from '../helpers/pg-cluster.js';
import {
  CRM_SCHEMA,
  eventually,
  expectedGroups,
  startTestBridge,
  waitForCatchUp,
  waitForStreaming,
  type TestBridge,
} from '../helpers/pipeline.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

/** The failover test's major (the harness's server runs the test of `on` before 17). */
const major = Number(process.env.TUZHAN_TEST_PG_MAJOR || 18);
const SLOT = 'tuzhan_failover';
// Profiles and memberships on customers of their own: how two sources share a customer is another
// issue's subject (row mode removing only its own groups), not this test's.
const CUSTOMERS = Array.from({ length: 30 }, (_, i) => `c${i + 1}`);
const MEMBERS = Array.from({ length: 30 }, (_, i) => `m${i + 1}`);
const IDS = [...CUSTOMERS, ...MEMBERS];

/** Commits small random changes, one transaction each, through `url`, until stopped; rides out outages. */
function startWriter(url: string): { commits: () => number; stop: () => Promise<void> } {
  let commits = 0;
  let stopped = false;
  const pick = (from: string[]): string => from[Math.floor(Math.random() * from.length)] as string;
  const group = (): string => `g${Math.floor(Math.random() * 5)}`;
  const loop = (async () => {
    while (!stopped) {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
      client.on('error', () => {});
      try {
        await client.connect();
        while (!stopped) {
          const r = Math.random();
          if (r < 0.4)
            await client.query(
              `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ($1, $2)
               ON CONFLICT (cust_no) DO UPDATE SET "Group Names" = excluded."Group Names"`,
              [pick(CUSTOMERS), `${group()},${group()}`],
            );
          else if (r < 0.5)
            await client.query(`DELETE FROM crm.customer_profile WHERE cust_no = $1`, [pick(CUSTOMERS)]);
          else if (r < 0.85)
            await client.query(
              `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
              [pick(MEMBERS), `m${Math.floor(Math.random() * 4)}`],
            );
          else await client.query(`DELETE FROM crm.member_group WHERE member_id = $1`, [pick(MEMBERS)]);
          commits += 1;
          await new Promise((res) => setTimeout(res, 5));
        }
      } catch {
        await new Promise((res) => setTimeout(res, 100)); // the primary is down: try again
      } finally {
        await client.end().catch(() => {});
      }
    }
  })();
  return {
    commits: () => commits,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

describe.runIf(inject('pgMajor') < 17)(`postgres.failover on PostgreSQL ${inject('pgMajor')}`, () => {
  const fx = usePipelineFixture('failover-old', { per: 'file' });

  it('on: the start stops before creating anything, naming the key and the remedy', async () => {
    await expect(startTestBridge({ db: fx.db, apiUrl: fx.sim.url, failover: 'on' })).rejects.toThrow(
      /postgres\.failover is on, but PostgreSQL [\d.]+ has no failover slots.*fix: set postgres\.failover: auto or off/,
    );
    expect(await readSlot(fx.db as never, fx.db.name)).toBeNull();
  });
});

describe.runIf(major >= 17)(`failover to a promoted standby (PostgreSQL ${major})`, () => {
  let cluster: PgCluster;
  let proxy: TcpProxy;
  let sim: Simulator;
  let running: TestBridge | undefined;
  /** The database as clients see it: through the address that moves. */
  let db: TestDatabase;

  beforeAll(async () => {
    cluster = await startCluster(major, CRM_SCHEMA);
    proxy = await startTcpProxy('127.0.0.1', cluster.primary.port);
    db = databaseAt('postgres', proxy.url(cluster.primary.url));
    sim = await startSimulator({ token: 'test-token' });
  }, 120_000);
  afterAll(async () => {
    await running?.stop(2000).catch(() => {});
    await sim?.close();
    await proxy?.close();
    await cluster?.close();
  });

  it('makes an existing slot a failover slot at its next start', async () => {
    const slot = 'tuzhan_alter';
    const log = captureLogger('info');
    const off = await startTestBridge({ db, apiUrl: sim.url, slot, failover: 'off' });
    await off.stop();
    expect((await readSlot(cluster.primary.db as never, slot))?.failover).toBe(false);
    const auto = await startTestBridge({ db, apiUrl: sim.url, slot, logger: log.logger });
    await auto.stop();
    expect((await readSlot(cluster.primary.db as never, slot))?.failover).toBe(true);
    expect(log.lines().map((l) => l.msg)).toContain(
      'the slot is now a failover slot: standbys that synchronize slots keep it',
    );
    await cluster.primary.db.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
  });

  it('goes on from the synchronized slot: no re-sync, nothing lost, the platform equal to the new primary', async () => {
    const log = captureLogger('info');
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'c' || i, 'start' FROM generate_series(1, 20) i`,
    );
    running = await startTestBridge({ db, apiUrl: sim.url, slot: SLOT, logger: log.logger });
    let failed: unknown;
    running.bridge.done.catch((err: unknown) => (failed = err));
    const ready: boolean[] = [];
    running.bridge.events.on('failover', (e) => ready.push(e.ready));
    await waitForStreaming(db, SLOT);
    expect((await readSlot(cluster.primary.db as never, SLOT))?.failover, 'created as a failover slot').toBe(
      true,
    );

    const writer = startWriter(db.url);
    // The standby's copy of the slot is synchronized (and has moved with the stream) before the crash.
    const created = (await readSlot(cluster.primary.db as never, SLOT))?.confirmedFlushLsn ?? 0n;
    await eventually(async () => {
      const { rows } = await cluster.standby.db.query<{ synced: boolean; ahead: boolean }>(
        `SELECT synced, confirmed_flush_lsn > $2::pg_lsn AS ahead FROM pg_replication_slots WHERE slot_name = $1`,
        [SLOT, formatLsn(created)],
      );
      expect(rows[0]).toEqual({ synced: true, ahead: true });
    }, 60_000);
    // check and the metric say the slot can fail over, with nothing to fix.
    const report = await runChecks(running.config);
    const failover = report.findings.filter((f) => f.check.startsWith('failover'));
    expect(failover.map((f) => [f.check, f.ok, f.warn ?? false])).toEqual([
      ['failover: slot', true, false],
      ['failover: standbys', true, false],
      ['failover: slot sync', true, false],
    ]);
    await eventually(() => expect(ready.at(-1)).toBe(true), 15_000);

    // The standby stops synchronizing slots from here on, so that its copy certainly lags what the
    // bridge confirms on the primary before the crash (the sync worker runs every few hundred
    // milliseconds: left on, the copy may or may not have caught up at the crash).
    await cluster.standby.db.query(`ALTER SYSTEM SET sync_replication_slots = off`);
    await cluster.standby.db.query(`SELECT pg_reload_conf()`);
    await eventually(async () => {
      const { rows } = await cluster.standby.db.query(
        `SELECT 1 FROM pg_stat_activity WHERE backend_type = 'slotsync worker'`,
      );
      expect(rows).toEqual([]);
    }, 15_000);
    const copy = (
      await cluster.standby.db.query<{ lsn: string }>(
        `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`,
        [SLOT],
      )
    ).rows[0]?.lsn as string;
    await eventually(async () => {
      const { rows } = await cluster.primary.db.query<{ past: boolean }>(
        `SELECT confirmed_flush_lsn > $2::pg_lsn AS past FROM pg_replication_slots WHERE slot_name = $1`,
        [SLOT, copy],
      );
      expect(rows[0]?.past, 'the primary has confirmed past the standby copy').toBe(true);
    }, 15_000);

    // The moment: the writer is committing and the bridge streaming when the primary crashes.
    const before = writer.commits();
    await eventually(() => expect(writer.commits()).toBeGreaterThan(before + 20), 10_000, 10);
    await cluster.primary.stop('immediate');
    const atCrash = writer.commits();
    await cluster.standby.promote();
    proxy.retarget('127.0.0.1', cluster.standby.port);
    // Writes go on against the new primary.
    await eventually(() => expect(writer.commits()).toBeGreaterThan(atCrash + 20), 30_000, 50);
    await writer.stop();

    await waitForCatchUp(db, SLOT, 90_000);
    const platform: Record<string, string[]> = {};
    for (const id of IDS) {
      const g = sim.groupsOf('thirdId', id);
      if (g && g.length) platform[id] = [...g].sort();
    }
    expect(platform).toEqual(await expectedGroups(db));
    // No re-sync: one snapshot (the first start), and the bridge never stopped.
    const messages = log.lines().map((l) => String(l.msg));
    expect(messages.filter((m) => m === 'slot created; reading the snapshot')).toHaveLength(1);
    expect(messages.filter((m) => /re-sync/.test(m))).toEqual([]);
    expect(failed).toBeUndefined();
    // The synchronized copy lags the primary's slot: the bridge noticed and streamed from the copy's
    // position (the new timeline's WAL past it is not what it confirmed on the old primary).
    expect(messages).toContain(
      'the slot is behind what this bridge confirmed (a crash or a promoted standby): streaming from the slot',
    );
    // The ledger tells the truth: every row the new primary holds is synced.
    const unsettled = await db.query(
      `SELECT source, row_key, status FROM "Tuzhan Sync".sync_status WHERE status NOT IN ('synced', 'skipped')`,
    );
    expect(unsettled.rows).toEqual([]);
    expect((await readSlot(db as never, SLOT))?.failover).toBe(true);
  }, 240_000);
});
