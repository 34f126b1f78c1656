import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeMessage } from '../../src/decode/pgoutput.js';
import { silentLogger } from '../../src/ops/logger.js';
import { ReplicationStream } from '../../src/source/stream.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { eventually } from '../helpers/pipeline.js';

/** Polls `stream.queued` until it has not changed for `quietMs`, and returns it. */
async function settledQueue(stream: ReplicationStream, quietMs = 500, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = stream.queued;
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error(`the queue kept growing: ${stream.queued} messages`);
    await new Promise((r) => setTimeout(r, 25));
    if (stream.queued !== last) {
      last = stream.queued;
      since = Date.now();
    }
  }
  return last;
}

describe('ReplicationStream', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('stream');
    await db.query(`CREATE TABLE t (id int PRIMARY KEY, v text)`);
    await db.query(`CREATE PUBLICATION ${db.name} FOR TABLE t`);
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [db.name]);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('stops reading while a handler waits and hands on every message in order after', async () => {
    const ids: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const stream = new ReplicationStream({
      clientConfig: { connectionString: db.url },
      slot: db.name,
      publication: db.name,
      logger: silentLogger(),
      confirmed: () => 0n,
      onIdlePosition: () => {},
      // Synchronous for every message but the 10th insert, which waits (as under backpressure).
      onMessage: (msg: ChangeMessage) => {
        if (msg.tag !== 'insert') return;
        ids.push(Number(msg.new.id));
        if (ids.length === 10) return gate;
      },
    });
    const running = stream.run();
    const rows = 20_000;
    await db.query(`INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, $1) g`, [rows]);
    const end = (await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]
      ?.lsn as string;

    // The handler now waits on the 10th insert while the server has the other 19,990 to send.
    await eventually(() => expect(ids).toHaveLength(10));
    // The socket is paused: only what was read before the pause (the rest of a socket chunk, maybe
    // nothing) is queued, and the queue stops growing. Without the pause it would grow until the
    // server had sent everything.
    const settled = await settledQueue(stream);
    expect(settled).toBeLessThan(rows / 2);
    // ... and it stays there: nothing more is read while the handler waits, although the server
    // has sent everything (its walsender waits for new WAL), here on loopback, where what is sent
    // lies in this process's socket, readable: a socket read on would have been read while the
    // queries below had their answers read from theirs.
    await eventually(async () => {
      const { rows } = await db.query<{ wait: string | null; sent: boolean }>(
        `SELECT a.wait_event AS wait, r.sent_lsn >= $2::pg_lsn AS sent
           FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
           JOIN pg_stat_replication r ON r.pid = s.active_pid
          WHERE s.slot_name = $1`,
        [db.name, end],
      );
      // PostgreSQL 17 renamed the wait event WalSenderWaitForWAL to WalSenderWaitForWal.
      expect({ ...rows[0], wait: rows[0]?.wait?.toLowerCase() }).toEqual({
        wait: 'walsenderwaitforwal',
        sent: true,
      });
    }, 30_000);
    await db.query('SELECT 1');
    expect(stream.queued).toBe(settled);
    expect(ids).toHaveLength(10);

    release();
    await eventually(() => expect(ids).toHaveLength(rows), 30_000);
    expect(ids).toEqual(Array.from({ length: rows }, (_, i) => i + 1));
    expect(stream.queued).toBe(0);
    await stream.stop();
    await running;
  });
});
