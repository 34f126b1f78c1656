import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startCli, writeConfigFile, type RunningCli } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { testConfigYaml, waitForCatchUp, waitForStreaming } from '../helpers/pipeline.js';

/** Slot names are server-wide: each test file streams from its own. */
const SLOT = 'cli_teardown';

describe('tuzhan-cdc teardown', () => {
  const fx = usePipelineFixture('cli teardown', { per: 'file' });
  let run: RunningCli | undefined;

  afterAll(() => {
    run?.child.kill('SIGKILL');
  });

  async function state(): Promise<{
    slot: boolean;
    publication: boolean;
    schema: boolean;
    snapshot: boolean;
  }> {
    const { rows } = await fx.db.query<{ slot: boolean; publication: boolean; schema: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cli_teardown') AS slot,
              EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'cli_teardown') AS publication,
              EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'Tuzhan Sync') AS schema`,
    );
    const s = rows[0] as { slot: boolean; publication: boolean; schema: boolean };
    const snapshot = s.schema
      ? ((await fx.db.query(`SELECT 1 FROM "Tuzhan Sync".bridge_state WHERE slot = 'cli_teardown'`))
          .rowCount ?? 0) > 0
      : false;
    return { ...s, snapshot };
  }

  it('prints its plan without --yes, refuses an active slot, then drops slot and publication', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url }));
    run = startCli(['--config', file, 'run'], { LOG_LEVEL: 'warn' });
    await waitForStreaming(fx.db, 'cli_teardown');
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'vip')`);
    await waitForCatchUp(fx.db, SLOT);

    // The bridge marked the publication it created: that is what lets teardown drop it.
    const comment = await fx.db.query<{ c: string }>(
      `SELECT obj_description(oid, 'pg_publication') AS c FROM pg_publication WHERE pubname = $1`,
      [SLOT],
    );
    expect(comment.rows[0]?.c).toBe('created by tuzhan-cdc for its sources; tuzhan-cdc teardown drops it');

    const plan = await runCli(['--config', file, 'teardown']);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(
      /replication slot cli_teardown: drop \(ACTIVE: a bridge streams from it, pid \d+\)/,
    );
    expect(plan.stdout).toContain('publication cli_teardown: drop');
    expect(plan.stdout).toContain('status schema "Tuzhan Sync": kept (--drop-status-schema drops it)');
    expect(plan.stderr.trim()).toBe('tuzhan-cdc: nothing dropped: add --yes to drop');

    const refused = await runCli(['--config', file, 'teardown', '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /replication slot cli_teardown is active .*stop the bridge first, or add --force/,
    );
    expect(await state()).toEqual({ slot: true, publication: true, schema: true, snapshot: true });

    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    run = undefined;

    const r = await runCli(['--config', file, 'teardown', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('dropped replication slot cli_teardown');
    expect(r.stdout).toContain('dropped publication cli_teardown');
    // The status schema stays (with the outcomes); only the slot's snapshot record goes with the slot.
    expect(await state()).toEqual({ slot: false, publication: false, schema: true, snapshot: false });
    const kept = await fx.db.query(`SELECT 1 FROM "Tuzhan Sync".sync_status`);
    expect(kept.rowCount).toBe(1);

    const schema = await runCli(['--config', file, 'teardown', '--yes', '--drop-status-schema']);
    expect(schema.code).toBe(0);
    expect(schema.stdout.trim()).toBe('dropped status schema "Tuzhan Sync"');
    expect(await state()).toEqual({ slot: false, publication: false, schema: false, snapshot: false });

    const nothing = await runCli(['--config', file, 'teardown', '--yes']);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout.trim()).toBe('nothing to drop');
  });

  it('--force ends the walsender of an active slot and drops it', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url }));
    run = startCli(['--config', file, 'run'], { LOG_LEVEL: 'warn' });
    await waitForStreaming(fx.db, 'cli_teardown');
    const r = await runCli(['--config', file, 'teardown', '--yes', '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ended the walsender of slot cli_teardown \(pid \d+\)/);
    expect(r.stdout).toContain('dropped replication slot cli_teardown');
    // The bridge loses its slot and stops with an error (not our concern here beyond not hanging).
    run.child.kill('SIGKILL');
    await run.exited;
    run = undefined;
    expect((await state()).slot).toBe(false);
  });

  // Two bridges (two slots) sharing one publication: the teardown of one must not pull the
  // publication from under the other, streaming (its walsender names the publication) or not.
  it("leaves a publication another bridge's slot streams from, or may, and drops it with the last", async () => {
    const shared = (slot: string) =>
      writeConfigFile(
        testConfigYaml({ db: fx.db, slot, apiUrl: fx.sim.url }).replace(
          `publication: ${slot}`,
          'publication: cli_teardown_shared',
        ),
      );
    const a = shared('cli_teardown_a');
    const b = shared('cli_teardown_b');
    run = startCli(['--config', a, 'run'], { LOG_LEVEL: 'warn' });
    await waitForStreaming(fx.db, 'cli_teardown_a');
    const pid = (
      await fx.db.query<{ pid: number }>(
        `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = 'cli_teardown_a'`,
      )
    ).rows[0]?.pid;

    const streaming = await runCli(['--config', b, 'teardown', '--yes']);
    expect(streaming.code, streaming.stderr).toBe(0);
    expect(streaming.stdout.trim()).toBe(
      `left publication cli_teardown_shared alone: slot cli_teardown_a (pid ${pid}) streams from it; --force drops it`,
    );

    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    run = undefined;
    const idle = await runCli(['--config', b, 'teardown', '--yes']);
    expect(idle.stdout.trim()).toBe(
      'left publication cli_teardown_shared alone: slot cli_teardown_a (inactive) may read it (PostgreSQL does not record which publication a slot reads); --force drops it',
    );

    const last = await runCli(['--config', a, 'teardown', '--yes']);
    expect(last.code, last.stderr).toBe(0);
    expect(last.stdout).toContain('dropped replication slot cli_teardown_a');
    expect(last.stdout).toContain('dropped publication cli_teardown_shared');
  });
});
