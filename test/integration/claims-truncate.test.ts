/**
 * TRUNCATE of a source table (docs/design.md "TRUNCATE"): logged at warn and recorded in
 * sync_batch. `onTruncate: resync` (the default) re-syncs the source as of the end of the truncating
 * transaction: a reload in that transaction removes only what it left out and never takes a
 * reloaded customer's groups away (same keys, or new ones), and its removals pass the guard (a
 * TRUNCATE that empties a table is held, then approved). `ignore` leaves the platform alone and
 * marks the gone rows; `delete-all` first drains what the bridge holds, then deletes every key it
 * synced.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import { commitReturningLsn } from '../helpers/moments.js';
import { runCli, writeConfigFile } from '../helpers/cli.js';
import {
  eventually,
  expectedGroups,
  statusRows,
  startTestBridge,
  testConfigYaml,
  waitForCatchUp,
} from '../helpers/pipeline.js';

const PROFILES = (onTruncate?: string): string => `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    ${onTruncate ? `onTruncate: ${onTruncate}` : ''}
    match: { isMatching: false }`;

describe('TRUNCATE of a source table', () => {
  const fx = usePipelineFixture('claims truncate');

  /** What the bridge logs at warn and above, and the buffer load it reports, in one timeline. */
  function recorder(): { logger: pino.Logger; timeline: Array<Record<string, unknown>> } {
    const timeline: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void timeline.push(JSON.parse(s)) });
    return { logger, timeline };
  }

  async function batches(): Promise<Array<{ id: number; opt_type: string; rows: number; msg: string }>> {
    const { rows } = await fx.db.query<{ id: number; opt_type: string; rows: number; msg: string }>(
      `SELECT id::int, opt_type, rows, msg FROM "Tuzhan Sync".sync_batch ORDER BY id`,
    );
    return rows;
  }

  /** Waits until the re-sync a TRUNCATE asked for is done, then until the slot caught up. */
  async function resynced(): Promise<void> {
    await eventually(async () => {
      const { rows } = await fx.db.query<{ status: string }>(
        `SELECT status FROM "Tuzhan Sync".job WHERE kind = 'backfill' AND reason LIKE 'TRUNCATE at %'`,
      );
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.status === 'done')).toBe(true);
    }, 30_000);
    await waitForCatchUp(fx.db);
  }

  /**
   * The groups each customer had removed by a request, from `fx.requests` (every accepted
   * request, in the order the platform applied them).
   */
  function removals(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const r of fx.requests)
      if (r.optType === 'delete')
        for (const row of r.rows) {
          const id = row.thirdId as string;
          out.set(id, [...(out.get(id) ?? []), ...(row.groups ?? '<all>').split(',')]);
        }
    return out;
  }

  it('resync (the default): a reload in the truncating transaction removes only what it left out', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    // Profiles keyed by customer; memberships by a serial id, which a reload renews.
    await fx.db.query(`
      INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'c' || i, 'vip,g' || (i % 3) FROM generate_series(1, 300) i;
      INSERT INTO crm.member_group (member_id, group_name) SELECT 'm' || i, 'gold' FROM generate_series(1, 300) i;`);
    await waitForCatchUp(fx.db);
    fx.requests = [];
    // The nightly reload: everything again, but c291..c300 and m281..m300 (left out), and c1..c10
    // without vip.
    await commitReturningLsn(fx.db, [
      `TRUNCATE crm.customer_profile, crm.member_group`,
      `INSERT INTO crm.customer_profile (cust_no, "Group Names")
         SELECT 'c' || i, CASE WHEN i <= 10 THEN '' ELSE 'vip,' END || 'g' || (i % 3) FROM generate_series(1, 290) i`,
      `INSERT INTO crm.member_group (member_id, group_name) SELECT 'm' || i, 'gold' FROM generate_series(1, 280) i`,
    ]);
    await resynced();

    const platform = (ids: string[]) =>
      Object.fromEntries(
        ids.flatMap((id) =>
          fx.sim.groupsOf('thirdId', id)?.length ? [[id, fx.sim.groupsOf('thirdId', id)]] : [],
        ),
      );
    const ids = [
      ...Array.from({ length: 300 }, (_, i) => `c${i + 1}`),
      ...Array.from({ length: 300 }, (_, i) => `m${i + 1}`),
    ];
    expect(platform(ids)).toEqual(await expectedGroups(fx.db));
    // No request removed a group a reloaded customer holds after the reload.
    const table = await expectedGroups(fx.db);
    const wrong = [...removals()].filter(([id, groups]) => groups.some((g) => table[id]?.includes(g)));
    expect(wrong).toEqual([]);
    // What was left out went: c291..c300 and m281..m300 whole, c1..c10 their vip.
    expect([...removals().keys()].sort()).toEqual(
      [
        ...Array.from({ length: 10 }, (_, i) => `c${i + 1}`),
        ...Array.from({ length: 10 }, (_, i) => `c${i + 291}`),
        ...Array.from({ length: 20 }, (_, i) => `m${i + 281}`),
      ].sort(),
    );
    // Removed vip and nothing else. Delivery is at least once: when the re-sync reads a key's stored
    // state before the stream's outcome of the reloaded row is stored, both remove vip.
    for (let i = 1; i <= 10; i++) expect([...new Set(removals().get(`c${i}`))]).toEqual(['vip']);
    const memberships = [...(await statusRows(fx.db, 'memberships')).values()];
    expect(memberships.filter((m) => m.status === 'held')).toEqual([]);
  });

  it('resync: a TRUNCATE that empties a table is held, and removed once approved', async () => {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, sources: PROFILES() });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'e' || i, 'x' FROM generate_series(1, 300) i`,
    );
    await waitForCatchUp(fx.db);
    fx.requests = [];
    await fx.db.query(`TRUNCATE crm.customer_profile`);
    await resynced();
    // Held: nothing removed, every row says why.
    expect(removals().size).toBe(0);
    expect(fx.sim.groupsOf('thirdId', 'e1')).toEqual(['x']);
    const rows = [...(await statusRows(fx.db, 'profiles')).values()];
    expect(rows.map((r) => r.status)).toEqual(Array(300).fill('held'));
    expect(rows[0]?.error).toMatch(
      /^300 of the 300 rows of source profiles are gone from the table, and removing their groups in backfill \d+ is more than guard\.maxRemovals \(the default, max\(100, 10% of 300 rows\) = 100\); approve or reject: tuzhan-cdc held --source profiles$/,
    );

    const file = writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, sources: PROFILES() }));
    const r = await runCli(['--config', file, 'held', '--approve']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(
      /^profiles: approved 300 held rows, brought to what the table holds now \(sent 300 delete\): 300 synced\n$/,
    );
    for (let i = 1; i <= 300; i++) expect(fx.sim.groupsOf('thirdId', `e${i}`)).toEqual([]);
  });

  it('ignore: a warning naming the source, a sync_batch row, the platform keeps its groups, and the gone rows say so', async () => {
    const rec = recorder();
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      logger: rec.logger,
      sources: PROFILES('ignore'),
    });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', 'a'), ('t2', 'b')`,
    );
    await waitForCatchUp(fx.db);
    const requests = fx.sim.stats().requests;
    const lsn = await commitReturningLsn(fx.db, [
      `TRUNCATE crm.customer_profile`,
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t2', 'b')`,
    ]);
    await waitForCatchUp(fx.db);

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
    expect(fx.sim.groupsOf('thirdId', 't1')).toEqual(['a']);
    expect(fx.sim.groupsOf('thirdId', 't2')).toEqual(['b']);
    // t1 is gone: no longer `synced`; t2 came back in the same transaction: synced again.
    const status = await statusRows(fx.db, 'profiles');
    expect(status.get('{"cust_no":"t1"}')).toMatchObject({
      op: 'add',
      status: 'skipped',
      error: expect.stringMatching(
        /^the table was truncated at [0-9A-F]+\/[0-9A-F]+ \(onTruncate: ignore\): the row is gone; the platform keeps its groups$/,
      ),
    });
    expect(status.get('{"cust_no":"t2"}')).toMatchObject({ status: 'synced' });
    expect(fx.sim.stats().requests).toBeLessThanOrEqual(requests + 1);
    void lsn;
  });

  it('delete-all: changes held before the TRUNCATE reach the platform first, then every key is deleted', async () => {
    const rec = recorder();
    // A long debounce: the changes of the truncating transaction stay buffered until it is read.
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      logger: rec.logger,
      sources: PROFILES('delete-all'),
      batching: { debounceMs: 300, maxWaitMs: 2000 },
    });
    fx.running.bridge.events.on('buffer', (b) => rec.timeline.push({ buffer: b }));
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', 'a'), ('t2', 'b')`,
    );
    await waitForCatchUp(fx.db);
    const sentBefore = fx.requests.length;
    const earlierBatches = (await batches()).map((b) => b.id);
    await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t3', 'c')`,
      `UPDATE crm.customer_profile SET "Group Names" = 'a2' WHERE cust_no = 't1'`,
      `TRUNCATE crm.customer_profile`,
    ]);
    await waitForCatchUp(fx.db);

    // The moment: when the TRUNCATE was handled the two changes before it were still held; the
    // drain flushed them right after (the first load reported after the warning).
    const warned = rec.timeline.findIndex((e) => e.msg === 'source table truncated');
    expect(warned).toBeGreaterThanOrEqual(0);
    expect(rec.timeline.slice(warned + 1).find((e) => e.buffer)).toEqual({
      buffer: { buffered: 0, inflight: 2 },
    });

    // The platform applied the held changes before any delete, and ends empty for every key.
    const after = fx.requests.slice(sentBefore).map((r) => ({
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
    for (const k of ['t1', 't2', 't3']) expect(fx.sim.groupsOf('thirdId', k)).toEqual([]);

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
    const status = await statusRows(fx.db, 'profiles');
    expect([...status.values()].map((r) => `${r.op}/${r.status}`)).toEqual(Array(3).fill('delete/synced'));
  });
});
