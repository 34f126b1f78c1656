/**
 * WAL headroom is warned about before it runs out (README "Operations", src/pipeline/slot-watch.ts):
 * with `max_slot_wal_keep_size` set, one warning when the slot has used half of it, one more at
 * 80 %, each once. Runs on a PostgreSQL of its own (the setting is server-wide); the platform fails
 * every request, so the slot keeps its position while WAL is written a few megabytes at a time.
 * After each step the test reads the headroom itself and waits for the bridge's next measurement of
 * at least that much use, then checks which warnings exist against the share that measurement saw.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { startPostgres, type RunningPostgres } from '../../src/throwaway/postgres.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { databaseAt, type TestDatabase } from '../helpers/database.js';
import {
  CRM_SCHEMA,
  eventually,
  startTestBridge,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const MAX_KEEP = 64 * 1024 * 1024;

describe('WAL headroom warnings', () => {
  let server: RunningPostgres;
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;

  beforeAll(async () => {
    server = await startPostgres({
      prefer: ['local', 'embedded'],
      settings: { max_slot_wal_keep_size: '64MB', max_wal_size: '1GB' },
    });
    db = databaseAt('postgres', server.url);
    await db.query(CRM_SCHEMA);
    await db.query('CREATE TABLE public.junk (v text)');
    sim = await startSimulator({ token: 'test-token' });
  }, 60_000);
  afterAll(async () => {
    await running?.stop(2000).catch(() => {});
    await sim?.close();
    await server?.stop();
  });

  /** The slot's safe_wal_size as the server reports it now. */
  async function safeWalSize(): Promise<number> {
    const { rows } = await db.query<{ safe: string }>(
      `SELECT safe_wal_size::text AS safe FROM pg_replication_slots WHERE slot_name = $1`,
      [db.name],
    );
    return Number(rows[0]?.safe);
  }

  it('warns once at 50 % and once at 80 % of max_slot_wal_keep_size, never before', async () => {
    const log = captureLogger('warn');
    // The bridge's measurements of the headroom, as its walSafety events carry them.
    const measured: number[] = [];
    const waiters: Array<() => void> = [];
    running = await startTestBridge({ db, apiUrl: sim.url, logger: log.logger, lagIntervalMs: 100 });
    running.bridge.events.on('walSafety', (w) => {
      if (w.safeWalSize === null) return;
      measured.push(w.safeWalSize);
      for (const go of waiters.splice(0)) go();
    });
    await waitForCatchUp(db);
    sim.setFaults({ errorRate: 1 });
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('h1', 'x')`);
    await eventually(() => expect(sim.stats().served500).toBeGreaterThan(0));

    const warnings = (): string[] =>
      log
        .lines()
        .map((l) => String(l.msg))
        .filter((m) => m.includes('max_slot_wal_keep_size'));
    const at50 =
      'the slot has used 50% of max_slot_wal_keep_size: past it the server invalidates the slot and a re-sync is needed';
    const at80 = at50.replace('50%', '80%');
    const seen = new Set<string>();
    for (let step = 0; step < 60; step++) {
      // About 2 MB of WAL, then a measurement by the bridge that saw at least that much of it.
      await db.query(
        `INSERT INTO public.junk SELECT repeat(md5(i::text), 30) FROM generate_series(1, 2000) i`,
      );
      const safeNow = await safeWalSize();
      let safe = measured.at(-1) ?? Infinity;
      while (!(safe <= safeNow)) {
        await new Promise<void>((go) => waiters.push(go));
        safe = measured.at(-1) ?? Infinity;
      }
      const used = 1 - safe / MAX_KEEP;
      const expected = used >= 0.8 ? [at50, at80] : used >= 0.5 ? [at50] : [];
      expect(warnings(), `used ${(used * 100).toFixed(1)}%`).toEqual(expected);
      seen.add(expected.join('+'));
      if (used >= 0.8) break;
    }
    // Each band was measured at least once: below half, between half and 80 %, and past it.
    expect([...seen]).toEqual(['', at50, `${at50}+${at80}`]);
    expect((await db.query(`SELECT wal_status FROM pg_replication_slots`)).rows).not.toContainEqual({
      wal_status: 'lost',
    });
    sim.setFaults({ errorRate: 0 });
  }, 120_000);
});
