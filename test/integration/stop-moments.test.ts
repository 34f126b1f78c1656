/**
 * SIGTERM at a moment of the start ends `tuzhan-cdc run` cleanly (exit 0, nothing half-made): the
 * stop's one signal reaches the step in progress. Each test shows it hit its moment before the
 * signal. (During the first-start snapshot: test/integration/cli-run.test.ts; while streaming with
 * requests in flight: claims-shutdown.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { startCli, writeConfigFile } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { unanswered } from '../helpers/moments.js';
import {
  CRM_SCHEMA,
  eventually,
  startTestBridge,
  testConfigYaml,
  type TestBridge,
} from '../helpers/pipeline.js';

describe('SIGTERM during the start', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let active: TestBridge | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('stop moments');
    await db.query(CRM_SCHEMA);
  });
  afterAll(async () => {
    await active?.stop();
    await sim?.close();
    await db?.drop();
  });

  it('during the startup checks (the platform asked before a first start): exit 0, nothing created', async () => {
    sim.setFaults({ latencyMs: 1500 });
    const file = writeConfigFile(testConfigYaml({ db, slot: 'stop_checks', apiUrl: sim.url }));
    const run = startCli(['--config', file, 'run'], { LOG_LEVEL: 'info' });
    // The moment: the platform holds the first start's question, unanswered.
    await eventually(() => expect(unanswered(sim.stats())).toBe(1), 30_000, 5);
    const signalled = Date.now();
    run.child.kill('SIGTERM');
    const r = await run.exited;
    sim.setFaults({ latencyMs: 0 });
    expect(r.code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(r.stdout).toContain('stopped before streaming began');
    expect(r.stdout).not.toContain('"level":"fatal"');
    // Nothing after the step in progress ran: no status schema, no slot, no publication.
    const made = await db.query<{ schema: boolean; slot: boolean; publication: boolean }>(
      `SELECT to_regnamespace('"Tuzhan Sync"') IS NOT NULL AS schema,
              EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'stop_checks') AS slot,
              EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'stop_checks') AS publication`,
    );
    expect(made.rows[0]).toEqual({ schema: false, slot: false, publication: false });
  });

  it('during the standby wait: exit 0 at once, the active bridge untouched', async () => {
    active = await startTestBridge({ db, slot: 'stop_standby', apiUrl: sim.url });
    // The active bridge streams: its walsender holds the slot.
    const pid = await eventually(async () => {
      const r = await db.query<{ pid: number | null }>(
        `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = 'stop_standby'`,
      );
      expect(r.rows[0]?.pid).toEqual(expect.any(Number));
      return r.rows[0]?.pid;
    }, 30_000);
    const file = writeConfigFile(testConfigYaml({ db, slot: 'stop_standby', apiUrl: sim.url }));
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
    const after = await db.query<{ pid: number }>(
      `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = 'stop_standby'`,
    );
    expect(after.rows[0]?.pid).toBe(pid);
  });
});
