/**
 * SPEC section 4's invariant on a real database: random transactions (some rolled back) of inserts,
 * updates, key and identity changes and deletes in both source shapes; once the bridge has
 * confirmed them, the simulator's groups equal what the database's rows say.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase } from '../helpers/database.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  expectedGroups,
  DEFAULT_SOURCES,
  startTestBridge,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const CUSTOMERS = ['c0', 'c1', 'c2', 'c3', 'c4'];
const MEMBERS = ['m0', 'm1', 'm2'];
const GROUPS = ['g0', 'g1'];

type Op =
  | { t: 'upsertProfile'; c: string; groups: string[] }
  | { t: 'deleteProfile'; c: string }
  | { t: 'renameProfile'; from: string; to: string }
  | { t: 'addMember'; m: string; g: string }
  | { t: 'removeMember'; m: string; g: string }
  | { t: 'moveMember'; m: string; g: string; toM: string; toG: string };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    t: fc.constant('upsertProfile' as const),
    c: fc.constantFrom(...CUSTOMERS),
    groups: fc.subarray(GROUPS),
  }),
  fc.record({ t: fc.constant('deleteProfile' as const), c: fc.constantFrom(...CUSTOMERS) }),
  fc.record({
    t: fc.constant('renameProfile' as const),
    from: fc.constantFrom(...CUSTOMERS),
    to: fc.constantFrom(...CUSTOMERS),
  }),
  fc.record({
    t: fc.constant('addMember' as const),
    m: fc.constantFrom(...MEMBERS),
    g: fc.constantFrom(...GROUPS),
  }),
  fc.record({
    t: fc.constant('removeMember' as const),
    m: fc.constantFrom(...MEMBERS),
    g: fc.constantFrom(...GROUPS),
  }),
  fc.record({
    t: fc.constant('moveMember' as const),
    m: fc.constantFrom(...MEMBERS),
    g: fc.constantFrom(...GROUPS),
    toM: fc.constantFrom(...MEMBERS),
    toG: fc.constantFrom(...GROUPS),
  }),
);

const transactions = fc.array(
  fc.record({
    ops: fc.array(op, { minLength: 1, maxLength: 6 }),
    rollback: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  }),
  {
    minLength: 1,
    maxLength: 15,
  },
);

async function apply(db: TestDatabase, o: Op): Promise<[string, unknown[]]> {
  switch (o.t) {
    case 'upsertProfile':
      return [
        `INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES ($1, $2, $3)
         ON CONFLICT (cust_no) DO UPDATE SET "Group Names" = EXCLUDED."Group Names"`,
        [o.c, `139${o.c}`, o.groups.join(',')],
      ];
    case 'deleteProfile':
      return [`DELETE FROM crm.customer_profile WHERE cust_no = $1`, [o.c]];
    case 'renameProfile':
      return [
        `UPDATE crm.customer_profile SET cust_no = $2, mobile = '139' || $2
          WHERE cust_no = $1 AND NOT EXISTS (SELECT 1 FROM crm.customer_profile WHERE cust_no = $2)`,
        [o.from, o.to],
      ];
    case 'addMember':
      return [
        `INSERT INTO crm.member_group (member_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [o.m, o.g],
      ];
    case 'removeMember':
      return [`DELETE FROM crm.member_group WHERE member_id = $1 AND group_name = $2`, [o.m, o.g]];
    case 'moveMember':
      return [
        `UPDATE crm.member_group SET member_id = $3, group_name = $4
          WHERE member_id = $1 AND group_name = $2
            AND NOT EXISTS (SELECT 1 FROM crm.member_group WHERE member_id = $3 AND group_name = $4)`,
        [o.m, o.g, o.toM, o.toG],
      ];
  }
}

describe('pipeline property: the platform converges to the database', () => {
  const fx = usePipelineFixture('property', { per: 'file' });
  let running: TestBridge | undefined;

  beforeAll(async () => {
    // Small batches and short waits, so coalescing, ordering and concurrency all get exercised.
    running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      batching: { maxBatchSize: 3, debounceMs: 5, maxWaitMs: 30, maxBufferedRows: 8 },
      // Each run empties the tables with TRUNCATE and starts the platform afresh: nothing to re-sync.
      sources: DEFAULT_SOURCES.replace(/match:/g, 'onTruncate: ignore\n    match:'),
    });
  });
  afterAll(async () => {
    await running?.stop();
  });

  function platform(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const id of [...CUSTOMERS, ...MEMBERS]) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g && g.length) out[id] = [...g].sort();
    }
    return out;
  }

  it('after any sequence of transactions, simulator state equals database state', async () => {
    await fc.assert(
      fc.asyncProperty(transactions, async (txs) => {
        // Each run starts empty (onTruncate: ignore leaves the platform alone; reset it), so a
        // counterexample is a whole history.
        await fx.db.query('TRUNCATE crm.customer_profile, crm.member_group');
        await waitForCatchUp(fx.db);
        fx.sim.reset();
        for (const tx of txs) {
          const statements = await Promise.all(tx.ops.map((o) => apply(fx.db, o)));
          const c = await import('pg').then((m) => new m.default.Client({ connectionString: fx.db.url }));
          await c.connect();
          try {
            await c.query('BEGIN');
            for (const [sql, params] of statements) await c.query(sql, params);
            await c.query(tx.rollback ? 'ROLLBACK' : 'COMMIT');
          } finally {
            await c.end();
          }
        }
        await waitForCatchUp(fx.db);
        expect(platform()).toEqual(await expectedGroups(fx.db));
      }),
      { numRuns: 30 },
    );
  }, 240_000);
});
