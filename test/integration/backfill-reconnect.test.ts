/**
 * A backfill whose chunk is waiting in the buffers when the replication connection drops. The
 * reconnect does not drain: what the buffers hold is dropped, since the server sends those changes
 * again. A chunk is no change in the WAL, though: only its high watermark is, and the replay brings
 * that watermark back. If the chunk is not buffered again there, the slot is confirmed past the
 * watermark without it and the backfill counts the chunk done although nothing of it was sent.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Batcher } from '../../src/batching/batcher.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { eventually, startTestBridge, waitForCatchUp } from '../helpers/pipeline.js';

const SOURCES = `
  - name: plain
    table: crm.plain
    mode: row
    columns: { thirdId: cust_no, groups: groups }
    match: { isMatching: false }
`;

describe('a backfill chunk buffered when the replication connection drops', () => {
  const fx = usePipelineFixture('backfill_reconnect', {
    per: 'file',
    schema: `CREATE SCHEMA crm; CREATE TABLE crm.plain (cust_no text PRIMARY KEY, groups text);`,
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('is buffered again when its watermark comes again, and sent before the backfill is done', async () => {
    // A long quiet period: a chunk stays in the buffers for seconds.
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      sources: SOURCES,
      batching: { debounceMs: 3000, maxWaitMs: 6000 },
    });
    await fx.db.query(`INSERT INTO crm.plain VALUES ('c1', 'a,b'), ('c2', 'a'), ('c3', 'b')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual(['a', 'b']);
    // The platform lost what it had: what a backfill is for.
    fx.sim.reset();
    expect(fx.sim.groupsOf('thirdId', 'c1') ?? []).toEqual([]);

    let buffered: () => void = () => {};
    const chunk = new Promise<void>((resolve) => (buffered = resolve));
    const add = Batcher.prototype.add;
    vi.spyOn(Batcher.prototype, 'add').mockImplementation(function (this: Batcher, ...args) {
      add.apply(this, args);
      if (args[1].restate === true) buffered();
    });
    const { rows } = await fx.db.query<{ id: string }>(
      `INSERT INTO "Tuzhan Sync".backfill (slot, source, reason) VALUES ($1, 'plain', 'requested') RETURNING id::text`,
      [fx.db.name],
    );
    const id = (rows[0] as { id: string }).id;

    // The moment: the chunk is in the buffers, nothing of it sent; the walsender ends.
    await chunk;
    const ended = await fx.db.query<{ ended: boolean }>(
      `SELECT pg_terminate_backend(active_pid) AS ended FROM pg_replication_slots WHERE slot_name = $1`,
      [fx.db.name],
    );
    expect(ended.rows[0]?.ended, 'a walsender was streaming to the bridge').toBe(true);
    expect(fx.sim.groupsOf('thirdId', 'c1') ?? []).toEqual([]);

    await eventually(async () => {
      const { rows: job } = await fx.db.query<{ status: string }>(
        `SELECT status FROM "Tuzhan Sync".backfill WHERE id = $1`,
        [id],
      );
      expect(job[0]?.status).toBe('done');
    }, 60_000);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'c1')).toEqual(['a', 'b']);
    expect(fx.sim.groupsOf('thirdId', 'c2')).toEqual(['a']);
    expect(fx.sim.groupsOf('thirdId', 'c3')).toEqual(['b']);
  });
});
