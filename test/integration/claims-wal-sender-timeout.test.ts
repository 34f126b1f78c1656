/**
 * docs/design.md "Positions": the bridge sends its confirmed position itself at an interval, "which
 * also keeps wal_sender_timeout from firing while backpressure holds the stream". While the stream
 * is held the socket is paused, so the server's keepalives (and their requests for a reply) go
 * unread: only those status messages tell the walsender the client is alive.
 *
 * The interval is 5 s and not configurable; the timeout can be made short for the bridge's own
 * connections only (wal_sender_timeout is a per-session setting since PostgreSQL 12, passed in the
 * URL's `options`), so the interval is shortened here, through the stream's `statusIntervalMs`
 * option, to keep the test a few seconds long: 500 ms against a 2 s timeout, held for 6 s.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { commitReturningLsn, confirmedPast } from '../helpers/moments.js';
import {
  CRM_SCHEMA,
  eventually,
  startTestBridge,
  statusRows,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const STATUS_INTERVAL_MS = 500;
const WAL_SENDER_TIMEOUT_MS = 2000;
const HOLD_MS = 3 * WAL_SENDER_TIMEOUT_MS;

vi.mock('../../src/source/stream.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/source/stream.js')>();
  class ShortIntervalStream extends original.ReplicationStream {
    constructor(o: ConstructorParameters<typeof original.ReplicationStream>[0]) {
      super({ ...o, statusIntervalMs: STATUS_INTERVAL_MS });
    }
  }
  return { ...original, ReplicationStream: ShortIntervalStream };
});

describe('wal_sender_timeout under backpressure', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ token: 'test-token' });
    db = await createTestDatabase('claims wal sender');
    await db.query(CRM_SCHEMA);
  });
  afterAll(async () => {
    await running?.stop();
    await sim.close();
    await db.drop();
  });

  /**
   * The slot's walsender. Not its pg_stat_replication.reply_time: that is the time the client
   * writes into its status messages, and pg-logical-replication 2.5.0 encodes it wrongly (an epoch
   * 7 days off, the low word in milliseconds), so it reads as days ahead and barely moves. The
   * server times wal_sender_timeout from when replies arrive; a timeout ends the walsender, which
   * the bridge then replaces: the same pid throughout is the proof.
   */
  async function walsender(): Promise<{ pid: number | null }> {
    const { rows } = await db.query<{ pid: number | null }>(
      `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1`,
      [db.name],
    );
    return { pid: rows[0]?.pid ?? null };
  }

  it('keeps the walsender while the stream is held for several times the timeout', async () => {
    const log = captureLogger('warn');
    const url = new URL(db.url);
    url.searchParams.set('options', `-c wal_sender_timeout=${WAL_SENDER_TIMEOUT_MS}`);
    running = await startTestBridge({
      db: { ...db, url: url.toString() },
      apiUrl: sim.url,
      logger: log.logger,
      batching: { maxBufferedRows: 5, maxBatchSize: 5 },
    });
    await waitForCatchUp(db);
    const before = await walsender();
    expect(before.pid).not.toBeNull();
    // The load as the buffers report it, and how often it left 5 once it was held there.
    let load = 0;
    let held = false;
    let leftHold = 0;
    running.bridge.events.on('buffer', (b) => {
      load = b.buffered + b.inflight;
      if (held && load !== 5) leftHold += 1;
    });

    // The platform fails every request: five rows in flight fill the buffers, and the stream stops
    // reading with twenty more rows of the transaction unread.
    sim.setFaults({ errorRate: 1 });
    const lsn = await commitReturningLsn(db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'w' || i, 'g' FROM generate_series(1, 25) i`,
    ]);
    await eventually(() => expect(sim.stats().served500).toBeGreaterThan(0), 10_000, 10);
    await eventually(() => expect(load).toBe(5), 10_000, 10);
    held = true;
    const until = Date.now() + HOLD_MS;
    let polls = 0;
    while (Date.now() < until) {
      // The moment, throughout: the same walsender (it heard from the bridge within the timeout),
      // while the buffers stay full and nothing of the transaction is confirmed.
      const now = await walsender();
      expect(now.pid).toBe(before.pid);
      expect(load).toBe(5);
      polls += 1;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(polls).toBeGreaterThan(10);
    expect(leftHold).toBe(0);
    expect(sim.stats().byOptType.add.requests).toBe(0);
    expect(await confirmedPast(db, db.name, lsn)).toBe(false);

    sim.setFaults({ errorRate: 0 });
    await waitForCatchUp(db);
    expect((await walsender()).pid).toBe(before.pid);
    const rows = [...(await statusRows(db, 'profiles')).values()];
    expect(rows.filter((r) => r.status === 'synced')).toHaveLength(25);
    expect(sim.groupsOf('thirdId', 'w25')).toEqual(['g']);
    expect(log.lines().map((l) => l.msg)).not.toContain('replication stream lost; reconnecting');
  });
});
