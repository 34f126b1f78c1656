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
import { describe, expect, it, vi } from 'vitest';
import { captureLogger } from '../helpers/capture-logger.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { commitReturningLsn, confirmedPast } from '../helpers/moments.js';
import { eventually, startTestBridge, statusRows, waitForCatchUp } from '../helpers/pipeline.js';

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
  const fx = usePipelineFixture('claims wal sender', { per: 'file' });

  /**
   * The slot's walsender. Not its pg_stat_replication.reply_time: that is the time the client
   * writes into its status messages, and pg-logical-replication 2.5.0 encodes it wrongly (an epoch
   * 7 days off, the low word in milliseconds), so it reads as days ahead and barely moves. The
   * server times wal_sender_timeout from when replies arrive; a timeout ends the walsender, which
   * the bridge then replaces: the same pid throughout is the proof.
   */
  async function walsender(): Promise<{ pid: number | null }> {
    const { rows } = await fx.db.query<{ pid: number | null }>(
      `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1`,
      [fx.db.name],
    );
    return { pid: rows[0]?.pid ?? null };
  }

  it('keeps the walsender while the stream is held for several times the timeout', async () => {
    const log = captureLogger('warn');
    const url = new URL(fx.db.url);
    url.searchParams.set('options', `-c wal_sender_timeout=${WAL_SENDER_TIMEOUT_MS}`);
    fx.running = await startTestBridge({
      db: { ...fx.db, url: url.toString() },
      apiUrl: fx.sim.url,
      logger: log.logger,
      batching: { maxBufferedRows: 5, maxBatchSize: 5 },
    });
    await waitForCatchUp(fx.db);
    const before = await walsender();
    expect(before.pid).not.toBeNull();
    // The load as the buffers report it, and how often it left 5 once it was held there.
    let load = 0;
    let held = false;
    let leftHold = 0;
    fx.running.bridge.events.on('buffer', (b) => {
      load = b.buffered + b.inflight;
      if (held && load !== 5) leftHold += 1;
    });

    // The platform fails every request: five rows in flight fill the buffers, and the stream stops
    // reading with twenty more rows of the transaction unread.
    fx.sim.setFaults({ errorRate: 1 });
    const lsn = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'w' || i, 'g' FROM generate_series(1, 25) i`,
    ]);
    await eventually(() => expect(fx.sim.stats().served500).toBeGreaterThan(0), 10_000, 10);
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
    expect(fx.sim.stats().byOptType.add.requests).toBe(0);
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);

    fx.sim.setFaults({ errorRate: 0 });
    await waitForCatchUp(fx.db);
    expect((await walsender()).pid).toBe(before.pid);
    const rows = [...(await statusRows(fx.db, 'profiles')).values()];
    expect(rows.filter((r) => r.status === 'synced')).toHaveLength(25);
    expect(fx.sim.groupsOf('thirdId', 'w25')).toEqual(['g']);
    expect(log.lines().map((l) => l.msg)).not.toContain('replication stream lost; reconnecting');
  });
});
