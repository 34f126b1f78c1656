/**
 * docs/design.md, one active bridge per slot: an instance whose lock connection fails lets go and
 * waits longer than a standby polls before it tries for the lock again, so the healthy standby
 * takes over rather than the instance that just lost its connection. The instances here are the
 * leadership units themselves (src/source/leader.ts) on the test database: the supervisor asks
 * for the lock again at once after losing it, as the first instance does below.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/ops/logger.js';
import { Leadership } from '../../src/source/leader.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { eventually } from '../helpers/pipeline.js';

const YIELD_MS = 2000;

describe('the leader lock after a lost connection', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('claims leader');
  });
  afterAll(async () => {
    await db?.drop();
  });

  function leadership(o: { yieldMs?: number; pollMs: number }): Leadership {
    return new Leadership({
      clientConfig: { connectionString: db.url },
      slot: db.name,
      logger: silentLogger(),
      heartbeatMs: 500,
      ...o,
    });
  }

  /** Backend pids holding the slot's advisory lock. */
  async function holders(): Promise<number[]> {
    const { rows } = await db.query<{ pid: number }>(
      `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    return rows.map((r) => r.pid);
  }

  it('yields to the standby: it tries again only after its back-off, and the standby takes over', async () => {
    const stop = new AbortController();
    const first = leadership({ yieldMs: YIELD_MS, pollMs: 50 });
    const standby = leadership({ pollMs: 50 });
    try {
      await first.acquire(stop.signal);
      const [pid] = await holders();
      expect(pid).toBeDefined();
      let lostAt = 0;
      first.onLost(() => (lostAt = Date.now()));
      let standbyHolds = false;
      const standing = standby.acquire(stop.signal).then(() => (standbyHolds = true));

      await db.query('SELECT pg_terminate_backend($1)', [pid]);
      await eventually(() => expect(lostAt).toBeGreaterThan(0), 10_000, 10);
      expect(first.held).toBe(false);
      // As the supervisor does: straight back to waiting for the lock.
      let firstHolds = false;
      const again = first.acquire(stop.signal).then(() => (firstHolds = true));

      // The standby, polling every 50 ms, takes the lock; the first is still backing off.
      await Promise.race([standing, again]);
      expect(firstHolds).toBe(false);
      expect(standbyHolds).toBe(true);
      expect(await holders()).toHaveLength(1);

      // Once the standby lets go, the first takes the lock, and not before its back-off ended
      // (a lower bound: a loaded machine only makes it later).
      await standby.release();
      await again;
      expect(first.held).toBe(true);
      expect(Date.now() - lostAt).toBeGreaterThanOrEqual(YIELD_MS - 5);
    } finally {
      stop.abort();
      await first.release();
      await standby.release();
    }
  });
});
