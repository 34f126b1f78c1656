/**
 * Mass removals wait for a person (docs/operations.md): a transaction that would remove groups from
 * more of a source's rows than guard.maxRemovals allows is held whole (nothing of it sent, its rows
 * `held` with the reason, later changes of its keys held with it) while other keys flow and the
 * slot advances; `tuzhan-cdc held` lists it, `--approve` brings the held keys to what the table
 * holds then (rows restored meanwhile are not removed), `--reject` leaves the platform as it is.
 * Held rows outlive a SIGKILL of the daemon.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnBridge, type BridgeProcess } from '../helpers/bridge-process.js';
import { runCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  startTestBridge,
  statusRows,
  testConfigYaml,
  waitForCatchUp,
  waitForStreaming,
} from '../helpers/pipeline.js';

const ROWS = 300;
/** p1..p300, each with groups g and x (its number's parity as a third group). */
const SEED = `INSERT INTO crm.customer_profile (cust_no, "Group Names")
  SELECT 'p' || i, 'g,x,' || CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END FROM generate_series(1, ${ROWS}) i`;
/** 200 of the 300 rows: more than max(100, 10 % of 300). */
const MASS_DELETE = `DELETE FROM crm.customer_profile WHERE substr(cust_no, 2)::int <= 200`;
const HELD_REASON =
  /^200 of the 300 rows of source profiles would lose groups in one transaction \(commit [0-9A-F]+\/[0-9A-F]+ at \S+\), more than guard\.maxRemovals \(the default, max\(100, 10% of 300 rows\) = 100\); approve or reject: tuzhan-cdc held --source profiles$/;

