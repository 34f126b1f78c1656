/**
 * TRUNCATE of a source table (SPEC section 4, docs/design.md "TRUNCATE"): logged at warn and
 * recorded in sync_batch; `onTruncate: ignore` (the default) leaves the platform alone, and
 * `delete-all` first drains what the bridge holds, then deletes every key it synced.
 */
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import type { ApiRow, OptType } from '../../src/tuzhan/types.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { commitReturningLsn } from '../helpers/moments.js';
import {
  CRM_SCHEMA,
  statusRows,
  startTestBridge,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const PROFILES = (onTruncate?: string): string => `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    ${onTruncate ? `onTruncate: ${onTruncate}` : ''}
    match: { isMatching: false }`;

describe('TRUNCATE of a source table', () => {
  let db: TestDatabase;
  let sim: Simulator;
  let running: TestBridge | undefined;
  /** Every accepted request, in the order the platform applied them. */
  let received: Array<{ optType: OptType; rows: readonly ApiRow[] }> = [];

  beforeAll(async () => {
    sim = await startSimulator({
      token: 'test-token',
      onRows: (optType, rows) => received.push({ optType, rows }),
    });
  });
  afterAll(async () => {
    await sim.close();
  });
  beforeEach(async () => {
    sim.reset();
    received = [];
    db = await createTestDatabase('claims truncate');
    await db.query(CRM_SCHEMA);
  });
  afterEach(async () => {
    await running?.stop();
    running = undefined;
    await db.drop();
  });

  /** What the bridge logs at warn and above, and the buffer load it reports, in one timeline. */
  function recorder(): { logger: pino.Logger; timeline: Array<Record<string, unknown>> } {
    const timeline: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void timeline.push(JSON.parse(s)) });
    return { logger, timeline };
  }

  async function batches(): Promise<Array<{ id: number; opt_type: string; rows: number; msg: string }>> {
    const { rows } = await db.query<{ id: number; opt_type: string; rows: number; msg: string }>(
      `SELECT id::int, opt_type, rows, msg FROM "Tuzhan Sync".sync_batch ORDER BY id`,
    );
    return rows;
  }

  it('ignore (the default): a warning naming the source, a sync_batch row, and the platform keeps its groups', async () => {
    const rec = recorder();
    running = await startTestBridge({ db, apiUrl: sim.url, logger: rec.logger, sources: PROFILES() });
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', 'a'), ('t2', 'b')`,
    );
    await waitForCatchUp(db);
    const requests = sim.stats().requests;
    await db.query(`TRUNCATE crm.customer_profile`);
    await waitForCatchUp(db);

    expect(rec.timeline).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'source table truncated',
        source: 'profiles',
        table: 'crm.customer_profile',
      }),
    ]);
    const truncates = (await batches()).filter((b) => b.opt_type === 'truncate');
    expect(truncates).toEqual([
      expect.objectContaining({ rows: 0, msg: 'TRUNCATE crm.customer_profile (onTruncate: ignore)' }),
    ]);
    expect(sim.stats().requests).toBe(requests);
    expect(sim.groupsOf('thirdId', 't1')).toEqual(['a']);
    expect(sim.groupsOf('thirdId', 't2')).toEqual(['b']);
    const status = await statusRows(db, 'profiles');
    expect([...status.values()].map((r) => `${r.op}/${r.status}`)).toEqual(['add/synced', 'add/synced']);
  });

  it('delete-all: changes held before the TRUNCATE reach the platform first, then every key is deleted', async () => {
    const rec = recorder();
    // A long debounce: the changes of the truncating transaction stay buffered until it is read.
    running = await startTestBridge({
      db,
      apiUrl: sim.url,
      logger: rec.logger,
      sources: PROFILES('delete-all'),
      batching: { debounceMs: 300, maxWaitMs: 2000 },
    });
    running.bridge.events.on('buffer', (b) => rec.timeline.push({ buffer: b }));
    await db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', 'a'), ('t2', 'b')`,
    );
    await waitForCatchUp(db);
    const sentBefore = received.length;
    const earlierBatches = (await batches()).map((b) => b.id);
    await commitReturningLsn(db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t3', 'c')`,
      `UPDATE crm.customer_profile SET "Group Names" = 'a2' WHERE cust_no = 't1'`,
      `TRUNCATE crm.customer_profile`,
    ]);
    await waitForCatchUp(db);

    // The moment: when the TRUNCATE was handled the two changes before it were still held; the
    // drain flushed them right after (the first load reported after the warning).
    const warned = rec.timeline.findIndex((e) => e.msg === 'source table truncated');
    expect(warned).toBeGreaterThanOrEqual(0);
    expect(rec.timeline.slice(warned + 1).find((e) => e.buffer)).toEqual({
      buffer: { buffered: 0, inflight: 2 },
    });

    // The platform applied the held changes before any delete, and ends empty for every key.
    const after = received.slice(sentBefore).map((r) => ({
      optType: r.optType,
      rows: r.rows.map((row) => `${row.thirdId}:${row.groups ?? ''}`).sort(),
    }));
    // The TRUNCATE's deletes come last: each key's groups, never "all".
    const truncation = after.findIndex((r) => r.optType === 'delete' && r.rows.includes('t2:b'));
    expect(truncation).toBeGreaterThan(0);
    expect(
      after
        .slice(truncation)
        .flatMap((r) => (r.optType === 'delete' ? r.rows : ['not a delete']))
        .sort(),
    ).toEqual(['t1:a2', 't2:b', 't3:c']);
    // Before them, the held changes: t1's lost group deleted before its new one was added, and t3.
    const held = after.slice(0, truncation).flatMap((r) => r.rows.map((row) => `${r.optType} ${row}`));
    expect([...held].sort()).toEqual(['add t1:a2', 'add t3:c', 'delete t1:a']);
    expect(held.indexOf('delete t1:a')).toBeLessThan(held.indexOf('add t1:a2'));
    for (const k of ['t1', 't2', 't3']) expect(sim.groupsOf('thirdId', k)).toEqual([]);

    // sync_batch: the earlier requests, the TRUNCATE, the held changes' requests, then the deletes.
    const log = (await batches()).filter((b) => !earlierBatches.includes(b.id));
    const kinds = log.map((b) => b.opt_type);
    const truncateAt = kinds.indexOf('truncate');
    const deletes = after.length - truncation;
    expect(truncateAt).toBe(0);
    expect(kinds.slice(1, -deletes).sort()).toEqual(
      after
        .slice(0, truncation)
        .map((r) => r.optType)
        .sort(),
    );
    expect(kinds.slice(-deletes)).toEqual(Array(deletes).fill('delete'));
    expect(log[truncateAt]?.msg).toBe('TRUNCATE crm.customer_profile (onTruncate: delete-all)');
    const status = await statusRows(db, 'profiles');
    expect([...status.values()].map((r) => `${r.op}/${r.status}`)).toEqual(Array(3).fill('delete/synced'));
  });
});
