/**
 * SIGTERM at a moment of the start, or of a takeover of the slot, ends `tuzhan-cdc run` cleanly
 * (exit 0, nothing half-made): the stop's one signal reaches the step in progress. Each test shows
 * it hit its moment before the signal. (During the first-start snapshot:
 * test/integration/cli-run.test.ts; while streaming with requests in flight: claims-shutdown.test.ts.)
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { leaderLockKey } from '../../src/source/leader.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { startCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { unanswered } from '../helpers/moments.js';
import {
  eventually,
  startTestBridge,
  testConfigYaml,
  type TestBridge,
  waitForCatchUp,
  waitForStreaming,
} from '../helpers/pipeline.js';

describe('SIGTERM during the start', () => {
  const fx = usePipelineFixture('stop moments', { per: 'file' });
  let active: TestBridge | undefined;

  afterAll(async () => {
    await active?.stop();
  });

  it('during the startup checks (the platform asked before a first start): exit 0, nothing created', async () => {
    fx.sim.setFaults({ latencyMs: 1500 });
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: 'stop_checks', apiUrl: fx.sim.url }));
    const run = startCli(['--config', file, 'run'], { LOG_LEVEL: 'info' });
    // The moment: the platform holds the first start's question, unanswered.
    await eventually(() => expect(unanswered(fx.sim.stats())).toBe(1), 30_000, 5);
    const signalled = Date.now();
    run.child.kill('SIGTERM');
    const r = await run.exited;
    fx.sim.setFaults({ latencyMs: 0 });
    expect(r.code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(r.stdout).toContain('stopped before streaming began');
    expect(r.stdout).not.toContain('"level":"fatal"');
    // Nothing after the step in progress ran: no status schema, no slot, no publication.
    const made = await fx.db.query<{ schema: boolean; slot: boolean; publication: boolean }>(
      `SELECT to_regnamespace('"Tuzhan Sync"') IS NOT NULL AS schema,
              EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'stop_checks') AS slot,
              EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'stop_checks') AS publication`,
    );
    expect(made.rows[0]).toEqual({ schema: false, slot: false, publication: false });
  });

  it('during the standby wait: exit 0 at once, the active bridge untouched', async () => {
    active = await startTestBridge({ db: fx.db, slot: 'stop_standby', apiUrl: fx.sim.url });
    // The active bridge streams: its walsender holds the slot.
    const pid = await eventually(async () => {
      const r = await fx.db.query<{ pid: number | null }>(
        `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = 'stop_standby'`,
      );
      expect(r.rows[0]?.pid).toEqual(expect.any(Number));
      return r.rows[0]?.pid;
    }, 30_000);
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: 'stop_standby', apiUrl: fx.sim.url }));
    const standby = startCli(['--config', file, 'run'], { LOG_LEVEL: 'info' });
    // The moment: it waits for the slot's lock as a standby.
    await eventually(() => expect(standby.stdout()).toContain('waiting as a standby'), 30_000, 20);
    const signalled = Date.now();
    standby.child.kill('SIGTERM');
    const r = await standby.exited;
    expect(r.code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(r.stdout).toContain('stopped before streaming began');
    expect(r.stdout).not.toContain('replication stream started');
    const after = await fx.db.query<{ pid: number }>(
      `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = 'stop_standby'`,
    );
    expect(after.rows[0]?.pid).toBe(pid);
  });

  it('while taking the slot over again after losing its lock: exit 0, streaming not resumed', async () => {
    const slot = 'stop_takeover';
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot, apiUrl: fx.sim.url }));
    // A short shutdown timeout: a stop that hangs shows as exit 1 within seconds.
    const run = startCli(['--config', file, 'run', '--shutdown-timeout', '3000'], { LOG_LEVEL: 'info' });
    const key = leaderLockKey(slot);
    const holder = new pg.Client({ connectionString: fx.db.url });
    await holder.connect();
    try {
      await eventually(() => expect(run.stdout()).toContain('replication stream started'), 30_000, 20);
      // The test becomes the other bridge: its wait for the lock is granted once the bridge's lock
      // connection dies, so the bridge goes back to waiting as a standby.
      const lockers = (granted: boolean) =>
        fx.db.query<{ pid: number }>(
          `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = $3
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = ($1::int)::oid AND objid = ($2::int)::oid`,
          [...key, granted],
        );
      const { rows } = await lockers(true);
      expect(rows).toHaveLength(1);
      const taken = holder.query('SELECT pg_advisory_lock($1, $2)', key);
      await eventually(async () => expect((await lockers(false)).rows).toHaveLength(1), 10_000, 20);
      await fx.db.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      await taken;
      await eventually(() => expect(run.stdout()).toContain('waiting as a standby'), 30_000, 20);
      // The takeover is held mid-way: the sent positions it reads first wait behind this lock.
      await holder.query(`BEGIN; LOCK TABLE "Tuzhan Sync".sent_position IN ACCESS EXCLUSIVE MODE`);
      await holder.query('SELECT pg_advisory_unlock($1, $2)', key);
      // The moment: it holds the lock again ("took over"), its read of the sent positions waits.
      await eventually(() => expect(run.stdout()).toContain('took over the slot'), 30_000, 20);
      await eventually(
        async () => {
          const w = await fx.db.query(
            `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND query LIKE '%sent_position%'`,
          );
          expect(w.rows).toHaveLength(1);
        },
        10_000,
        20,
      );
      run.child.kill('SIGTERM');
      await eventually(() => expect(run.stderr()).toContain('SIGTERM: stopping'), 10_000, 20);
      await holder.query('COMMIT');
      const r = await run.exited;
      expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(0);
      // It stopped where it was: no second replication stream after the takeover.
      expect(r.stdout.split('replication stream started')).toHaveLength(2);
      const after = await fx.db.query<{ active: boolean }>(
        `SELECT active FROM pg_replication_slots WHERE slot_name = $1`,
        [slot],
      );
      expect(after.rows).toEqual([{ active: false }]);
    } finally {
      await holder.end();
    }
  });

  // In process: what `run` makes of a stop is the bridge's `done`, which rejects only with a failure.
  it('during the re-sync of a slot lost while streaming: the bridge ends stopped, not failed', async () => {
    const slot = 'stop_resync';
    const log = captureLogger('info');
    const running = await startTestBridge({
      db: fx.db,
      slot,
      apiUrl: fx.sim.url,
      onSlotLost: 'resync',
      logger: log.logger,
    });
    const holder = new pg.Client({ connectionString: fx.db.url });
    await holder.connect();
    try {
      await waitForStreaming(fx.db, slot);
      // A row the re-sync would read and send, were it not stopped.
      await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s1', 'one')`);
      await waitForCatchUp(fx.db, slot);
      // The re-sync is held at its first step: the sent positions it reads wait behind this lock.
      await holder.query(`BEGIN; LOCK TABLE "Tuzhan Sync".sent_position IN ACCESS EXCLUSIVE MODE`);
      // The slot goes while its walsender is cut off (an active slot cannot be dropped).
      await eventually(
        async () => {
          await fx.db.query(
            `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`,
            [slot],
          );
          await fx.db.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
        },
        30_000,
        50,
      );
      // The moment: the re-sync has begun and waits.
      const said = () => log.lines().map((l) => l.msg);
      await eventually(
        () => expect(said()).toContain('the slot is lost; re-syncing every source from a new slot'),
        30_000,
        20,
      );
      await eventually(
        async () => {
          const w = await fx.db.query(
            `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND query LIKE '%sent_position%'`,
          );
          expect(w.rows).toHaveLength(1);
        },
        30_000,
        20,
      );
      const stopped = running.bridge.stop(5000);
      await holder.query('COMMIT');
      await stopped;
      await expect(running.bridge.done).resolves.toBeUndefined();
      // Stopped where it was: no new slot, no snapshot (the next start makes them).
      const lost = said().lastIndexOf('the slot is lost; re-syncing every source from a new slot');
      expect(said().slice(lost)).not.toContain('slot created; reading the snapshot');
      const slots = await fx.db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
      expect(slots.rows).toHaveLength(0);
    } finally {
      await holder.end();
      await running.stop().catch(() => {});
    }
  });
});