describe('held mass removals', () => {
  const fx = usePipelineFixture('held');
  let spawned: BridgeProcess | undefined;

  afterEach(async () => {
    await spawned?.kill('SIGKILL');
    spawned = undefined;
  });

  const configFile = (): string => writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url }));
  const held = (): Promise<string[]> =>
    statusRows(fx.db, 'profiles').then((rows) =>
      [...rows]
        .filter(([, r]) => r.status === 'held')
        .map(([k]) => (JSON.parse(k) as { cust_no: string }).cust_no),
    );
  /** Customers a request removed groups from, and which. */
  const removed = (): Map<string, string[]> => {
    const out = new Map<string, string[]>();
    for (const r of fx.requests)
      if (r.optType === 'delete')
        for (const row of r.rows) out.set(row.thirdId as string, (row.groups ?? '<all>').split(','));
    return out;
  };
  const numbers = (from: number, to: number): string[] =>
    Array.from({ length: to - from + 1 }, (_, i) => `p${from + i}`);

  async function seeded(): Promise<void> {
    await fx.db.query(SEED);
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual(['g', 'odd', 'x']);
    fx.requests = [];
  }

  it('holds a mass delete whole while other keys flow, and holds later changes of its keys', async () => {
    await seeded();
    await fx.db.query(MASS_DELETE);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('u1', 'new')`);
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'g,x' WHERE cust_no = 'p250'`);
    // The slot advances past all of it: held rows are outcomes, stored.
    await waitForCatchUp(fx.db);

    const rows = await statusRows(fx.db, 'profiles');
    expect((await held()).sort()).toEqual(numbers(1, 200).sort());
    for (const p of numbers(1, 200)) {
      expect(rows.get(JSON.stringify({ cust_no: p }))?.error).toMatch(HELD_REASON);
      expect(fx.sim.groupsOf('thirdId', p)).toHaveLength(3);
    }
    // Nothing of the held transaction was sent; the other keys flowed.
    expect([...removed().keys()]).toEqual(['p250']);
    expect(removed().get('p250')).toEqual(['even']);
    expect(fx.sim.groupsOf('thirdId', 'u1')).toEqual(['new']);
    expect(rows.get('{"cust_no":"u1"}')).toMatchObject({ status: 'synced' });

    // A later change of a held key is held with it (its reason kept); one of another key flows.
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('p5', 'back')`);
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'p299'`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'p5')).toEqual(['g', 'odd', 'x']);
    const after = await statusRows(fx.db, 'profiles');
    expect(after.get('{"cust_no":"p5"}')).toMatchObject({
      status: 'held',
      error: expect.stringMatching(HELD_REASON),
    });
    expect(fx.sim.groupsOf('thirdId', 'p299')).toEqual([]);

    // `held` lists it: source, rows, since, reason.
    const list = await runCli(['--config', configFile(), 'held']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^source\s+rows\s+held since\s+reason\n/);
    expect(list.stdout).toMatch(
      /\nprofiles\s+200\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+200 of the 300 rows/,
    );
  });

  it('approve brings held keys to what the table holds now: rows restored meanwhile keep their groups', async () => {
    await seeded();
    await fx.db.query(MASS_DELETE);
    await waitForCatchUp(fx.db);
    expect(await held()).toHaveLength(200);
    // Restored meanwhile: p1..p25 as they were, p26..p50 without x. Later changes: held too.
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names")
      SELECT 'p' || i, CASE WHEN i <= 25 THEN 'g,x,' ELSE 'g,' END || CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END
        FROM generate_series(1, 50) i`);
    await waitForCatchUp(fx.db);
    expect(await held()).toHaveLength(200);
    expect(removed().size).toBe(0);

    const r = await runCli(['--config', configFile(), 'held', '--source', 'profiles', '--approve']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^profiles: approved 200 held rows, brought to what the table holds now \(sent 175 delete, 50 add\): 200 synced\n$/,
    );

    // Still gone: removed. Restored: their groups, x gone only where the row no longer has it.
    for (const p of numbers(51, 200)) expect(fx.sim.groupsOf('thirdId', p), p).toEqual([]);
    for (const p of numbers(1, 25)) expect(removed().has(p), p).toBe(false);
    for (const p of numbers(26, 50)) expect(removed().get(p), p).toEqual(['x']);
    expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual(['g', 'odd', 'x']);
    expect(fx.sim.groupsOf('thirdId', 'p26')).toEqual(['even', 'g']);
    expect(await held()).toEqual([]);
    // The keys flow again: a later change is sent.
    await fx.db.query(`UPDATE crm.customer_profile SET "Group Names" = 'g' WHERE cust_no = 'p1'`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual(['g']);
  });

  it('reject leaves the platform as it is and records the rows skipped', async () => {
    await seeded();
    await fx.db.query(MASS_DELETE);
    await waitForCatchUp(fx.db);
    const r = await runCli(['--config', configFile(), 'held', '--reject']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'profiles: rejected 200 held rows; the platform keeps their groups (recorded skipped: rejected by an operator)\n',
    );
    const rows = await statusRows(fx.db, 'profiles');
    for (const p of numbers(1, 200)) {
      expect(rows.get(JSON.stringify({ cust_no: p }))).toMatchObject({
        status: 'skipped',
        error: 'rejected by an operator: the platform keeps these groups',
      });
      expect(fx.sim.groupsOf('thirdId', p)).toHaveLength(3);
    }
    expect(removed().size).toBe(0);
    // The keys flow again.
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('p7', 'z')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'p7')).toEqual(['g', 'odd', 'x', 'z']);
  });

  it('held rows outlive a SIGKILL; with no daemon running, approve runs in the command', async () => {
    await fx.db.query(SEED);
    spawned = spawnBridge(configFile());
    await waitForStreaming(fx.db, fx.db.name);
    await waitForCatchUp(fx.db);
    await fx.db.query(MASS_DELETE);
    await eventually(async () => expect(await held()).toHaveLength(200), 30_000);
    // The moment: the rows are held when the daemon dies.
    expect(await spawned.kill('SIGKILL')).toBe('SIGKILL');
    spawned = spawnBridge(configFile());
    await waitForStreaming(fx.db, fx.db.name);
    // Held still, and a later change of a held key is held with it by the new process.
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('p9', 'back')`);
    await waitForCatchUp(fx.db);
    expect(await held()).toHaveLength(200);
    expect(fx.sim.groupsOf('thirdId', 'p9')).toEqual(['g', 'odd', 'x']);
    expect(removed().size).toBe(0);
    expect(await spawned.kill('SIGTERM')).toBe(0);
    spawned = undefined;

    const r = await runCli(['--config', configFile(), 'held', '--approve']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^profiles: approved 200 held rows/);
    expect(await held()).toEqual([]);
    for (const p of numbers(1, 200))
      expect(fx.sim.groupsOf('thirdId', p), p).toEqual(p === 'p9' ? ['back'] : []);
  });

  it('bad input: nothing held, an unknown source, a malformed maxRemovals: one clear line each', async () => {
    await seeded();
    const file = configFile();
    const nothing = await runCli(['--config', file, 'held', '--approve']);
    expect([nothing.code, nothing.stdout, nothing.stderr]).toEqual([
      0,
      'nothing is held: nothing to approve\n',
      '',
    ]);
    const none = await runCli(['--config', file, 'held', '--source', 'profiles', '--reject']);
    expect([none.code, none.stdout]).toEqual([0, 'nothing is held for source profiles: nothing to reject\n']);
    const list = await runCli(['--config', file, 'held']);
    expect([list.code, list.stdout]).toEqual([0, 'nothing is held\n']);
    const unknown = await runCli(['--config', file, 'held', '--source', 'nope', '--approve']);
    expect([unknown.code, unknown.stdout]).toEqual([2, '']);
    expect(unknown.stderr).toBe("tuzhan-cdc: unknown source 'nope' (sources: profiles, memberships)\n");
    const both = await runCli(['--config', file, 'held', '--approve', '--reject']);
    expect([both.code, both.stderr]).toEqual([2, 'tuzhan-cdc: --approve and --reject: choose one\n']);
    const bad = writeConfigFile(
      testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, extra: 'guard: { maxRemovals: "ten percent" }' }),
    );
    const malformed = await runCli(['--config', bad, 'held']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toBe(
      `tuzhan-cdc: invalid config: guard.maxRemovals: expected a number of rows (500), a share of the source's rows ("5%"), or off; got "ten percent"\n`,
    );
  });
});
