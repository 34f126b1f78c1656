/**
 * Backfills while streaming goes on (issue 11): a backfill while a writer updates the same rows
 * leaves the platform equal to the database; one killed with SIGKILL resumes where it was; a source
 * added to an existing deployment gets its rows; the command shows progress and needs a daemon.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ApiRow } from '../../src/tuzhan/types.js';
import { spawnBridge, writeConfigFile, type BridgeProcess } from '../helpers/bridge-process.js';
import { runCli } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  expectedGroups,
  startTestBridge,
  testConfigYaml,
  waitForCatchUp,
  DEFAULT_SOURCES,
} from '../helpers/pipeline.js';

describe('backfill', () => {
  const fx = usePipelineFixture('backfill', { per: 'file' });
  /** The rows of the requests the platform accepted since the test began (or last cleared them). */
  const sent = (): ApiRow[] => fx.requests.flatMap((r) => r.rows);

  async function backfill(source: string): Promise<string> {
    const { rows } = await fx.db.query<{ id: string }>(
      `INSERT INTO "Tuzhan Sync".backfill (slot, source, reason) VALUES ($1, $2, 'requested') RETURNING id::text`,
      [fx.db.name, source],
    );
    return (rows[0] as { id: string }).id;
  }

  async function state(
    id: string,
  ): Promise<{ status: string; done: number; total: number | null; last: unknown }> {
    const { rows } = await fx.db.query<{ status: string; done: string; total: string | null; last: unknown }>(
      `SELECT status, rows_done::text AS done, rows_total::text AS total, last_key AS last FROM "Tuzhan Sync".backfill WHERE id = $1`,
      [id],
    );
    const r = rows[0] as { status: string; done: string; total: string | null; last: unknown };
    return {
      status: r.status,
      done: Number(r.done),
      total: r.total === null ? null : Number(r.total),
      last: r.last,
    };
  }

  function platform(ids: Iterable<string>): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const id of ids) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g && g.length) out[id] = [...g].sort();
    }
    return out;
  }

  it('re-sends every row while a writer updates the same rows; the platform ends equal to the database', async () => {
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'b' || lpad(i::text, 5, '0'), 'g' || (i % 7) FROM generate_series(1, 4000) i`,
    );
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    await waitForCatchUp(fx.db);
    // The platform drifted: it lost everything.
    fx.sim.reset();
    const id = await backfill('profiles');
    const writer = new pg.Client({ connectionString: fx.db.url });
    await writer.connect();
    let updatesWhileRunning = 0;
    try {
      for (let i = 0; ; i++) {
        const s = await state(id);
        if (s.status === 'done') break;
        await writer.query(`UPDATE crm.customer_profile SET "Group Names" = $2 WHERE cust_no = $1`, [
          `b${String(((i * 37) % 4000) + 1).padStart(5, '0')}`,
          `w${i},x`,
        ]);
        if (s.status === 'running') updatesWhileRunning += 1;
        expect(i).toBeLessThan(20_000);
      }
    } finally {
      await writer.end();
    }
    // The moment: rows were updated while the backfill read them.
    expect(updatesWhileRunning).toBeGreaterThan(20);
    await waitForCatchUp(fx.db);
    const ids = Array.from({ length: 4000 }, (_, i) => `b${String(i + 1).padStart(5, '0')}`);
    expect(platform(ids)).toEqual(await expectedGroups(fx.db));
    expect((await state(id)).done).toBe(4000);
  }, 120_000);

  it('resumes after SIGKILL from the last key stored, and removes what the table no longer holds', async () => {
    // Empties the table of the test before (its TRUNCATE only clears it: nothing to re-sync).
    await fx.db.query('TRUNCATE crm.customer_profile');
    const config = testConfigYaml({
      db: fx.db,
      apiUrl: fx.sim.url,
      sources: DEFAULT_SOURCES.replace(/match:/g, 'onTruncate: ignore\n    match:'),
    });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'k' || lpad(i::text, 5, '0'), 'h' || (i % 5) FROM generate_series(1, 6000) i`,
    );
    const bridge1 = spawnBridge(writeConfigFile(config));
    let bridge: BridgeProcess = bridge1;
    try {
      await waitForCatchUp(fx.db, fx.db.name, 60_000);
      fx.sim.reset();
      // A key the platform holds but the table no longer has (deleted while nothing streamed).
      await fx.db.query(
        `INSERT INTO "Tuzhan Sync".sync_status (source, row_key, op, status, lsn, payload)
         VALUES ('profiles', '{"cust_no": "k09999"}', 'add', 'synced', '0/1', '{"thirdId": "k09999", "groups": "gone"}')`,
      );
      await fetch(`${fx.sim.url}/api/integrate/audience/group/rel/batchAdd`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-token': 'test-token' },
        body: JSON.stringify({
          publicParams: { isMatching: false, optType: 'add' },
          data: [{ thirdId: 'k09999', groups: 'gone' }],
        }),
      });
      expect(fx.sim.groupsOf('thirdId', 'k09999')).toEqual(['gone']);
      fx.sim.setFaults({ latencyMs: 150 });
      const id = await backfill('profiles');
      await eventually(async () => expect((await state(id)).done).toBeGreaterThanOrEqual(2000), 60_000, 20);
      expect(await bridge.kill('SIGKILL')).toBe('SIGKILL');
      // The moment: the backfill was running, part done, with its last key stored.
      const at = await state(id);
      expect(at.status).toBe('running');
      expect(at.done).toBeLessThan(6000);
      const lastKey = (at.last as { cust_no: string }).cust_no;
      fx.sim.setFaults({ latencyMs: 0 });
      fx.requests = [];
      bridge = spawnBridge(writeConfigFile(config));
      await eventually(async () => expect((await state(id)).status).toBe('done'), 60_000, 100);
      // Resumed after the last key stored: nothing before it was sent again.
      const resent = sent()
        .map((r) => r.thirdId as string)
        .filter((k) => k.startsWith('k'));
      expect(resent.length).toBeGreaterThan(0);
      expect(resent.every((k) => k > lastKey)).toBe(true);
      const ids = Array.from({ length: 6000 }, (_, i) => `k${String(i + 1).padStart(5, '0')}`);
      expect(platform([...ids, 'k09999'])).toEqual(await expectedGroups(fx.db));
      expect(fx.sim.groupsOf('thirdId', 'k09999')).toEqual([]);
      expect(await bridge.kill('SIGTERM')).toBe(0);
    } finally {
      await bridge1.kill('SIGKILL');
      await bridge.kill('SIGKILL');
    }
  }, 180_000);

  it('a source added to an existing deployment gets its existing rows while the others stream', async () => {
    const onlyProfiles = `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    match: { isMatching: false }
`;
    const slot = `${fx.db.name}_n`;
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, slot, sources: onlyProfiles });
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('n1', 'old'), ('n2', 'old')`,
    );
    await waitForCatchUp(fx.db, slot);
    expect(fx.sim.groupsOf('thirdId', 'n1')).toBeUndefined();
    await fx.running.stop();
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, slot });
    const { rows } = await fx.db.query<{ id: string; reason: string }>(
      `SELECT id::text, reason FROM "Tuzhan Sync".backfill WHERE slot = $1 AND source = 'memberships'`,
      [slot],
    );
    expect(rows).toEqual([{ id: expect.any(String), reason: 'new source' }]);
    await fx.db.query(`INSERT INTO crm.member_group (member_id, group_name) VALUES ('n3', 'new')`);
    await eventually(
      async () => expect((await state((rows[0] as { id: string }).id)).status).toBe('done'),
      30_000,
    );
    await waitForCatchUp(fx.db, slot);
    expect(fx.sim.groupsOf('thirdId', 'n1')).toEqual(['old']);
    expect(fx.sim.groupsOf('thirdId', 'n3')).toEqual(['new']);
  });

  it('the command needs a running daemon, shows progress to the end, and status lists backfills', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url }));
    const none = await runCli(['--config', file, 'backfill', '--source', 'profiles']);
    expect(none.code, none.stdout + none.stderr).toBe(1);
    expect(none.stderr).toMatch(/no bridge is streaming from slot \S+: start `tuzhan-cdc run` first/);
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
    const bad = await runCli(['--config', file, 'backfill', '--source', 'profiles', '--where', '[1, 2]']);
    expect(bad.code).toBe(2);
    const r = await runCli([
      '--config',
      file,
      'backfill',
      '--source',
      'profiles',
      '--where',
      '{cust_no: [k00001, k00002]}',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^backfill \d+ of source profiles requested$/m);
    expect(r.stdout).toMatch(/^backfill \d+ done: 2 rows have their outcome stored$/m);
    const status = await runCli(['--config', file, 'status']);
    // The filtered backfill's own total, not the table's estimate.
    expect(status.stdout).toMatch(/^backfill {2}#\d+ profiles \(requested\): done, 2 of ~2 rows$/m);
  }, 90_000);
});
