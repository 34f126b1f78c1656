/**
 * A mass removal larger than one flush (`maxBatchSize`) is still judged as one transaction: the
 * batcher hands it to the guard in several flushes, and none of them may be taken for the whole
 * transaction because its COMMIT was read by the time the flush reached the guard. Row mode and
 * membership mode, a small batch size (many flushes) and the default one (a source of thousands of
 * rows), a TRUNCATE with `onTruncate: delete-all`; and what must still flow: a transaction under the
 * limit spanning several flushes, a large transaction of inserts.
 */
import { describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import { DEFAULT_SOURCES, startTestBridge, statusRows, waitForCatchUp } from '../helpers/pipeline.js';

/** The default guard, computed here: max(100, 10 % of the source's rows). */
const defaultLimit = (rows: number): number => Math.max(100, Math.floor(rows / 10));

const PROFILES_DELETE_ALL = `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    onTruncate: delete-all
    match: { isMatching: false }`;

interface Shape {
  source: 'profiles' | 'memberships';
  seed: (n: number) => string;
  /** Deletes the rows numbered 1..n in one transaction. */
  deleteFirst: (n: number) => string;
}

const SHAPES: Shape[] = [
  {
    source: 'profiles',
    seed: (n) => `INSERT INTO crm.customer_profile (cust_no, "Group Names")
      SELECT 'p' || i, 'g,x' FROM generate_series(1, ${n}) i`,
    deleteFirst: (n) => `DELETE FROM crm.customer_profile WHERE substr(cust_no, 2)::int <= ${n}`,
  },
  {
    source: 'memberships',
    seed: (n) => `INSERT INTO crm.member_group (member_id, group_name)
      SELECT 'p' || i, 'g' FROM generate_series(1, ${n}) i`,
    deleteFirst: (n) => `DELETE FROM crm.member_group WHERE substr(member_id, 2)::int <= ${n}`,
  },
];

describe('a mass removal spanning several flushes', () => {
  const fx = usePipelineFixture('heldbatches');

  /** Customers a request removed groups from. */
  const removedIds = (): Set<string> => {
    const out = new Set<string>();
    for (const r of fx.requests)
      if (r.optType === 'delete') for (const row of r.rows) out.add(row.thirdId as string);
    return out;
  };
  const byStatus = async (source: string): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    for (const r of (await statusRows(fx.db, source)).values())
      out.set(r.status, (out.get(r.status) ?? 0) + 1);
    return out;
  };

  async function seeded(shape: Shape, rows: number, maxBatchSize: number): Promise<void> {
    await fx.db.query(shape.seed(rows));
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      sources: DEFAULT_SOURCES,
      batching: { maxBatchSize },
    });
    await waitForCatchUp(fx.db, fx.db.name, 60_000);
    expect(await byStatus(shape.source)).toEqual(new Map([['synced', rows]]));
    fx.requests = [];
  }

  for (const shape of SHAPES) {
    it(`${shape.source}: 200 of 300 rows deleted in one transaction, in flushes of 10, are held whole`, async () => {
      await seeded(shape, 300, 10);
      expect(200).toBeGreaterThan(defaultLimit(300));
      await fx.db.query(shape.deleteFirst(200));
      await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('u1', 'new')`);
      await waitForCatchUp(fx.db);

      expect(await byStatus(shape.source)).toEqual(
        new Map([
          ['held', 200],
          ['synced', shape.source === 'profiles' ? 101 : 100],
        ]),
      );
      const reasons = new Set(
        [...(await statusRows(fx.db, shape.source)).values()]
          .filter((r) => r.status === 'held')
          .map((r) => r.error),
      );
      // One decision for the whole transaction; it may be taken before its last flush (a floor).
      expect(reasons.size).toBe(1);
      expect([...reasons][0]).toMatch(
        new RegExp(
          `^(at least )?\\d+ of the 300 rows of source ${shape.source} would lose groups in one transaction `,
        ),
      );
      expect(removedIds().size).toBe(0);
      for (let i = 1; i <= 200; i += 1) expect(fx.sim.groupsOf('thirdId', `p${i}`), `p${i}`).not.toEqual([]);
      expect(fx.sim.groupsOf('thirdId', 'u1')).toContain('new');
    });

    it(`${shape.source}: 90 of 300 rows deleted in one transaction, in flushes of 10, are sent`, async () => {
      await seeded(shape, 300, 10);
      expect(90).toBeLessThanOrEqual(defaultLimit(300));
      await fx.db.query(shape.deleteFirst(90));
      await waitForCatchUp(fx.db);

      expect((await byStatus(shape.source)).get('held')).toBeUndefined();
      const removed = removedIds();
      for (let i = 1; i <= 300; i += 1) expect(removed.has(`p${i}`), `p${i}`).toBe(i <= 90);
    });
  }

  it('profiles at the default batch size: 2,000 of 6,000 rows deleted are held; 550 are sent', async () => {
    await seeded(SHAPES[0] as Shape, 6000, 500);
    const limit = defaultLimit(6000);
    expect(2000).toBeGreaterThan(limit);
    expect(550).toBeLessThanOrEqual(limit);
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE substr(cust_no, 2)::int > 4000`);
    await waitForCatchUp(fx.db);
    expect(await byStatus('profiles')).toEqual(
      new Map([
        ['held', 2000],
        ['synced', 4000],
      ]),
    );
    expect(removedIds().size).toBe(0);

    // Under the limit, over one flush (500 + 50): waits for its COMMIT, then goes.
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE substr(cust_no, 2)::int <= 550`);
    await waitForCatchUp(fx.db);
    const removed = removedIds();
    expect(removed.size).toBe(550);
    for (let i = 1; i <= 550; i += 1) expect(removed.has(`p${i}`), `p${i}`).toBe(true);
    expect(await byStatus('profiles')).toEqual(
      new Map([
        ['held', 2000],
        ['synced', 4000],
      ]),
    );
  });

  it('a large transaction of inserts, in flushes of 10, flows', async () => {
    await seeded(SHAPES[0] as Shape, 300, 10);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names")
      SELECT 'n' || i, 'new' FROM generate_series(1, 2000) i`);
    await waitForCatchUp(fx.db);
    expect(await byStatus('profiles')).toEqual(new Map([['synced', 2300]]));
    expect(fx.sim.groupsOf('thirdId', 'n2000')).toEqual(['new']);
  });

  it('a TRUNCATE with onTruncate: delete-all, in flushes of 10, is held whole', async () => {
    await fx.db.query((SHAPES[0] as Shape).seed(300));
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      sources: PROFILES_DELETE_ALL,
      batching: { maxBatchSize: 10 },
    });
    await waitForCatchUp(fx.db);
    expect(await byStatus('profiles')).toEqual(new Map([['synced', 300]]));
    fx.requests = [];
    await fx.db.query('TRUNCATE crm.customer_profile');
    await waitForCatchUp(fx.db);
    expect(await byStatus('profiles')).toEqual(new Map([['held', 300]]));
    expect(removedIds().size).toBe(0);
    expect(fx.sim.groupsOf('thirdId', 'p300')).toEqual(['g', 'x']);
  });
});
